/**
 * The emitter (node-only): signs records, keeps stream/seq/prev, spools them durably and ships them to
 * the log in the background (DESIGN.md "Client library and CLI", "Contract details").
 *
 * State ownership: this object owns the stream (uuid, next seq, prev hash) in memory; the spool owns
 * durability. A record is given its seq and prev, signed and appended to the spool before any later
 * record is built, so the spool order is the stream order. The shipper is the only reader of the spool
 * head and the only caller of `spool.ack`, and it acks only after every receipt of a batch verified.
 * After a crash the next run starts a new stream; the old stream's spooled records are shipped first
 * (they are ahead in the spool), and that stream stays unclosed, which the auditor reports.
 *
 * Size: a record is built only if its entry and its POST fit the log's limits (learned from
 * `GET /v1/log`, else DEFAULT_LIMITS), and a POST takes records only up to the body limit.
 *
 * Refusals: a record the log refuses for good (400, 409, 413, 422) must not hold back the ones behind
 * it. Its stream cannot go on past it (seq/prev), so the records of that stream from it on are set
 * aside in the spool's refused/ directory; the later ones are re-sent in the current stream (marked
 * `resent`), and a `record.refused` record says what was refused and why. When the refused record
 * is of the current stream, the emitter first moves to a new stream (`stream.open` with `rotated`).
 *   shipping -> (refused: rotate if current -> record.refused + resend -> set aside) -> shipping
 * A refusal of those bookkeeping records themselves, or a refusal of the emitter (401, 403: revoked,
 * bad signature) raises the alarm and stops shipping: a human must act.
 */
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import * as os from 'node:os';
import { LogClient, LogRequestError, type SubmitResult } from '../client.js';
import { getCryptoProvider, sha256 } from '../crypto.js';
import { base64Decode, base64Encode, utf8, utf8Decode } from '../encoding.js';
import { TlogError } from '../errors.js';
import { parseCheckpoint, parseSignerKey } from '../note/index.js';
import { parsePolicy, type Policy } from '../policy/index.js';
import { parseReceipt, verifyReceipt } from '../receipt/index.js';
import { canonicalJson, parseEntry } from '../record.js';
import { decodeEntryBundle } from '../tiles/index.js';
import { Backoff, type BackoffOptions } from './backoff.js';
import { DEFAULT_LIMITS, entryOverhead, itemBodyBytes, limitsFromLogInfo, type LogLimits } from './limits.js';
import { Spool, type SpoolItem, type TornTail } from './spool.js';

export type EmitMode = 'spool' | 'sync';

export interface EmitterOptions {
  /** The log's URL prefix (where /v1/entries and /tile/ live). */
  logUrl: string;
  /** Signer key text `PRIVATE+KEY+<name>+<id>+<base64>`; the key name is the emitter name. */
  key: string;
  /** Spool directory, one per emitter process (locked). */
  spoolDir: string;
  /**
   * Trust for receipts: a Policy or tlog-policy text. Without one the log key is taken from the log's
   * `/v1/log` on first contact (trust on first use), and a 'warning' event says so.
   */
  policy?: Policy | string;
  /** `spool` (default): emit resolves once the record is fsynced. `sync`: once the log acknowledged it. */
  mode?: EmitMode;
  /** Extra fields for the `stream.open` record (e.g. the MCP server command). */
  open?: Record<string, unknown>;
  /**
   * Bytes referenced from `open` (`$blob` or `$sealed` refs, e.g. a sealed command line), keyed by
   * hex SHA-256: they travel with every `stream.open` this emitter writes, like `emit`'s `blobs`.
   */
  openBlobs?: Record<string, Uint8Array>;
  /** `program` in stream.open; default process.argv[1] or process.argv0. */
  program?: string;
  /** Records per POST; default 256 (the log takes up to 1,000). */
  batchSize?: number;
  /**
   * Bytes a POST aims at (default 4 MiB; never more than the log's body limit): a record with large
   * blobs goes in a POST of its own rather than in one of many MiB that the process must build whole.
   */
  postBytes?: number;
  /**
   * How long the shipper lets spool-mode records gather before it POSTs them, so that a burst (or an
   * answer and the next request) shares one POST; default 10 ms, 0 to post at once. A sync emit,
   * flush() and close() never wait for it.
   */
  lingerMs?: number;
  /** In sync mode, reject emit() after this long without a verified receipt; default 10 s. */
  syncTimeoutMs?: number;
  backoff?: BackoffOptions;
  /** Per-request timeout; default 30 s. */
  requestTimeoutMs?: number;
  fetch?: typeof fetch;
  /** Clock for record `time`; default Date.now. */
  now?: () => number;
  segmentBytes?: number;
  /** Called for every warning (torn spool tail found at start, retries, trust on first use). */
  onWarning?: (err: Error) => void;
  /** Called for an alarm (see EmitterAlarm), whether or not an 'error' listener exists. */
  onError?: (err: Error) => void;
}

/** A verified receipt for one of our records. */
export interface EmitterReceipt {
  stream: string;
  seq: number;
  index: bigint;
  receipt: string;
  /** The entry bytes the receipt proves. */
  entry: Uint8Array;
}

/** Everything that can go to a record besides the fields the emitter sets. */
export type RecordFields = { kind: string } & Record<string, unknown>;

/** Kind of the record that says the log refused one of ours. */
export const REFUSED_KIND = 'record.refused';

/** Least time between two tries to learn the log's limits while it does not answer. */
const LIMITS_RETRY_MS = 60_000;

/** Statuses with which the log refuses a record for what it is (never for who sent it). */
const RECORD_REFUSALS = new Set([400, 409, 413, 422]);

/** Longest wait between a verified receipt and trimming the spool past it. */
const TRIM_DELAY_MS = 100;

const RESERVED = ['v', 'stream', 'seq', 'prev', 'time'];

/** Raised (as an 'error' event and by later calls) when the log misbehaves; shipping stops. */
export class EmitterAlarm extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'EmitterAlarm';
    this.code = code;
  }
}

interface Waiter {
  resolve: (r: EmitterReceipt) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

function rfc3339ms(ms: number): string {
  return new Date(ms).toISOString();
}

function waitFor(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = (): void => {
      clearTimeout(timer);
      resolve();
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * Events (via on/off): 'receipt' (EmitterReceipt), 'warning' (Error: retries, trust on first use),
 * 'error' (EmitterAlarm: a receipt failed verification or the log refused our records; shipping
 * stops), 'shipped' (count). The alarm is also kept in `alarm` and rejects flush(), close() and
 * sync emits. (Not an EventEmitter subclass: `emit` is the record API.)
 */
export class Emitter {
  /** The emitter name (the signer key's name). */
  readonly name: string;
  /** The current stream id (a new one after the log refused a record of this one for good). */
  get stream(): string {
    return this.currentStream;
  }
  readonly client: LogClient;
  alarm: EmitterAlarm | undefined;

  private currentStream: string;
  private seq = 0;
  private prev: string | undefined;
  private limits: LogLimits = DEFAULT_LIMITS;
  private limitsLearned = false;
  private limitsTriedAt = -Infinity;
  /** POST body bytes of each spooled record (see fit). */
  private readonly bodyBytes = new WeakMap<SpoolItem, number>();
  /** After a batch was refused: send one record a POST up to this one, to find the refused record. */
  private probeUntil: SpoolItem | undefined;
  /** A refusal is being handled (refuse): the express lane leaves everything to the main lane. */
  private refusing = false;
  private readonly spool: Spool;
  private readonly options: EmitterOptions;
  private policy: Policy | undefined;
  private readonly backoff: Backoff;
  private readonly waiters = new Map<string, Waiter>();
  private readonly stop = new AbortController();
  private wake: (() => void) | undefined;
  private shipping: Promise<void> | undefined;
  private closing = false;
  private chain: Promise<unknown> = Promise.resolve();
  private readonly now: () => number;
  private readonly events = new EventEmitter();
  private readonly seed: Uint8Array;
  /** Pending records whose receipts verified (always a prefix of the spool's pending list). */
  private readonly verified = new WeakSet<SpoolItem>();
  /** Canonical JSON of records emitted by this run (recovered ones are canonicalised when checked). */
  private readonly canonical = new WeakMap<SpoolItem, string>();
  /** The main lane's batch while its POST (or the backoff after it) is under way. */
  private mainBatch: readonly SpoolItem[] | undefined;
  /** A sync record's own POST, sent while the main lane is busy (see shipSync). */
  private express: Promise<void> | undefined;
  private expressAgain: SpoolItem | undefined;
  /** Cuts the main lane's backoff short once an express POST got through. */
  private backoffWake: (() => void) | undefined;
  private acking: Promise<void> = Promise.resolve();
  /** Ends the main lane's linger early (a sync record, flush, close). */
  private lingerWake: (() => void) | undefined;
  private flushing = 0;
  /** Sync emits between their build and their fsync. */
  private syncAppending = 0;
  private trimScheduled = false;
  private trimWake: (() => void) | undefined;
  private trusting: Promise<void> | undefined;
  /** Torn spool tails found when this emitter opened its spool (also sent as warnings). */
  readonly tornTails: TornTail[];

  /** Use createEmitter(). */
  constructor(options: EmitterOptions, spool: Spool, name: string, policy: Policy | undefined) {
    this.tornTails = spool.tornTails;
    this.options = options;
    this.spool = spool;
    this.name = name;
    this.policy = policy;
    this.currentStream = randomUUID();
    this.client = new LogClient(options.logUrl, {
      ...(options.fetch !== undefined ? { fetch: options.fetch } : {}),
      timeoutMs: options.requestTimeoutMs ?? 30_000,
    });
    this.backoff = new Backoff(options.backoff);
    this.now = options.now ?? Date.now;
    this.seed = parseSignerKey(options.key).seed;
  }

  /** Records spooled and not yet acknowledged by the log. */
  get backlog(): number {
    return this.spool.size;
  }

  /**
   * Builds `{v:1, stream, seq, prev, time, ...fields}`, signs it and spools it. Resolves when durable
   * (mode spool) or when the log's receipt verified (mode sync). `fields.kind` is required; the
   * emitter-owned fields (v, stream, seq, prev, time) may not be given. `blobs` (hex SHA-256 ->
   * bytes) are the payloads the record references as `{"$blob":{...}}`; they are spooled and submitted
   * with it.
   */
  emit(
    fields: RecordFields,
    options: { mode?: EmitMode; blobs?: Record<string, Uint8Array>; syncTimeoutMs?: number } = {},
  ): Promise<EmitterReceipt | undefined> {
    if (typeof fields.kind !== 'string' || fields.kind === '') {
      return Promise.reject(new TlogError('RECORD_INVALID', 'record kind must be a non-empty string'));
    }
    for (const k of RESERVED) {
      if (k in fields)
        return Promise.reject(new TlogError('RECORD_INVALID', `field ${k} is set by the emitter`));
    }
    if (this.closing && fields.kind !== 'stream.close') {
      return Promise.reject(new Error('emitter is closed'));
    }
    const mode = options.mode ?? this.options.mode ?? 'spool';
    if (mode === 'sync' && this.alarm !== undefined) return Promise.reject(this.alarm);
    // Build, sign and append in one critical section so seq/prev follow spool order.
    const { kind, ...rest } = fields;
    const record: SpoolItem['record'] = {
      v: 1,
      stream: this.currentStream,
      seq: this.seq,
      ...(this.prev !== undefined ? { prev: this.prev } : {}),
      time: rfc3339ms(this.now()),
      kind,
      ...rest,
    };
    // Canonicalise once: the same bytes are signed, hashed (the next prev) and spooled.
    let canonical: string;
    let sig: string;
    let hash: string;
    try {
      canonical = canonicalJson(record); // rejects values RFC 8785 cannot carry, before seq advances
      const bytes = utf8(canonical);
      this.checkSize(bytes.length, options.blobs);
      sig = base64Encode(getCryptoProvider().ed25519Sign(bytes, this.seed));
      hash = base64Encode(sha256(bytes));
    } catch (err) {
      return Promise.reject(err as Error);
    }
    this.seq += 1;
    this.prev = hash;
    const item: SpoolItem = { emitter: this.name, record, sig };
    this.canonical.set(item, canonical);
    if (options.blobs !== undefined && Object.keys(options.blobs).length > 0) {
      // Blob bytes travel with the submission (DESIGN.md "Large payloads"): spooled with the record,
      // keyed by lowercase hex SHA-256, base64 on the wire. The log checks hash and size.
      item.blobs = Object.fromEntries(
        Object.entries(options.blobs).map(([hex, bytes]) => [hex, base64Encode(bytes)]),
      );
    }
    const key = `${record.stream}/${record.seq}`;
    const ack =
      mode === 'sync'
        ? new Promise<EmitterReceipt>((resolve, reject) => {
            const timeoutMs = options.syncTimeoutMs ?? this.options.syncTimeoutMs ?? 10_000;
            const timer = setTimeout(() => {
              this.waiters.delete(key);
              reject(
                new EmitterAlarm(
                  'SYNC_TIMEOUT',
                  `log did not acknowledge ${key} within ${timeoutMs} ms; the record stays spooled and will be shipped`,
                ),
              );
            }, timeoutMs);
            this.waiters.set(key, { resolve, reject, timer });
          })
        : undefined;
    if (mode === 'sync') this.syncAppending++;
    const durable = this.spool.append([item], [canonical]).then(
      () => {
        if (mode !== 'sync') return this.kick();
        this.syncAppending--;
        this.shipSync(item);
      },
      (err: unknown) => {
        if (mode === 'sync') this.syncAppending--;
        this.hurry();
        throw err;
      },
    );
    this.chain = durable.catch(() => undefined);
    if (ack === undefined) return durable.then(() => undefined);
    return durable.then(() => ack);
  }

  /**
   * Refuses (before the record takes a seq) what the log could never take: an entry over its entry
   * limit, or a record whose blobs make a POST over its body limit. Throws RECORD_INVALID.
   */
  private checkSize(recordBytes: number, blobs: Record<string, Uint8Array> | undefined): void {
    const entry = recordBytes + entryOverhead(this.name);
    if (entry > this.limits.maxEntryBytes) {
      throw new TlogError(
        'RECORD_INVALID',
        `record makes an entry of up to ${entry} bytes, the log takes at most ${this.limits.maxEntryBytes}; move large values to blobs`,
      );
    }
    let body = entry;
    for (const b of Object.values(blobs ?? {})) body += Math.ceil(b.length / 3) * 4 + 72;
    if (body > this.limits.maxBodyBytes) {
      throw new TlogError(
        'RECORD_INVALID',
        `record and its blobs make a request of up to ${body} bytes, the log takes at most ${this.limits.maxBodyBytes}; split the blobs`,
      );
    }
  }

  /** Resolves when every record spooled so far has a verified receipt. */
  async flush(): Promise<void> {
    this.flushing++;
    try {
      await this.chain;
      this.hurry();
      this.trimNow();
      await this.drained();
    } finally {
      this.flushing--;
    }
  }

  private async drained(): Promise<void> {
    while (this.spool.size > 0) {
      if (this.alarm !== undefined) throw this.alarm;
      if (this.shipping === undefined) throw new Error('emitter is stopped with records still spooled');
      await new Promise<void>((resolve) => {
        const done = (): void => {
          this.events.off('shipped', done);
          this.events.off('alarm', done);
          resolve();
        };
        this.events.on('shipped', done);
        this.events.on('alarm', done);
      });
    }
    if (this.alarm !== undefined) throw this.alarm;
  }

  /**
   * Writes `stream.close`, waits until everything is shipped (at most `timeoutMs`, default 30 s), stops
   * the shipper and releases the spool. Records not shipped in time stay spooled for the next run.
   */
  async close(options: { reason?: string; timeoutMs?: number } = {}): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    let failure: Error | undefined;
    try {
      await this.emit({
        kind: 'stream.close',
        ...(options.reason !== undefined ? { reason: options.reason } : {}),
      });
      const timeout = new Promise<never>((_, reject) =>
        setTimeout(
          () =>
            reject(new Error(`close: ${this.spool.size} records still unshipped; they stay in the spool`)),
          options.timeoutMs ?? 30_000,
        ).unref(),
      );
      await Promise.race([this.flush(), timeout]);
    } catch (err) {
      failure = err as Error;
    }
    await this.shutdown();
    if (failure !== undefined) throw failure;
  }

  /** Stops shipping and releases the spool without writing stream.close (what a crash looks like). */
  async shutdown(): Promise<void> {
    this.closing = true;
    this.stop.abort();
    this.hurry();
    this.trimNow();
    await this.shipping;
    await this.express;
    await this.acking;
    for (const [key, w] of this.waiters) {
      clearTimeout(w.timer);
      w.reject(new Error(`emitter stopped before ${key} was acknowledged; it stays spooled`));
    }
    this.waiters.clear();
    await this.spool.close();
  }

  /** @internal starts the background shipper. */
  start(): void {
    this.shipping = this.shipLoop().finally(() => {
      this.shipping = undefined;
    });
  }

  private kick(): void {
    this.wake?.();
  }

  /** Wakes the main lane and ends its linger: something waits for the log. */
  private hurry(): void {
    this.wake?.();
    this.lingerWake?.();
  }

  /** Ends the wait before the spool is trimmed (flush, close, shutdown). */
  private trimNow(): void {
    this.trimWake?.();
  }

  private raise(alarm: EmitterAlarm): void {
    this.alarm = alarm;
    for (const [, w] of this.waiters) {
      clearTimeout(w.timer);
      w.reject(alarm);
    }
    this.waiters.clear();
    this.emit2('alarm');
    this.emit2('error', alarm);
  }

  /** Subscribes to 'receipt', 'warning', 'error', 'shipped'. */
  on(event: 'receipt', listener: (r: EmitterReceipt) => void): this;
  on(event: 'warning' | 'error' | 'refused', listener: (err: Error) => void): this;
  on(event: 'shipped' | 'alarm', listener: (n?: number) => void): this;
  on(event: string, listener: (...args: any[]) => void): this {
    this.events.on(event, listener);
    return this;
  }

  off(event: string, listener: (...args: any[]) => void): this {
    this.events.off(event, listener);
    return this;
  }

  private emit2(event: string, arg?: unknown): void {
    if (event === 'warning') this.options.onWarning?.(arg as Error);
    if (event === 'error') {
      this.options.onError?.(arg as Error);
      if (this.events.listenerCount('error') === 0) return;
    }
    this.events.emit(event, arg);
  }

  /** Pending records from the first one without a verified receipt: what the next POST must start with. */
  private unverified(): readonly SpoolItem[] {
    const pending = this.spool.pending();
    let i = 0;
    while (i < pending.length && this.verified.has(pending[i]!)) i++;
    return i === 0 ? pending : pending.slice(i);
  }

  /**
   * The main lane: one POST at a time, each taking everything unverified (up to batchSize) from the
   * head of the spool, so records reach the log in seq order. The next POST goes out as soon as the
   * previous one is verified; trimming the spool (settle -> ack) runs behind it.
   */
  private async shipLoop(): Promise<void> {
    const signal = this.stop.signal;
    while (!signal.aborted && this.alarm === undefined) {
      if (this.express !== undefined) {
        // A sync record's POST is out with everything before it: wait rather than send it all twice.
        await this.express;
        continue;
      }
      const batchSize =
        this.probeUntil !== undefined
          ? 1
          : Math.min(this.options.batchSize ?? 256, this.limits.maxEntriesPerRequest);
      let batch = this.fit(this.unverified().slice(0, batchSize));
      if (batch.length === 0) {
        await new Promise<void>((resolve) => {
          this.wake = resolve;
          if (this.unverified().length > 0 || signal.aborted) resolve();
        });
        this.wake = undefined;
        continue;
      }
      if (batch.length < batchSize && (await this.linger(batch))) {
        batch = this.fit(this.unverified().slice(0, batchSize));
        if (batch.length === 0) continue;
      }
      this.mainBatch = batch;
      try {
        const receipts = await this.ship(batch);
        if (signal.aborted) return;
        this.settle(batch, receipts);
      } catch (err) {
        if (signal.aborted || this.alarm !== undefined) return;
        const delay = this.failed(batch, err);
        if (delay === undefined) return;
        if (delay === 'refused') {
          this.mainBatch = undefined;
          await this.refuse(batch[0]!, (err as SubmitFailure).cause as LogRequestError);
          continue;
        }
        if (delay === 0) continue;
        await new Promise<void>((resolve) => {
          this.backoffWake = resolve;
          void waitFor(delay, signal).then(resolve);
        });
        this.backoffWake = undefined;
      } finally {
        this.mainBatch = undefined;
      }
    }
  }

  /**
   * Lets spool-mode records gather for lingerMs before the main lane POSTs them (not when a sync
   * record, flush() or close() is waiting: those end it at once).
   */
  private async linger(batch: readonly SpoolItem[]): Promise<boolean> {
    const ms = this.options.lingerMs ?? 10;
    if (ms <= 0 || this.flushing > 0 || this.closing) return false;
    if (batch.some((item) => this.waiters.has(`${item.record.stream}/${item.record.seq}`))) return false;
    // A sync record still on its way into the spool ends the linger when it is durable (shipSync),
    // so that it shares this POST rather than wait behind it.
    await new Promise<void>((resolve) => {
      this.lingerWake = resolve;
      const expire = (): void => {
        if (this.syncAppending === 0 || this.stop.signal.aborted) return resolve();
        void waitFor(ms, this.stop.signal).then(expire);
      };
      void waitFor(ms, this.stop.signal).then(expire);
    });
    this.lingerWake = undefined;
    return true;
  }

  /**
   * A sync record is durable: it should reach the log now, not after the main lane's POST in flight
   * (the previous call's answers) and its checks. When the main lane is busy, one extra POST takes
   * every unverified record up to and including this one. Its head overlaps what the main lane has in
   * flight; the log answers those resends idempotently with the original index, so the stream still
   * arrives in seq order whichever POST the log takes first.
   */
  private shipSync(item: SpoolItem): void {
    if (this.alarm !== undefined || this.stop.signal.aborted || this.verified.has(item)) return;
    if (this.refusing || this.probeUntil !== undefined) return this.hurry();
    if (this.mainBatch === undefined || this.mainBatch.includes(item)) return this.hurry();
    if (this.express !== undefined) {
      this.expressAgain = item;
      return;
    }
    const pending = this.unverified();
    const end = pending.indexOf(item);
    if (end === -1 || end >= (this.options.batchSize ?? 256)) return this.hurry();
    const batch = pending.slice(0, end + 1);
    if (this.fit(batch).length < batch.length) return this.hurry();
    this.express = this.ship(batch)
      .then(
        (receipts) => {
          if (this.stop.signal.aborted) return;
          this.settle(batch, receipts);
          this.backoffWake?.();
        },
        (err: unknown) => {
          if (this.stop.signal.aborted || this.alarm !== undefined) return;
          this.failed(batch, err); // retries and refusals are left to the main lane
        },
      )
      .finally(() => {
        this.express = undefined;
        const again = this.expressAgain;
        this.expressAgain = undefined;
        if (again !== undefined) this.shipSync(again);
        this.kick();
      });
  }

  /** The longest head of `items` whose POST body stays within the log's limit (at least one item). */
  private fit(items: readonly SpoolItem[]): readonly SpoolItem[] {
    const limit = Math.min(this.limits.maxBodyBytes, this.options.postBytes ?? 4 * 1024 * 1024) - 64;
    let total = 0;
    for (let i = 0; i < items.length; i++) {
      const item = items[i]!;
      let bytes = this.bodyBytes.get(item);
      if (bytes === undefined) {
        const record = this.canonical.get(item) ?? canonicalJson(item.record);
        bytes = itemBodyBytes(item, Buffer.byteLength(record));
        this.bodyBytes.set(item, bytes);
      }
      total += bytes + 1;
      if (total > limit && i > 0) return items.slice(0, i);
    }
    return items;
  }

  /**
   * Learns the log's limits from `GET /v1/log` (at most once a minute while it does not answer; the
   * defaults hold meanwhile). Never throws.
   */
  private async learnLimits(): Promise<void> {
    if (this.limitsLearned || this.now() - this.limitsTriedAt < LIMITS_RETRY_MS) return;
    this.limitsTriedAt = this.now();
    try {
      this.limits = limitsFromLogInfo((await this.client.logInfo()).limits);
      this.limitsLearned = true;
    } catch {
      // The defaults stay; the submit that follows reports the log's state.
    }
  }

  /** POSTs a batch and verifies every result (throws what submit or verification threw). */
  private async ship(batch: readonly SpoolItem[]): Promise<EmitterReceipt[]> {
    let results: SubmitResult[];
    try {
      if (this.policy === undefined) {
        this.trusting ??= this.trustOnFirstUse().finally(() => {
          this.trusting = undefined;
        });
        await this.trusting;
      }
      await this.learnLimits();
      results = (await this.client.submit(batch)).entries;
    } catch (err) {
      throw new SubmitFailure(err);
    }
    return this.verifyResults(batch, results);
  }

  /**
   * Classifies a failed POST: returns the backoff delay for a retryable one (after a warning); 0 when
   * a batch of several was refused (the next POSTs carry one record each until the refused one is
   * found); 'refused' when the log refused the one record of the batch for what it is; else raises
   * the alarm (the log refuses us, or a receipt does not verify) and returns undefined.
   */
  private failed(batch: readonly SpoolItem[], failure: unknown): number | 'refused' | undefined {
    const submitting = failure instanceof SubmitFailure;
    const err = submitting ? failure.cause : failure;
    if (err instanceof LogRequestError && (err.retryable || (submitting && err.code === 'EMITTER_UNKNOWN'))) {
      // Submit: network, 5xx, 429 or an unregistered key. Verification: could not fetch the entries
      // to check the receipts. Either way resend later (idempotent on the log).
      const delay = this.backoff.next(
        !submitting || err.status === 429 || err.status === 503 ? err.retryAfterMs : undefined,
      );
      this.emit2('warning', new Error(`${err.message}; retrying in ${delay} ms`, { cause: err }));
      return delay;
    }
    if (submitting && err instanceof LogRequestError && RECORD_REFUSALS.has(err.status)) {
      if (batch.length === 1) return 'refused';
      this.probeUntil = batch[batch.length - 1];
      this.emit2(
        'warning',
        new Error(`log refused a batch of ${batch.length} (${err.code}); sending them one at a time`),
      );
      return 0;
    }
    const first = batch[0]!.record;
    const alarm = submitting
      ? new EmitterAlarm(
          err instanceof LogRequestError ? err.code : 'SUBMIT_FAILED',
          `log refused records ${first.stream}/${first.seq}..: ${(err as Error).message}`,
          { cause: err },
        )
      : new EmitterAlarm(
          'RECEIPT_INVALID',
          `receipt for ${first.stream} failed verification: ${(err as Error).message}`,
          { cause: err },
        );
    this.raise(alarm);
    return undefined;
  }

  /**
   * A batch verified: sync emits resolve and 'receipt' fires now (each record once, though two POSTs
   * may have carried it); the spool is trimmed behind, in order, and 'shipped' fires after that.
   */
  private settle(batch: readonly SpoolItem[], receipts: EmitterReceipt[]): void {
    this.backoff.reset();
    if (this.probeUntil !== undefined && batch.includes(this.probeUntil)) this.probeUntil = undefined;
    receipts.forEach((r, i) => {
      const item = batch[i]!;
      if (this.verified.has(item)) return;
      this.verified.add(item);
      const key = `${r.stream}/${r.seq}`;
      const w = this.waiters.get(key);
      if (w !== undefined) {
        clearTimeout(w.timer);
        this.waiters.delete(key);
        w.resolve(r);
      }
      this.emit2('receipt', r);
    });
    if (this.trimScheduled) return;
    this.trimScheduled = true;
    this.acking = this.acking.then(async () => {
      // Trimming costs two fsyncs and a rename: batch it (every TRIM_DELAY_MS at most) rather than
      // compete for the disk with the next append. flush(), close() and shutdown() end the wait.
      if (this.flushing === 0 && !this.closing) {
        await new Promise<void>((resolve) => {
          this.trimWake = resolve;
          void waitFor(TRIM_DELAY_MS, this.stop.signal).then(resolve);
        });
        this.trimWake = undefined;
      }
      this.trimScheduled = false;
      const pending = this.spool.pending();
      let n = 0;
      while (n < pending.length && this.verified.has(pending[n]!)) n++;
      if (n === 0) return;
      try {
        await this.spool.ack(n);
      } catch (err) {
        this.raise(
          new EmitterAlarm('SPOOL_FAILED', `cannot trim the spool: ${(err as Error).message}`, {
            cause: err,
          }),
        );
        return;
      }
      this.emit2('shipped', n);
    });
  }

  /**
   * The log refused `item` for good (see the class comment): moves to a new stream if it is of the
   * current one, records the refusal, re-sends the records of its stream behind it in the current
   * stream, waits until those are durable, then sets the refused ones aside in the spool.
   */
  private async refuse(item: SpoolItem, err: LogRequestError): Promise<void> {
    const { stream, seq } = item.record;
    const kind = String(item.record['kind']);
    const what = `${stream}/${seq} (${kind})`;
    if (kind === REFUSED_KIND || (kind === 'stream.open' && 'rotated' in item.record)) {
      this.raise(
        new EmitterAlarm(err.code, `log refused ${what}, written after an earlier refusal: ${err.message}`, {
          cause: err,
        }),
      );
      return;
    }
    this.refusing = true;
    try {
      if (stream === this.currentStream) this.rotate(stream, seq, err.code);
      // Every record of the refused stream is in the spool once the emits before this point are.
      await this.chain;
      const task = this.acking.then(async () => {
        const pending = this.spool.pending();
        const from = pending.indexOf(item);
        if (from === -1 || pending.slice(0, from).some((p) => !this.verified.has(p))) return;
        let to = from + 1;
        while (to < pending.length && pending[to]!.record.stream === stream) to++;
        const later = pending.slice(from + 1, to);
        const waiter = this.waiters.get(`${stream}/${seq}`);
        if (waiter !== undefined) {
          clearTimeout(waiter.timer);
          this.waiters.delete(`${stream}/${seq}`);
          waiter.reject(new EmitterAlarm('RECORD_REFUSED', `log refused ${what}: ${err.message}`));
        }
        let resent = 0;
        const refusal = this.emit(
          {
            kind: REFUSED_KIND,
            refused: {
              stream,
              seq,
              kind,
              status: err.status,
              code: err.code,
              message: err.message.slice(0, 512),
              bytes: this.bodyBytes.get(item) ?? 0,
            },
            behind: later.length,
          },
          { mode: 'spool' },
        );
        for (const old of later) if (this.resend(old)) resent++;
        await refusal;
        await this.chain;
        const file = await this.spool.refuse(from, to);
        const alarm = new EmitterAlarm(
          'RECORD_REFUSED',
          `log refused ${what}: ${err.message}; set aside with ${later.length} later record(s) of its stream in ${file}, ${resent} re-sent in stream ${this.currentStream}`,
          { cause: err },
        );
        this.options.onError?.(alarm);
        this.events.emit('refused', alarm);
        this.emit2('shipped', to);
      });
      this.acking = task.catch(() => undefined);
      await task;
    } catch (failure) {
      this.raise(
        new EmitterAlarm('SPOOL_FAILED', `cannot set aside refused ${what}: ${(failure as Error).message}`, {
          cause: failure,
        }),
      );
    } finally {
      this.refusing = false;
      this.probeUntil = undefined;
    }
  }

  /** Starts a new stream after the log refused `seq` of `from` for good. */
  private rotate(from: string, seq: number, code: string): void {
    this.currentStream = randomUUID();
    this.seq = 0;
    this.prev = undefined;
    this.emit(
      {
        kind: 'stream.open',
        ...openFields(this.options.program),
        ...(this.options.open ?? {}),
        rotated: { stream: from, seq, code },
      },
      openEmitOptions(this.options),
    ).catch(() => undefined);
  }

  /**
   * Emits a spooled record again in the current stream, marked `resent` with where it was. A sync
   * emit waiting for it now waits for the copy. The ends of the old stream are not re-sent.
   */
  private resend(old: SpoolItem): boolean {
    const {
      v: _v,
      stream,
      seq,
      prev: _prev,
      time,
      kind,
      ...rest
    } = old.record as SpoolItem['record'] & {
      kind: string;
    };
    if (kind === 'stream.open' || kind === 'stream.close') return false;
    const blobs: Record<string, Uint8Array> = {};
    for (const [hex, b64] of Object.entries(old.blobs ?? {})) blobs[hex] = Buffer.from(b64, 'base64');
    const before = this.seq;
    this.emit({ kind, ...rest, resent: { stream, seq, time } }, { mode: 'spool', blobs }).catch(
      () => undefined,
    );
    if (this.seq === before) return false;
    const oldKey = `${stream}/${seq}`;
    const waiter = this.waiters.get(oldKey);
    if (waiter !== undefined) {
      this.waiters.delete(oldKey);
      this.waiters.set(`${this.currentStream}/${this.seq - 1}`, waiter);
    }
    return true;
  }

  private async trustOnFirstUse(): Promise<void> {
    const info = await this.client.logInfo();
    this.policy = parsePolicy(`log ${info.vkey}\nquorum none\n`);
    this.emit2(
      'warning',
      new Error(
        `no policy given: trusting log key ${info.vkey} from ${this.client.baseUrl}v1/log (trust on first use)`,
      ),
    );
  }

  /**
   * Checks each result: the entry at `index` (from the log's answer or its entry bundle at the
   * receipt's checkpoint size) must carry our emitter name, our record and our signature, and the
   * receipt must verify for those entry bytes under the policy.
   */
  private async verifyResults(
    batch: readonly SpoolItem[],
    results: SubmitResult[],
  ): Promise<EmitterReceipt[]> {
    const policy = this.policy!;
    const bundles = new Map<string, Uint8Array[]>();
    const out: EmitterReceipt[] = [];
    for (let i = 0; i < batch.length; i++) {
      const item = batch[i]!;
      const result = results[i]!;
      let entryBytes: Uint8Array;
      if (result.entry !== undefined) {
        entryBytes = base64Decode(result.entry, 'RECEIPT_MALFORMED');
      } else {
        const receipt = parseReceipt(result.receipt);
        const size = parseCheckpoint(receiptCheckpointText(receipt.note)).size;
        if (result.index >= size) {
          throw new TlogError(
            'INDEX_OUT_OF_RANGE',
            `index ${result.index} is outside checkpoint size ${size}`,
          );
        }
        const tile = result.index / 256n;
        const width = Number(size - tile * 256n >= 256n ? 256n : size - tile * 256n);
        const bkey = `${tile}/${width}`;
        let entries = bundles.get(bkey);
        if (entries === undefined) {
          entries = decodeEntryBundle(await this.client.readEntryBundle(tile, width));
          bundles.set(bkey, entries);
        }
        const e = entries[Number(result.index % 256n)];
        if (e === undefined)
          throw new TlogError('BUNDLE_MALFORMED', `bundle ${bkey} lacks index ${result.index}`);
        entryBytes = e;
      }
      if (!this.holds(entryBytes, item)) this.explainMismatch(entryBytes, item, result.index);
      verifyReceipt(result.receipt, entryBytes, policy);
      out.push({
        stream: item.record.stream,
        seq: item.record.seq,
        index: result.index,
        receipt: result.receipt,
        entry: entryBytes,
      });
    }
    return out;
  }

  /**
   * Whether `bytes` are exactly the canonical entry `{emitter, peer, received, record, sig, v: 1}`
   * (RFC 8785 key order) for this emitter's item, whatever `peer` and `received` the log chose: one
   * string comparison instead of parsing and canonicalising the entry and both records again.
   */
  private holds(bytes: Uint8Array, item: SpoolItem): boolean {
    let text: string;
    let parsed: unknown;
    try {
      text = utf8Decode(bytes, 'RECORD_INVALID');
      parsed = JSON.parse(text);
    } catch {
      return false;
    }
    if (parsed === null || typeof parsed !== 'object') return false;
    const { peer, received } = parsed as { peer?: unknown; received?: unknown };
    if (typeof peer !== 'string' || typeof received !== 'string') return false;
    let record = this.canonical.get(item);
    if (record === undefined) {
      record = canonicalJson(item.record);
      this.canonical.set(item, record);
    }
    const want =
      `{"emitter":${JSON.stringify(this.name)},"peer":${JSON.stringify(peer)},` +
      `"received":${JSON.stringify(received)},"record":${record},"sig":${JSON.stringify(item.sig)},"v":1}`;
    return text === want;
  }

  /** Throws the precise reason why an entry does not hold our item (the slow path of holds()). */
  private explainMismatch(entryBytes: Uint8Array, item: SpoolItem, index: bigint): never {
    const entry = parseEntry(entryBytes);
    if (entry.emitter !== this.name) {
      throw new TlogError(
        'RECORD_INVALID',
        `entry ${index} names emitter ${entry.emitter}, want ${this.name}`,
      );
    }
    if (entry.sig !== item.sig || canonicalJson(entry.record) !== canonicalJson(item.record)) {
      throw new TlogError(
        'RECORD_INVALID',
        `entry ${index} does not hold record ${item.record.stream}/${item.record.seq}`,
      );
    }
    throw new TlogError('RECORD_INVALID', `entry ${index} is not the canonical entry of our record`);
  }
}

/** Wraps what `submit` threw, to tell it from a verification failure. */
class SubmitFailure extends Error {
  constructor(cause: unknown) {
    super('submit failed', { cause });
  }
}

/** The checkpoint text (body) of a note. */
function receiptCheckpointText(note: string): string {
  const at = note.lastIndexOf('\n\n');
  return at === -1 ? note : note.slice(0, at + 1);
}

/** How a `stream.open` is emitted: spooled, with the bytes its `open` fields reference. */
function openEmitOptions(options: EmitterOptions): { mode: EmitMode; blobs?: Record<string, Uint8Array> } {
  const blobs = options.openBlobs;
  return blobs !== undefined && Object.keys(blobs).length > 0 ? { mode: 'spool', blobs } : { mode: 'spool' };
}

/** Fields of `stream.open` the emitter fills in. */
function openFields(program: string | undefined): Record<string, unknown> {
  let user = '';
  try {
    user = os.userInfo().username;
  } catch {
    user = '';
  }
  return {
    host: os.hostname(),
    pid: process.pid,
    user,
    program: program ?? process.argv[1] ?? process.argv0,
  };
}

/**
 * Opens the spool (recovering what an earlier run left), starts a new stream with `stream.open`,
 * and starts the shipper. Rejects when the spool is locked by a live process or corrupt.
 */
export async function createEmitter(options: EmitterOptions): Promise<Emitter> {
  const { name } = parseSignerKey(options.key);
  const policy = typeof options.policy === 'string' ? parsePolicy(options.policy) : options.policy;
  const torn: TornTail[] = [];
  const spool = await Spool.open(options.spoolDir, {
    onTornTail: (t) => torn.push(t),
    ...(options.segmentBytes !== undefined ? { segmentBytes: options.segmentBytes } : {}),
  });
  const emitter = new Emitter(options, spool, name, policy);
  emitter.start();
  for (const t of torn) {
    options.onWarning?.(
      new Error(
        `spool ${t.file} had a torn tail of ${t.bytes} bytes at offset ${t.offset} (never acknowledged); moved to ${t.quarantinedTo}`,
      ),
    );
  }
  await emitter.emit(
    { kind: 'stream.open', ...openFields(options.program), ...(options.open ?? {}) },
    openEmitOptions(options),
  );
  return emitter;
}
