// Ceilings measured in the same run: what this machine can do at best, to pair with every figure.
import * as crypto from 'node:crypto';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';

const here = path.dirname(fileURLToPath(import.meta.url));

/** Ed25519 verifications per second with node:crypto on every core (one worker thread per core). */
export async function ed25519VerifyCeiling(durationMs: number, messageBytes = 1100): Promise<number> {
  const workers = os.availableParallelism();
  const results = await Promise.all(
    Array.from(
      { length: workers },
      () =>
        new Promise<{ verified: number; elapsedMs: number }>((resolve, reject) => {
          const w = new Worker(path.join(here, 'verify-worker.js'), {
            workerData: { durationMs, messageBytes },
          });
          w.once('message', resolve);
          w.once('error', reject);
          w.once('exit', (code) => {
            if (code !== 0) reject(new Error(`verify worker exited ${code}`));
          });
        }),
    ),
  );
  return results.reduce((s, r) => s + (r.verified / r.elapsedMs) * 1000, 0);
}

/** SHA-256 hashes per second on one core of `bytes`-sized inputs (crypto.hash, as the log does). */
export function sha256Ceiling(durationMs: number, bytes: number): number {
  const input = crypto.randomBytes(bytes);
  let n = 0;
  const start = performance.now();
  const deadline = start + durationMs;
  while (performance.now() < deadline) {
    for (let i = 0; i < 1000; i++) crypto.hash('sha256', input, 'buffer');
    n += 1000;
  }
  return (n / (performance.now() - start)) * 1000;
}
