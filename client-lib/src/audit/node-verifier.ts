/**
 * Node-only: Ed25519 signature checks on the libuv threadpool for the auditor, so `vigil audit` uses
 * every core. Not exported by the browser-safe index; the CLI injects it into `runAudit`.
 *
 * The rule is the core's: `isStrictEd25519Input` first, then OpenSSL's cofactorless equation check
 * (the same as `nodeCryptoProvider.ed25519Verify`, which runs the same call synchronously).
 */
import * as nodeCrypto from 'node:crypto';
import * as os from 'node:os';
import { Worker } from 'node:worker_threads';
import { isStrictEd25519Input } from '../crypto.js';
import type { SignatureVerifier } from './auditor.js';
import { keyObjectCache } from './key-cache.js';
import type { VerifyBatch } from './verify-worker.js';

/** A SignatureVerifier over `crypto.verify(null, data, key, sig, callback)` with cached KeyObjects. */
export function threadpoolSignatureVerifier(): SignatureVerifier {
  const keyObject = keyObjectCache();
  return (signature, message, publicKey) => {
    if (!isStrictEd25519Input(signature, publicKey)) return Promise.resolve(false);
    let key: nodeCrypto.KeyObject;
    try {
      key = keyObject(publicKey);
    } catch {
      return Promise.resolve(false);
    }
    return new Promise((resolve) => {
      try {
        nodeCrypto.verify(null, message, key, signature, (err, ok) => resolve(err === null && ok));
      } catch {
        resolve(false);
      }
    });
  };
}

/** Signatures a batch posted to a worker holds at most. */
const BATCH_MAX = 256;

interface Waiting {
  signature: Uint8Array;
  message: Uint8Array;
  publicKey: Uint8Array;
  resolve: (ok: boolean) => void;
  reject: (err: Error) => void;
}

/**
 * A SignatureVerifier over worker threads (one a core by default): the checks asked for in one
 * event-loop turn go to the workers in batches of up to 256, one message each way per batch, so the
 * calling thread spends about a microsecond a signature instead of the dozen or more a threadpool
 * job costs it. Same rule as `threadpoolSignatureVerifier`. The workers do not keep the process
 * alive; `close()` ends them.
 */
export function workerPoolSignatureVerifier(
  threads = Math.max(1, os.availableParallelism()),
): SignatureVerifier & { close(): Promise<void> } {
  const url = new URL('./verify-worker.js', import.meta.url);
  const pending = new Map<number, Waiting[]>();
  let nextId = 0;
  let next = 0;
  let queue: Waiting[] = [];
  let scheduled = false;
  let failed: Error | undefined;
  let closed = false;
  // Started on the first check, so an audit with nothing new to check starts no thread.
  let started: Worker[] | undefined;
  const workers = (): Worker[] =>
    (started ??= Array.from({ length: threads }, () => {
      const w = new Worker(url);
      w.unref();
      w.on('message', (m: { id: number; results: Uint8Array }) => {
        const batch = pending.get(m.id);
        pending.delete(m.id);
        batch?.forEach((x, i) => x.resolve(m.results[i] === 1));
      });
      // A worker that dies takes no answer with it silently: its batches and later ones reject
      // (the audit stops with an error; it never reports a signature it did not check).
      w.on('error', (err) => fail(err));
      w.on('exit', (code) => {
        if (!closed) fail(new Error(`signature worker exited with code ${code}`));
      });
      return w;
    }));
  const fail = (err: Error): void => {
    failed ??= err;
    for (const batch of pending.values()) for (const x of batch) x.reject(err);
    pending.clear();
  };
  const post = (batch: Waiting[]): void => {
    let bytes = 0;
    for (const x of batch) bytes += x.message.length;
    const signatures = new Uint8Array(batch.length * 64);
    const publicKeys = new Uint8Array(batch.length * 32);
    const messages = new Uint8Array(bytes);
    const ends = new Uint32Array(batch.length);
    let at = 0;
    batch.forEach((x, i) => {
      signatures.set(x.signature, i * 64);
      publicKeys.set(x.publicKey, i * 32);
      messages.set(x.message, at);
      at += x.message.length;
      ends[i] = at;
    });
    const id = nextId++;
    pending.set(id, batch);
    const msg: VerifyBatch = { id, count: batch.length, signatures, publicKeys, messages, ends };
    const pool = workers();
    pool[next++ % pool.length]!.postMessage(msg, [
      signatures.buffer,
      publicKeys.buffer,
      messages.buffer,
      ends.buffer,
    ]);
  };
  const flush = (): void => {
    scheduled = false;
    const all = queue;
    queue = [];
    // Closed (or failed) between the check and this turn: refuse the batch. Posting it would start a
    // pool after close(), whose threads would keep a finished process alive.
    if (failed !== undefined) {
      for (const x of all) x.reject(failed);
      return;
    }
    // Spread one turn's checks over every worker, in batches of at most BATCH_MAX.
    const size = Math.min(BATCH_MAX, Math.max(1, Math.ceil(all.length / threads)));
    for (let i = 0; i < all.length; i += size) post(all.slice(i, i + size));
  };
  const verify = ((signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array) => {
    if (failed !== undefined) return Promise.reject(failed);
    if (signature.length !== 64 || publicKey.length !== 32) return Promise.resolve(false);
    return new Promise<boolean>((resolve, reject) => {
      queue.push({ signature, message, publicKey, resolve, reject });
      if (!scheduled) {
        scheduled = true;
        setImmediate(flush);
      }
    });
  }) as SignatureVerifier & { close(): Promise<void> };
  verify.close = async () => {
    closed = true;
    fail(new Error('signature verifier closed'));
    await Promise.all((started ?? []).map((w) => w.terminate()));
  };
  return verify;
}
