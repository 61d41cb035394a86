// Worker thread for the Ed25519 verify ceiling: verifies pre-made signatures over messages of the
// given size with node:crypto (cached KeyObject, as the log does) for a fixed time.
import * as crypto from 'node:crypto';
import { parentPort, workerData } from 'node:worker_threads';

const { durationMs, messageBytes } = workerData as { durationMs: number; messageBytes: number };
const { publicKey, privateKey } = crypto.generateKeyPairSync('ed25519');
const messages = Array.from({ length: 256 }, () => crypto.randomBytes(messageBytes));
const signatures = messages.map((m) => crypto.sign(null, m, privateKey));
let verified = 0;
const start = performance.now();
const deadline = start + durationMs;
while (performance.now() < deadline) {
  for (let i = 0; i < messages.length; i++) {
    if (!crypto.verify(null, messages[i]!, publicKey, signatures[i]!))
      throw new Error('signature did not verify');
  }
  verified += messages.length;
}
parentPort!.postMessage({ verified, elapsedMs: performance.now() - start });
