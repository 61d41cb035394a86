// Push witnesses: send add-checkpoint (c2sp.org/tlog-witness) to every witness with a URL, at most
// once per interval, and store the cosignature lines they return.
import {
  base64Encode,
  cosignerKeyFromVerifierKey,
  parseDecimal,
  parseNote,
  readLimitedText,
  verifyCosignature,
} from '@vigil/client';
import type { FastifyBaseLogger } from 'fastify';
import { insertCosignature } from '../db/repository.js';
import type { LogService } from './service.js';

/** Timing of retries after a failed push (tests pass a clock and a fixed random). */
export interface PushRetryOptions {
  /** Longest wait before retrying a witness whose pushes keep failing (default 60 s). */
  maxBackoffMs?: number;
  clock?: () => number;
  random?: () => number;
}

/**
 * Per push witness (owned by WitnessPusher, moved only by #round):
 *   cosigned = size it cosigned last (-1 before the first success);
 *   idle -> pushing -> (cosigned: failures = 0 | failed: failures + 1, retryAt = now + backoff) -> idle.
 * A witness is pushed again when the head is past `cosigned` and `retryAt` has come, so a failed
 * push (a witness down or flooded) is retried with backoff until /checkpoint/witnessed catches up.
 */
interface PushState {
  cosigned: bigint;
  failures: number;
  retryAt: number;
}

export class WitnessPusher {
  readonly #tlog: LogService;
  readonly #logger: FastifyBaseLogger;
  readonly #intervalMs: number;
  readonly #maxBackoffMs: number;
  readonly #clock: () => number;
  readonly #random: () => number;
  readonly #oldSize = new Map<string, bigint>();
  readonly #state = new Map<string, PushState>();
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;

  constructor(tlog: LogService, logger: FastifyBaseLogger, intervalMs: number, retry: PushRetryOptions = {}) {
    this.#tlog = tlog;
    this.#logger = logger;
    this.#intervalMs = intervalMs;
    this.#maxBackoffMs = Math.max(intervalMs, retry.maxBackoffMs ?? 60_000);
    this.#clock = retry.clock ?? Date.now;
    this.#random = retry.random ?? Math.random;
  }

  start(): void {
    this.#timer = setInterval(() => void this.pushOnce(), this.#intervalMs);
    this.#timer.unref();
  }

  async stop(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    await this.#running;
  }

  /**
   * One round: push the newest checkpoint to every push witness that has not cosigned it, except those
   * still waiting out the backoff of a failed push.
   */
  pushOnce(): Promise<void> {
    if (this.#running) return this.#running;
    this.#running = this.#round().finally(() => (this.#running = undefined));
    return this.#running;
  }

  async #round(): Promise<void> {
    const witnesses = (await this.#tlog.witnesses()).filter((w) => w.url);
    if (witnesses.length === 0) return;
    const head = await this.#tlog.head();
    if (!head) return;
    for (const w of witnesses) {
      const state = this.#state.get(w.name) ?? { cosigned: -1n, failures: 0, retryAt: 0 };
      this.#state.set(w.name, state);
      if (state.cosigned === head.size || this.#clock() < state.retryAt) continue;
      try {
        await this.#push(w.name, w.vkey, w.url!, head.size, head.note);
        state.cosigned = head.size;
        state.failures = 0;
        state.retryAt = 0;
      } catch (err) {
        state.failures += 1;
        // Exponential with jitter in [base/2, base], capped: a flooded witness is not hammered.
        const base = Math.min(this.#maxBackoffMs, this.#intervalMs * 2 ** Math.min(state.failures - 1, 20));
        const wait = Math.round(base / 2 + (this.#random() * base) / 2);
        state.retryAt = this.#clock() + wait;
        this.#logger.warn(
          { err, witness: w.name, failures: state.failures, retryInMs: wait },
          'add-checkpoint failed',
        );
      }
    }
  }

  async #push(name: string, vkey: string, url: string, size: bigint, note: string): Promise<void> {
    for (let attempt = 0; attempt < 2; attempt++) {
      const old = this.#oldSize.get(name) ?? 0n;
      let proof: Uint8Array[] = [];
      if (old > 0n && old < size) proof = await this.#tlog.tiles.consistencyProof(old, size);
      const body = `old ${old}\n${proof.map((p) => `${base64Encode(p)}\n`).join('')}\n${note}`;
      const res = await fetch(`${url.replace(/\/$/, '')}/add-checkpoint`, {
        method: 'POST',
        headers: { 'content-type': 'text/plain; charset=utf-8' },
        body,
        signal: AbortSignal.timeout(10_000),
        redirect: 'error',
      });
      // A witness answers a size or a few cosignature lines; 64 KiB bounds what it can make us hold.
      const text = await readLimitedText(res, 65_536, `witness ${name} answer`);
      if (res.status === 409 && (res.headers.get('content-type') ?? '').startsWith('text/x.tlog.size')) {
        const theirs = parseDecimal(text.trim());
        if (theirs > size) throw new Error(`witness ${name} is at size ${theirs}, beyond ours (${size})`);
        if (theirs > 0n && !(await this.#tlog.publishedCheckpoint(theirs))) {
          throw new Error(`witness ${name} is at size ${theirs}, which this log never published`);
        }
        this.#oldSize.set(name, theirs);
        continue;
      }
      if (res.status !== 200)
        throw new Error(`witness ${name} answered ${res.status}: ${text.slice(0, 200)}`);
      const { line, timestamp } = cosignatureLine(note + text, vkey);
      await insertCosignature(this.#tlog.db, { size, witness: name, line, timestamp });
      this.#tlog.cosignatureAdded();
      this.#oldSize.set(name, size);
      return;
    }
    throw new Error(`witness ${name} kept answering 409`);
  }
}

/**
 * The verified cosignature line of the witness with `vkey` in `note`, and its timestamp. Throws
 * NO_KNOWN_SIGNATURE / COSIGNATURE_INVALID (c2sp.org/tlog-cosignature).
 */
export function cosignatureLine(note: string, vkey: string): { line: string; timestamp: bigint } {
  const timestamp = verifyCosignature(note, vkey);
  const key = cosignerKeyFromVerifierKey(vkey);
  const sig = parseNote(note).signatureLines.find((l) => l.name === key.name && l.keyId === key.keyId);
  if (!sig) throw new Error('verified cosignature line not found');
  return { line: sig.line.endsWith('\n') ? sig.line : `${sig.line}\n`, timestamp };
}
