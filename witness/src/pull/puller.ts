import { setTimeout as delay } from 'node:timers/promises';
import {
  bytesEqual,
  consistencyProof,
  readLimited,
  rootFromNodes,
  tileNodeReader,
  tilePath,
  utf8Decode,
  verifyConsistency,
  verifyCosignature,
} from '@vigil/client';
import { isWitnessError } from '../errors.js';
import type { LogRecord } from '../store.js';
import type { Logger, Witness } from '../witness/witness.js';
import type { WitnessMetrics } from '../metrics.js';

export interface PullerOptions {
  witness: Witness;
  logger: Logger;
  /** One HTTP request to a log. */
  timeoutMs: number;
  /** Longest wait between attempts after repeated errors. */
  maxBackoffMs: number;
  /** How often the list of logs is re-read to pick up `log add` / `log disable` (default 2 s). */
  refreshMs?: number;
  /** Least time between two re-posts of the same cosignature to a log that lacks it (default 30 s). */
  repostMs?: number;
  fetch?: typeof fetch;
  random?: () => number;
  /** Counts polls by result for GET /metrics. */
  metrics?: WitnessMetrics;
}

/** What one poll of a log did (for tests and debug logs). */
export type PollOutcome =
  | 'cosigned'
  | 'unchanged'
  | 'reposted'
  | 'raced'
  | 'evidence-fork'
  | 'evidence-inconsistent'
  | 'evidence-rollback';

/**
 * Byte limits on what a pulled log may send (a log is not trusted with the witness's memory).
 * A checkpoint note is a few hundred bytes; 16 KiB leaves room for many cosignatures, post-quantum
 * ones included. A full tile is 256 hashes of 32 bytes (c2sp.org/tlog-tiles). The answer to our
 * POST /v1/cosignatures is only shown in a log line. The puller reads no entry bundles; if it ever
 * does, one is at most 256 entries of 2 + 65,535 bytes.
 */
export const MAX_CHECKPOINT_BYTES = 16 * 1024;
export const MAX_TILE_BYTES = 256 * 32;
const MAX_POST_ANSWER_BYTES = 4 * 1024;

/**
 * Answers to POST /v1/cosignatures from a log that has no such endpoint: any log that is not Vigil
 * (tlog-tiles defines no way to hand a log a cosignature). Not a failure: the cosignature is stored
 * and served by our monitoring endpoint, GET /<hex sha-256(origin)>/checkpoint.
 */
const NO_COSIGNATURE_ENDPOINT = new Set([404, 405, 501]);

/** Exponential backoff with full jitter in [base/2, base]: base = interval * 2^failures, capped. */
export function backoffMs(failures: number, intervalMs: number, maxMs: number, random: () => number): number {
  const base = Math.min(maxMs, intervalMs * 2 ** Math.min(failures, 20));
  return Math.round(base / 2 + (random() * base) / 2);
}

/**
 * Pull mode (DESIGN.md "Witness"): for every enabled log with a URL, poll `<url>/checkpoint`; when it
 * verifies and grew, compute the consistency proof from the log's tiles with client-lib (a proof
 * endpoint is never trusted), cosign, compare-and-swap, then `POST <url>/v1/cosignatures`. Errors back
 * off with jitter and are retried forever; the stored state never moves backwards (the store's CAS).
 * The puller holds no tree state: each poll re-reads the store, so push and pull can run together.
 */
export class Puller {
  readonly #options: PullerOptions;
  readonly #fetch: typeof fetch;
  readonly #random: () => number;
  readonly #loops = new Map<string, Promise<void>>();
  readonly #abort = new AbortController();
  /** origin -> size and time of our last POST /v1/cosignatures, to bound re-posting. */
  readonly #posted = new Map<string, { size: bigint; at: number }>();
  #refresher: Promise<void> | undefined;

  constructor(options: PullerOptions) {
    this.#options = options;
    this.#fetch = options.fetch ?? fetch;
    this.#random = options.random ?? Math.random;
  }

  /** Starts polling every enabled log with a URL, and re-reads the log list every refreshMs. */
  start(): void {
    if (this.#refresher !== undefined) return;
    this.#refresher = this.#refreshLoop();
  }

  /** Stops every loop and waits for in-flight polls to finish. */
  async stop(): Promise<void> {
    this.#abort.abort();
    await this.#refresher;
    await Promise.all(this.#loops.values());
  }

  async #refreshLoop(): Promise<void> {
    const signal = this.#abort.signal;
    while (!signal.aborted) {
      try {
        for (const log of await this.#options.witness.store.listLogs()) {
          if (log.url !== null && !log.disabled && !this.#loops.has(log.origin)) {
            const loop = this.#logLoop(log.origin).finally(() => this.#loops.delete(log.origin));
            this.#loops.set(log.origin, loop);
          }
        }
      } catch (err) {
        this.#options.logger.warn({ err }, 'could not read the list of logs to pull');
      }
      await this.#sleep(this.#options.refreshMs ?? 2000);
    }
  }

  async #sleep(ms: number): Promise<void> {
    try {
      await delay(ms, undefined, { signal: this.#abort.signal });
    } catch {
      // aborted: the loops check the signal
    }
  }

  async #logLoop(origin: string): Promise<void> {
    const signal = this.#abort.signal;
    let failures = 0;
    while (!signal.aborted) {
      const log = await this.#options.witness.store.getLog(origin).catch(() => undefined);
      if (log === undefined || log.disabled || log.url === null) return;
      let wait = log.pullIntervalMs;
      try {
        const outcome = await this.pollOnce(log);
        this.#options.logger.debug({ origin, outcome }, 'polled log');
        this.#options.metrics?.pullPolls.inc(origin, 'ok');
        failures = 0;
      } catch (err) {
        failures += 1;
        this.#options.metrics?.pullPolls.inc(origin, 'failure');
        wait = backoffMs(failures, log.pullIntervalMs, this.#options.maxBackoffMs, this.#random);
        // A log that is down is retried, not forgotten.
        this.#options.logger.warn({ origin, failures, retryInMs: wait, err: String(err) }, 'pull failed');
      }
      await this.#sleep(wait);
    }
  }

  /**
   * One request to a log and its answer, bounded in bytes (`maxBytes`, else RESPONSE_TOO_LARGE) and in
   * time: one timer covers the headers and the whole body, so a log that stalls mid-body fails with a
   * TimeoutError after timeoutMs. No redirect is followed: a log names its own URL, and a redirect
   * could point the witness at any service it can reach (loopback, an internal network).
   * The timer and the stop listener hold the controller, so it cannot be collected mid-request.
   */
  async #exchange(
    url: string,
    init: RequestInit,
    maxBytes: number,
    what: string,
  ): Promise<{ status: number; body: Uint8Array }> {
    const controller = new AbortController();
    const ms = this.#options.timeoutMs;
    // The timer settles the exchange itself as well as aborting the request, so the deadline holds
    // whatever the HTTP stack does with the abort of a body it is still reading.
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const err = new DOMException(`${what}: no complete answer within ${ms} ms`, 'TimeoutError');
        controller.abort(err);
        reject(err);
      }, ms);
    });
    const stop = () => controller.abort(this.#abort.signal.reason);
    this.#abort.signal.addEventListener('abort', stop, { once: true });
    const exchange = (async () => {
      const res = await this.#fetch(url, { ...init, signal: controller.signal, redirect: 'error' });
      return { status: res.status, body: await readLimited(res, maxBytes, what) };
    })();
    exchange.catch(() => undefined); // settled by the deadline first: its own failure is not news
    try {
      return await Promise.race([exchange, deadline]);
    } finally {
      clearTimeout(timer);
      this.#abort.signal.removeEventListener('abort', stop);
    }
  }

  async #get(url: string, maxBytes: number, what: string): Promise<{ status: number; body: Uint8Array }> {
    return this.#exchange(
      url,
      { headers: { accept: 'text/plain, application/octet-stream' } },
      maxBytes,
      what,
    );
  }

  /** Reads a tile of `width` hashes; falls back to the full tile when the partial one is gone (tlog-tiles). */
  async #readTile(base: string, level: number, index: bigint, width: number): Promise<Uint8Array> {
    const want = width * 32;
    const what = `tile ${level}/${index}`;
    let res = await this.#get(`${base}/${tilePath({ level, index, width })}`, MAX_TILE_BYTES, what);
    if (res.status === 404 && width < 256) {
      res = await this.#get(`${base}/${tilePath({ level, index, width: 256 })}`, MAX_TILE_BYTES, what);
    }
    if (res.status !== 200) throw new Error(`tile ${level}/${index} width ${width}: http ${res.status}`);
    const bytes = res.body;
    if (bytes.length < want || (bytes.length !== want && bytes.length !== 256 * 32)) {
      throw new Error(`tile ${level}/${index} has ${bytes.length} bytes, want ${want}`);
    }
    return bytes.subarray(0, want);
  }

  /** One poll of one log; throws on transport errors and bad data (the loop backs off). */
  async pollOnce(log: LogRecord): Promise<PollOutcome> {
    if (log.url === null) throw new Error(`log ${log.origin} has no url`);
    const base = log.url.replace(/\/+$/, '');
    const witness = this.#options.witness;
    const res = await this.#get(`${base}/checkpoint`, MAX_CHECKPOINT_BYTES, 'checkpoint');
    if (res.status !== 200) throw new Error(`checkpoint: http ${res.status}`);
    const body = utf8Decode(res.body);
    const checkpoint = witness.verifyLogSignature(log, body);
    const latest = await witness.store.latest(log.origin);
    const current = latest?.size ?? 0n;

    if (latest !== undefined && checkpoint.size < current) {
      await witness.recordEvidence(log, {
        origin: log.origin,
        kind: 'rollback',
        source: 'pull',
        oldSize: current,
        newSize: checkpoint.size,
        oldNote: latest.note,
        newNote: checkpoint.note,
        proof: [],
        prefixRoot: null,
      });
      return 'evidence-rollback';
    }

    if (latest !== undefined && checkpoint.size === current) {
      if (!bytesEqual(checkpoint.root, latest.root)) {
        await witness.witnessPulled(log, latest, checkpoint, []).catch((err: unknown) => {
          if (!isWitnessError(err, 'PROOF_INVALID')) throw err;
        });
        return 'evidence-fork';
      }
      return (await this.#repostIfMissing(base, log, body, latest.note, latest.size))
        ? 'reposted'
        : 'unchanged';
    }

    let proof: Uint8Array[] = [];
    let getNode: ((level: number, index: bigint) => Promise<Uint8Array>) | undefined;
    if (latest !== undefined && current > 0n) {
      const reader = tileNodeReader(checkpoint.size, (level: number, index: bigint, width: number) =>
        this.#readTile(base, level, index, width),
      );
      getNode = async (level, index) => reader(level, index);
      proof = await consistencyProof(current, checkpoint.size, getNode);
    }
    let note: string;
    try {
      ({ note } = await witness.witnessPulled(log, latest, checkpoint, proof));
    } catch (err) {
      if (isWitnessError(err, 'SIZE_CONFLICT')) return 'raced';
      if (isWitnessError(err, 'PROOF_INVALID') && latest !== undefined && getNode !== undefined) {
        // Were the tiles the log served for the new tree consistent with its new root? If so, the
        // log's own data shows the first `current` leaves have another root: conclusive evidence.
        const newRoot = await rootFromNodes(checkpoint.size, getNode);
        if (!bytesEqual(newRoot, checkpoint.root)) {
          throw new Error(`tiles do not match the checkpoint of size ${checkpoint.size}`, { cause: err });
        }
        const prefixRoot = await rootFromNodes(current, getNode);
        verifyConsistency(current, checkpoint.size, prefixRoot, checkpoint.root, proof);
        await witness.recordEvidence(log, {
          origin: log.origin,
          kind: 'inconsistent',
          source: 'pull',
          oldSize: current,
          newSize: checkpoint.size,
          oldNote: latest.note,
          newNote: checkpoint.note,
          proof,
          prefixRoot,
        });
        return 'evidence-inconsistent';
      }
      throw err;
    }
    this.#options.logger.info(
      { origin: log.origin, oldSize: current.toString(), newSize: checkpoint.size.toString() },
      'cosigned pulled checkpoint',
    );
    await this.#post(base, note, checkpoint.size, log.origin);
    return 'cosigned';
  }

  /** Re-posts our stored cosignature when the log's checkpoint does not carry it (at most every repostMs). */
  async #repostIfMissing(
    base: string,
    log: LogRecord,
    served: string,
    note: string,
    size: bigint,
  ): Promise<boolean> {
    try {
      verifyCosignature(served, this.#options.witness.vkey);
      return false;
    } catch {
      // not there (or not verifiable): post it again, but not on every poll
    }
    const last = this.#posted.get(log.origin);
    if (last !== undefined && last.size === size && Date.now() - last.at < (this.#options.repostMs ?? 30_000))
      return false;
    await this.#post(base, note, size, log.origin);
    return true;
  }

  /**
   * Hands our cosignature to the log. A log without POST /v1/cosignatures (404, 405, 501) is not an
   * error: the cosignature is served by our monitoring endpoint, and the re-post interval bounds
   * how often we ask again. Any other refusal throws (the loop backs off).
   */
  async #post(base: string, note: string, size: bigint, origin: string): Promise<void> {
    const res = await this.#exchange(
      `${base}/v1/cosignatures`,
      { method: 'POST', headers: { 'content-type': 'text/plain; charset=utf-8' }, body: note },
      MAX_POST_ANSWER_BYTES,
      'cosignature answer',
    );
    const ok = res.status >= 200 && res.status < 300;
    if (!ok && !NO_COSIGNATURE_ENDPOINT.has(res.status)) {
      const text = new TextDecoder().decode(res.body.subarray(0, 200));
      throw new Error(`log refused our cosignature: http ${res.status} ${text}`);
    }
    if (!ok) {
      this.#options.logger.debug(
        { origin, status: res.status },
        'log takes no cosignatures; served at our monitoring endpoint',
      );
    }
    this.#posted.set(origin, { size, at: Date.now() });
  }
}
