/**
 * Worker thread of `workerPoolSignatureVerifier`: verifies a batch of Ed25519 signatures with the
 * strict rule (`isStrictEd25519Input`, then OpenSSL's equation, as `nodeCryptoProvider` does) and
 * answers with one byte per signature (1 verifies, 0 does not).
 */
import * as nodeCrypto from 'node:crypto';
import { parentPort } from 'node:worker_threads';
import { isStrictEd25519Input } from '../crypto.js';
import { keyObjectCache } from './key-cache.js';

/** A batch: `count` signatures (64 bytes each), public keys (32 each), messages back to back. */
export interface VerifyBatch {
  id: number;
  count: number;
  signatures: Uint8Array;
  publicKeys: Uint8Array;
  messages: Uint8Array;
  /** End offset of each message in `messages`. */
  ends: Uint32Array;
}

const keyObject = keyObjectCache();

function verifyOne(signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array): boolean {
  if (!isStrictEd25519Input(signature, publicKey)) return false;
  try {
    return nodeCrypto.verify(null, message, keyObject(publicKey), signature);
  } catch {
    return false;
  }
}

// Only as a worker: imported on a main thread (types only, normally) it does nothing.
parentPort?.on('message', (b: VerifyBatch) => {
  const results = new Uint8Array(b.count);
  let start = 0;
  for (let i = 0; i < b.count; i++) {
    const end = b.ends[i]!;
    const ok = verifyOne(
      b.signatures.subarray(i * 64, i * 64 + 64),
      b.messages.subarray(start, end),
      b.publicKeys.subarray(i * 32, i * 32 + 32),
    );
    results[i] = ok ? 1 : 0;
    start = end;
  }
  parentPort!.postMessage({ id: b.id, results }, [results.buffer]);
});
