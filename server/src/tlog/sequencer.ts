// The sequencer: the one writer of a log. It owns the in-memory compact range and stream heads; the
// database (tree_heads, moved only by compare-and-swap inside the batch transaction) is the truth.
// If the process dies between two writes, the next start sees either the whole batch (entries, nodes,
// checkpoint, tree head: one transaction) or none of it.
import { randomUUID } from 'node:crypto';
import type { Kysely } from 'kysely';
import {
  EMITTER_ADD,
  EMITTER_REVOKE,
  MAX_ENTRY_SIZE,
  canonicalBytes,
  hexEncode,
  isSealedRef,
  openSealed,
  signRecord,
  utf8,
  sha256,
  type RegistryChange,
  appendLeafHashes,
  bytesEqual,
  canonicalJson,
  compactRangeFromNodes,
  emptyCompactRange,
  formatCheckpoint,
  formatEntryWithCanonicalRecord,
  hashLeaf,
  parseEntry,
  rootOfCompactRange,
  rootFromNodes,
  signNote,
  openNote,
  parseCheckpoint,
  base64Encode,
  verifierKeyFromSignerKey,
  concatBytes,
  tileNodeReader,
  TILE_WIDTH,
  type CompactRange,
  type GetNode,
} from '@vigil/client';
import type { FastifyBaseLogger } from 'fastify';
import type { Database } from '../db/schema.js';
import {
  casTreeHead,
  getEntriesForCheck,
  getEntryByStreamSeq,
  getLastEntryOf,
  hasEntries,
  getStreamHeads,
  getTreeHead,
  getLeafHashes,
  getPartialTiles,
  getTreeNodesFrom,
  insertBlobs,
  insertCheckpoint,
  insertEntries,
  insertIncident,
  insertSealed,
  insertSealedColumns,
  insertTreeNodes,
  listCheckpointsDesc,
  listEmitters,
  listPendingOperatorActions,
  missingBlobs,
  setOperatorActionIndex,
  type Db,
  type NewSealedColumns,
  type NewEntry,
  type StreamHead,
  type TreeHead,
} from '../db/repository.js';
import { isDbText } from '../routes/text.js';
import { TileReader } from './tiles.js';
import { EmitterRegistry, type OperatorKey, type Registration } from './registry.js';

/** One validated record waiting to be sequenced (signature already verified by the route). */
export interface Submission {
  emitter: string;
  record: Record<string, unknown>;
  sig: string;
  /** The emitter key the route verified `sig` with (checked against the tree's registry here). */
  vkey: string;
  peer: string;
  stream: string;
  seq: bigint;
  prev: string | undefined;
  recordHash: string;
  /** canonicalJson(record), for duplicate detection. */
  canonical: string;
  /** Bytes of the record's `$blob` references: stored in the public blobs table. */
  blobs: { sha256: string; bytes: Uint8Array }[];
  /**
   * S of the record's `$sealed` commitments (checked by the route): stored in the reader-only sealed
   * table, never in blobs. DESIGN.md "Readers and sealed payloads".
   */
  sealed: { sha256: string; bytes: Uint8Array }[];
  search: {
    kind: string | null;
    session: string | null;
    method: string | null;
    tool: string | null;
    recordTime: Date | null;
  };
}

/** Where one submitted record ended up. */
export interface ItemResult {
  index: bigint;
  /** Empty for a duplicate (the route reads the stored entry). */
  leafHash: Uint8Array;
  /** The entry bytes the tree commits to; empty for a duplicate. */
  entry: Uint8Array;
  duplicate: boolean;
}

/** A sequenced request: its items and the checkpoint (size, note) that includes them all. */
export interface SequencedRequest {
  items: ItemResult[];
  size: bigint;
  note: string;
  /**
   * Nodes of the tree at `size`: those the batch created and the old compact range from memory,
   * anything else from the store. Enough for the receipts of the batch's entries without a read.
   */
  getNode: GetNode;
}

export type SequencerErrorCode =
  | 'SEQ_CONFLICT'
  | 'STREAM_NOT_OWNED'
  | 'QUEUE_FULL'
  | 'NOT_SEQUENCER'
  | 'SEQUENCER_STOPPED'
  | 'SEQUENCER_HALTED'
  | 'EMITTER_KEY_MISMATCH'
  | 'EMITTER_REVOKED'
  | 'EMITTER_RESERVED'
  | 'OPERATOR_RECORD_INVALID';

/** A refusal by the sequencer; plugins/errors.ts maps the code to a status. */
export class SequencerError extends Error {
  readonly code: SequencerErrorCode;
  readonly expected: bigint | undefined;
  constructor(code: SequencerErrorCode, message: string, expected?: bigint) {
    super(message);
    this.code = code;
    this.expected = expected;
  }
}

/** Fault-injection points for tests; each runs inside the batch transaction except afterCommit. */
export interface SequencerHooks {
  afterEntries?: (size: bigint) => void | Promise<void>;
  afterNodes?: (size: bigint) => void | Promise<void>;
  afterSign?: (size: bigint) => void | Promise<void>;
  beforeCommit?: (size: bigint) => void | Promise<void>;
  afterCommit?: (size: bigint) => void | Promise<void>;
}

export interface SequencerOptions {
  db: Kysely<Database>;
  origin: string;
  signerKey: string;
  /** The operator emitter: signs the registry records the sequencer appends. */
  operator: OperatorKey;
  logger: FastifyBaseLogger;
  tiles: TileReader;
  batchSize: number;
  queueSize: number;
  verifyOnStart: 'full' | 'quick';
  hooks?: SequencerHooks | undefined;
  /** Called once when the sequencer cannot know the database state (main.ts exits non-zero). */
  onFatal?: ((err: Error) => void) | undefined;
  /** Called after every commit with batch metrics. */
  onBatch?: ((m: { entries: number; seconds: number; size: bigint }) => void) | undefined;
}

interface Pending {
  subs: Submission[];
  resolve: (r: SequencedRequest) => void;
  reject: (err: Error) => void;
}

/** A record the log appends as its operator emitter: `fields` hold `kind` and the rest. */
export interface OperatorRecord {
  fields: Record<string, unknown>;
  /** Bytes of the `$blob` references in `fields`, by SHA-256 hex (stored in the public blobs table). */
  blobs?: Record<string, Uint8Array>;
}

interface PendingOperator {
  items: OperatorRecord[];
  resolve: (indices: bigint[]) => void;
  reject: (err: Error) => void;
}

/** One operator record of a cycle: a registry change, a pending operator action or a requested record. */
type OperatorItem =
  | { source: 'registry'; fields: Record<string, unknown> }
  | { source: 'action'; fields: Record<string, unknown>; actionId: bigint }
  | { source: 'request'; fields: Record<string, unknown>; blobs: Submission['blobs'] };

/** Record members the log sets itself on an operator record (the envelope). */
const ENVELOPE_KEYS = ['v', 'stream', 'seq', 'prev', 'time'];
/** Kinds that only the registry sync appends (the registry is loaded from them at start). */
const REGISTRY_KINDS = [EMITTER_ADD, EMITTER_REVOKE];
/** Pending operator actions one cycle appends at most (the next cycle takes the rest). */
const ACTIONS_PER_CYCLE = 256;

const STREAM_CACHE_MAX = 100_000;

/** Sequencer states: standby (no lock), active, halted (stored tree does not verify), failed (fatal). */
export type SequencerState = 'starting' | 'standby' | 'active' | 'halted' | 'failed' | 'closed';

/**
 * Group-commit sequencer. `submit` queues a request; a loop takes everything pending (up to
 * batchSize entries) and commits it in one transaction with a signed checkpoint, then answers.
 * There is no timer: an idle log commits a lone submission at once.
 */
export class Sequencer {
  readonly #o: SequencerOptions;
  #state: SequencerState = 'starting';
  #reason = '';
  #queue: Pending[] = [];
  #queued = 0;
  #running: Promise<void> | undefined;
  #range: CompactRange = emptyCompactRange();
  #head: TreeHead | undefined;
  #streams = new Map<string, StreamHead>();
  /** Leaf hashes of the committed partial level-0 tile (fewer than 256), to cache each full tile. */
  #tail: Uint8Array[] = [];
  /** The emitter registry as the committed tree holds it; changed only after a commit. */
  #registry = new EmitterRegistry();
  /** The operator emitter's stream (continued across restarts); undefined until its first record. */
  #operatorStream: string | undefined;
  /** The next cycle compares the emitters table with the registry (set by syncRegistry). */
  #syncWanted = false;
  /** Table keys already reported as differing from the tree (logged and recorded once a process). */
  #reportedMismatch = new Set<string>();
  /** Revoked emitters the tree never registered and that have no entries: nothing to register. */
  #revokedUnused = new Set<string>();
  /** Requests of appendOperatorRecords waiting for the next cycle, and their record count. */
  #operatorQueue: PendingOperator[] = [];
  #operatorQueued = 0;
  /** The next cycle appends the pending operator_actions rows (set by syncOperatorActions). */
  #actionsWanted = false;
  /** Operator actions that cannot become records (reported once a process, left pending). */
  #badActions = new Set<bigint>();

  constructor(options: SequencerOptions) {
    this.#o = options;
  }

  get state(): SequencerState {
    return this.#state;
  }
  /** Why the sequencer is not active (for logs, /healthz and 503 messages). */
  get reason(): string {
    return this.#reason;
  }
  get queueDepth(): number {
    return this.#queued;
  }
  get size(): bigint {
    return this.#range.size;
  }
  /** The committed tree head while active (this process is the one writer); else undefined. */
  get head(): TreeHead | undefined {
    return this.#state === 'active' ? this.#head : undefined;
  }

  /** The tree's registration of an emitter while active (undefined: not registered, or not active). */
  registration(name: string): Registration | undefined {
    return this.#state === 'active' ? this.#registry.get(name) : undefined;
  }

  /** The operator emitter's stream, once it has one. */
  get operatorStream(): string | undefined {
    return this.#operatorStream;
  }

  /**
   * Asks the next cycle to bring the tree's registry up to the emitters table: an emitter.add for
   * each active name the tree lacks, an emitter.revoke for each revoked one it holds as active. A
   * table key that differs from the registered one is never registered: it is logged and recorded
   * as an incident. Called at start, after admin commands and periodically.
   */
  syncRegistry(): void {
    if (this.#state !== 'active') return;
    this.#syncWanted = true;
    this.#kick();
  }

  /**
   * Asks the next cycle to append the pending operator_actions rows (record_index null), in id order,
   * as records of the operator emitter (fields = {kind, ...fields}); the same transaction sets their
   * record_index, so a restart never appends one twice. Called at start, after admin commands and
   * periodically.
   */
  syncOperatorActions(): void {
    if (this.#state !== 'active') return;
    this.#actionsWanted = true;
    this.#kick();
  }

  /**
   * Appends records signed by the operator emitter on its stream (chained like the registry records),
   * committed in the next group commit; resolves with their indices once committed. Each item's
   * fields need a string `kind` (not a registry kind) and none of the envelope members (v, stream,
   * seq, prev, time); its blobs must be the bytes of its `$blob` references. Rejects with a
   * SequencerError when the record is invalid or the sequencer is not active, and with the batch's
   * error when the commit failed (nothing was appended then).
   */
  appendOperatorRecords(items: OperatorRecord[]): Promise<bigint[]> {
    if (this.#state !== 'active') return Promise.reject(this.#notActive());
    if (items.length === 0) return Promise.resolve([]);
    for (const item of items) {
      const why = operatorRecordProblem(item);
      if (why !== undefined)
        return Promise.reject(new SequencerError('OPERATOR_RECORD_INVALID', `operator record: ${why}`));
    }
    if (this.#queued + this.#operatorQueued + items.length > this.#o.queueSize) {
      return Promise.reject(
        new SequencerError(
          'QUEUE_FULL',
          `queue is full (${this.#queued + this.#operatorQueued} entries waiting)`,
        ),
      );
    }
    return new Promise((resolve, reject) => {
      this.#operatorQueue.push({ items, resolve, reject });
      this.#operatorQueued += items.length;
      this.#kick();
    });
  }

  /** Enters standby: reads are served elsewhere, writes answer 503 NOT_SEQUENCER. */
  standby(reason: string): void {
    this.#state = 'standby';
    this.#reason = reason;
  }

  /**
   * Loads the stored tree and checks it: recomputes the root from the stored hashes (full: rehashing
   * every entry) and compares it with the tree head and the newest checkpoint. On a mismatch the
   * sequencer halts (writes 503) and logs at error. Call with the sequencing lock held.
   */
  async start(): Promise<void> {
    const { db, logger } = this.#o;
    const head = await getTreeHead(db);
    if (!head) throw new Error('log not initialised: run vigil-server init');
    try {
      this.#range = await this.#verifyStoredTree(head);
      const partial = head.size % BigInt(TILE_WIDTH);
      this.#tail = partial === 0n ? [] : await getLeafHashes(db, head.size - partial, Number(partial));
      this.#head = head;
      this.#streams.clear();
      this.#registry = await EmitterRegistry.load(db, this.#o.operator);
      const operatorLast = await getLastEntryOf(db, this.#o.operator.name);
      this.#operatorStream = operatorLast?.stream;
      this.#state = 'active';
      this.#reason = '';
      logger.info({ size: head.size.toString(), registered: this.#registry.size }, 'sequencer active');
      this.syncRegistry();
      this.syncOperatorActions();
    } catch (err) {
      this.#state = 'halted';
      this.#reason = `stored tree does not match the newest checkpoint: ${(err as Error).message}`;
      logger.error({ err }, 'REFUSING TO SEQUENCE: stored tree does not match the newest checkpoint');
    }
  }

  async #verifyStoredTree(head: TreeHead): Promise<CompactRange> {
    const { db, origin, signerKey } = this.#o;
    const vkey = verifierKeyFromSignerKey(signerKey);
    const opened = openNote(head.note, [vkey]);
    const cp = parseCheckpoint(opened.text);
    if (cp.origin !== origin || cp.size !== head.size || !bytesEqual(cp.root, head.root)) {
      throw new Error('tree head note does not match its size and root');
    }
    const [newest] = await listCheckpointsDesc(db, 1);
    if (!newest || newest.size !== head.size || newest.note !== head.note) {
      throw new Error(`newest checkpoint (size ${newest?.size}) is not the tree head (size ${head.size})`);
    }
    let range: CompactRange;
    if (this.#o.verifyOnStart === 'quick') {
      range = await compactRangeFromNodes(head.size, this.#o.tiles.nodeReader(head.size));
    } else {
      range = emptyCompactRange();
      const stored = new Map<number, Map<bigint, Uint8Array>>();
      let mismatch: string | undefined;
      const onNode = (n: { level: number; index: bigint; hash: Uint8Array }): void => {
        if (n.level === 0 || n.level % 8 !== 0 || mismatch) return;
        const want = stored.get(n.level)?.get(n.index);
        if (!want || !bytesEqual(want, n.hash)) mismatch = `stored node ${n.level}/${n.index} differs`;
      };
      for (let level = 8; head.size >> BigInt(level) > 0n; level += 8) {
        stored.set(level, await getTreeNodesFrom(db, level));
      }
      let next = 0n;
      while (true) {
        const rows = await getEntriesForCheck(db, next, 8192);
        if (rows.length === 0) break;
        const hashes: Uint8Array[] = [];
        for (const r of rows) {
          if (r.index !== next) throw new Error(`entry ${next} is missing`);
          const h = hashLeaf(r.entry);
          if (!bytesEqual(h, r.leafHash))
            throw new Error(`entry ${r.index} does not hash to its stored leaf hash`);
          hashes.push(h);
          next++;
        }
        range = appendLeafHashes(range, hashes, onNode);
        if (mismatch) throw new Error(mismatch);
      }
      if (range.size !== head.size)
        throw new Error(`${range.size} entries stored, tree head has ${head.size}`);
    }
    const root = rootOfCompactRange(range);
    if (!bytesEqual(root, head.root)) {
      throw new Error(
        `root of the ${head.size} stored entries is ${base64Encode(root)}, checkpoint has ${base64Encode(head.root)}`,
      );
    }
    return range;
  }

  /** Queues a request; resolves once it is committed in a signed checkpoint. */
  submit(subs: Submission[]): Promise<SequencedRequest> {
    if (this.#state !== 'active') return Promise.reject(this.#notActive());
    if (this.#queued + subs.length > this.#o.queueSize) {
      return Promise.reject(
        new SequencerError('QUEUE_FULL', `queue is full (${this.#queued} entries waiting)`),
      );
    }
    return new Promise((resolve, reject) => {
      this.#queue.push({ subs, resolve, reject });
      this.#queued += subs.length;
      this.#kick();
    });
  }

  #notActive(): SequencerError {
    switch (this.#state) {
      case 'standby':
        return new SequencerError('NOT_SEQUENCER', `this instance is not the sequencer: ${this.#reason}`);
      case 'halted':
        return new SequencerError('SEQUENCER_HALTED', this.#reason);
      default:
        return new SequencerError('SEQUENCER_STOPPED', `sequencer is ${this.#state}`);
    }
  }

  #kick(): void {
    if (this.#running) return;
    this.#running = (async () => {
      while (
        (this.#queue.length > 0 ||
          this.#syncWanted ||
          this.#operatorQueue.length > 0 ||
          this.#actionsWanted) &&
        this.#state === 'active'
      ) {
        const batch: Pending[] = [];
        let n = 0;
        while (this.#queue.length > 0 && (n === 0 || n + this.#queue[0]!.subs.length <= this.#o.batchSize)) {
          const p = this.#queue.shift()!;
          batch.push(p);
          n += p.subs.length;
        }
        this.#queued -= n;
        const requests: PendingOperator[] = [];
        let m = 0;
        while (
          this.#operatorQueue.length > 0 &&
          (m === 0 || n + m + this.#operatorQueue[0]!.items.length <= this.#o.batchSize)
        ) {
          const r = this.#operatorQueue.shift()!;
          requests.push(r);
          m += r.items.length;
        }
        this.#operatorQueued -= m;
        await this.#cycle(batch, requests);
      }
      this.#running = undefined;
    })();
  }

  /** Waits until the queue is empty (or the sequencer stopped); used by graceful shutdown. */
  async flush(): Promise<void> {
    while (this.#running) await this.#running;
  }

  /** Stops taking work; pending requests are answered 503 after the running batch. */
  async close(): Promise<void> {
    await this.flush();
    if (this.#state === 'active' || this.#state === 'standby' || this.#state === 'starting')
      this.#state = 'closed';
    this.#failAll(new SequencerError('SEQUENCER_STOPPED', 'shutting down'));
  }

  #failAll(err: Error): void {
    const q = this.#queue;
    this.#queue = [];
    this.#queued = 0;
    for (const p of q) p.reject(err);
    const o = this.#operatorQueue;
    this.#operatorQueue = [];
    this.#operatorQueued = 0;
    for (const r of o) r.reject(err);
  }

  async #cycle(batch: Pending[], requests: PendingOperator[]): Promise<void> {
    const { db, logger, hooks } = this.#o;
    const started = process.hrtime.bigint();
    const oldSize = this.#range.size;
    const { operator } = this.#o;
    // 0. Registry changes this batch commits first: what a sync found in the emitters table, and a
    // registration for each emitter of the batch that the tree does not hold yet (the route checked
    // it against the table). Each emitter's registration is committed before its first record.
    const incidents: Parameters<typeof insertIncident>[1][] = [];
    let changes: RegistryChange[];
    // A failed read or commit is not retried at once (no busy loop): the periodic sync asks again,
    // and an unregistered emitter's next record registers it in its own batch.
    const sync = this.#syncWanted;
    this.#syncWanted = false;
    const rejectAll = (err: Error): void => {
      for (const p of batch) p.reject(err);
      for (const r of requests) r.reject(err);
    };
    try {
      changes = sync ? await this.#changesFromTable(incidents) : [];
    } catch (err) {
      logger.error({ err }, 'reading the emitters table failed');
      rejectAll(err as Error);
      return;
    }
    // Pending operator actions (written by admin commands): appended after the registry records.
    const wantActions = this.#actionsWanted;
    this.#actionsWanted = false;
    const records: OperatorItem[] = [];
    try {
      const pending = wantActions ? await listPendingOperatorActions(db, ACTIONS_PER_CYCLE) : [];
      if (pending.length === ACTIONS_PER_CYCLE) this.#actionsWanted = true;
      for (const a of pending) {
        const fields = { ...(a.fields as Record<string, unknown>), kind: a.kind };
        let why =
          typeof a.fields === 'object' && a.fields !== null && !Array.isArray(a.fields)
            ? operatorRecordProblem({ fields })
            : 'fields are not a json object';
        // An action cannot carry bytes: its $blob refs must be stored already (the command that
        // wrote the action stores them in the same transaction), or the record would name nothing.
        if (why === undefined) {
          const refs = blobHashesOf(fields);
          const missing = refs.length > 0 ? await missingBlobs(db, refs) : [];
          if (missing.length > 0) why = `blob ${missing[0]} is not stored`;
        }
        if (why !== undefined) {
          if (!this.#badActions.has(a.id)) {
            this.#badActions.add(a.id);
            logger.error({ action: a.id.toString(), kind: a.kind }, `operator action left pending: ${why}`);
          }
          continue;
        }
        records.push({ source: 'action', fields, actionId: a.id });
      }
    } catch (err) {
      logger.error({ err }, 'reading the pending operator actions failed');
      rejectAll(err as Error);
      return;
    }
    for (const r of requests) {
      for (const item of r.items) {
        const blobs = Object.entries(item.blobs ?? {}).map(([sha256, bytes]) => ({ sha256, bytes }));
        records.push({ source: 'request', fields: item.fields, blobs });
      }
    }
    const pendingAdds = new Map(changes.filter((c) => c.kind === EMITTER_ADD).map((c) => [c.name, c.vkey]));
    for (const p of batch) {
      for (const s of p.subs) {
        if (s.emitter === operator.name || this.#registry.get(s.emitter) || pendingAdds.has(s.emitter))
          continue;
        pendingAdds.set(s.emitter, s.vkey);
        changes.push({ kind: EMITTER_ADD, name: s.emitter, vkey: s.vkey });
      }
    }
    // The operator registers itself before its first record of any kind.
    if ((changes.length > 0 || records.length > 0) && this.#registry.start === undefined) {
      changes.unshift({ kind: EMITTER_ADD, name: operator.name, vkey: operator.vkey });
    }
    if (batch.length === 0 && changes.length === 0 && records.length === 0 && incidents.length === 0) return;
    // Registry records first (the registry applies them at oldSize + i after the commit), then the
    // other operator records.
    const operatorItems: OperatorItem[] = [
      ...changes.map((c): OperatorItem => ({
        source: 'registry',
        fields: { kind: c.kind, name: c.name, vkey: c.vkey },
      })),
      ...records,
    ];
    const operatorStream = operatorItems.length > 0 ? (this.#operatorStream ?? randomUUID()) : undefined;

    // 1. Stream heads for streams we have not cached.
    const unknown = new Set<string>();
    for (const p of batch) for (const s of p.subs) if (!this.#streams.has(s.stream)) unknown.add(s.stream);
    if (operatorStream !== undefined && !this.#streams.has(operatorStream)) unknown.add(operatorStream);
    let fetched: Map<string, StreamHead>;
    try {
      fetched = unknown.size > 0 ? await getStreamHeads(db, [...unknown]) : new Map();
    } catch (err) {
      logger.error({ err }, 'reading stream heads failed');
      rejectAll(err as Error);
      return;
    }
    const batchHeads = new Map<string, StreamHead | null>();
    for (const s of unknown) batchHeads.set(s, fetched.get(s) ?? null);
    const headOf = (stream: string): StreamHead | null =>
      batchHeads.has(stream) ? batchHeads.get(stream)! : (this.#streams.get(stream) ?? null);

    // 2. Decide each request: all its items accepted (or duplicates), or the whole request refused.
    const accepted: { sub: Submission; index: bigint }[] = [];
    const byStreamSeq = new Map<string, { sub: Submission; index: bigint }>();
    const answers: { p: Pending; items: ItemResult[] | undefined; dupOf: (bigint | undefined)[] }[] = [];
    const failures = new Map<Pending, SequencerError>();
    let nextIndex = oldSize;
    // The operator's records come first, chained on its stream: registry records, then actions and
    // requested records.
    const actionIndices: { id: bigint; index: bigint }[] = [];
    const requestIndices: bigint[] = [];
    if (operatorStream !== undefined) {
      let head = headOf(operatorStream);
      for (const item of operatorItems) {
        const sub = this.#operatorSubmission(operatorStream, head, item.fields);
        if (item.source === 'request') sub.blobs = item.blobs;
        const index = nextIndex++;
        accepted.push({ sub, index });
        if (item.source === 'action') actionIndices.push({ id: item.actionId, index });
        if (item.source === 'request') requestIndices.push(index);
        head = { seq: sub.seq, recordHash: sub.recordHash, owner: sub.emitter };
      }
      batchHeads.set(operatorStream, head);
    }
    for (const p of batch) {
      const overlay = new Map<string, StreamHead>();
      const mine: { sub: Submission; index: bigint }[] = [];
      const dupOf: (bigint | undefined)[] = [];
      let failure: SequencerError | undefined;
      for (const sub of p.subs) {
        failure = this.#registryRefusal(sub, pendingAdds, operatorStream, incidents);
        if (failure) break;
        const head = overlay.get(sub.stream) ?? headOf(sub.stream);
        // A stream belongs to the emitter that opened it (DESIGN.md "Emitter administration"): stream
        // ids are public, so another emitter's record for it is refused before it can take a seq.
        if (head && head.owner !== sub.emitter) {
          incidents.push({
            kind: 'stream_not_owned',
            emitter: sub.emitter,
            stream: sub.stream,
            seq: sub.seq,
            leafIndex: null,
            detail: `emitter ${sub.emitter} sent seq ${sub.seq} for stream ${sub.stream} of emitter ${head.owner}: ${sub.canonical.slice(0, 4096)}`,
          });
          failure = new SequencerError(
            'STREAM_NOT_OWNED',
            `stream ${sub.stream} belongs to another emitter (incident recorded)`,
          );
          break;
        }
        const expected = head ? head.seq + 1n : 0n;
        if (sub.seq < expected) {
          const key = `${sub.stream}\n${sub.seq}`;
          const local =
            byStreamSeq.get(key) ?? mine.find((m) => m.sub.stream === sub.stream && m.sub.seq === sub.seq);
          let same: boolean;
          let index: bigint | undefined;
          if (local) {
            same =
              local.sub.emitter === sub.emitter &&
              local.sub.canonical === sub.canonical &&
              local.sub.sig === sub.sig;
            index = local.index;
          } else {
            const stored = await getEntryByStreamSeq(db, sub.stream, sub.seq).catch(() => undefined);
            if (stored) {
              const e = parseEntry(stored.entry);
              same =
                e.emitter === sub.emitter && canonicalJson(e.record) === sub.canonical && e.sig === sub.sig;
              index = stored.index;
            } else {
              same = false;
            }
          }
          if (same) {
            dupOf.push(index);
            continue;
          }
          incidents.push({
            kind: 'conflicting_resubmission',
            emitter: sub.emitter,
            stream: sub.stream,
            seq: sub.seq,
            leafIndex: index ?? null,
            detail: `different record at taken stream ${sub.stream} seq ${sub.seq}: ${sub.canonical.slice(0, 4096)}`,
          });
          failure = new SequencerError(
            'SEQ_CONFLICT',
            `stream ${sub.stream} seq ${sub.seq} is taken by a different record (incident recorded)`,
            expected,
          );
          break;
        }
        if (sub.seq > expected) {
          failure = new SequencerError(
            'SEQ_CONFLICT',
            `stream ${sub.stream}: seq ${sub.seq}, expected ${expected}`,
            expected,
          );
          break;
        }
        const wantPrev = head?.recordHash;
        if (sub.prev !== wantPrev) {
          failure = new SequencerError(
            'SEQ_CONFLICT',
            wantPrev === undefined
              ? `stream ${sub.stream} seq 0 must not carry prev`
              : `stream ${sub.stream} seq ${sub.seq}: prev does not match the record at seq ${head!.seq}`,
            expected,
          );
          break;
        }
        const item = { sub, index: nextIndex + BigInt(mine.length) };
        mine.push(item);
        dupOf.push(undefined);
        overlay.set(sub.stream, { seq: sub.seq, recordHash: sub.recordHash, owner: sub.emitter });
      }
      if (failure) {
        failures.set(p, failure);
        answers.push({ p, items: undefined, dupOf: [] });
        continue;
      }
      for (const [stream, h] of overlay) batchHeads.set(stream, h);
      for (const m of mine) {
        accepted.push(m);
        byStreamSeq.set(`${m.sub.stream}\n${m.sub.seq}`, m);
      }
      nextIndex += BigInt(mine.length);
      answers.push({ p, items: [], dupOf });
    }

    // 3. Build entries and the new tree.
    const received = new Date();
    const receivedText = received.toISOString();
    const newEntries: NewEntry[] = accepted.map(({ sub, index }) => {
      // The route canonicalised the record to check its signature: the entry is built around it.
      const entry = formatEntryWithCanonicalRecord(
        { received: receivedText, emitter: sub.emitter, peer: sub.peer, sig: sub.sig },
        sub.canonical,
      );
      return {
        index,
        entry,
        leafHash: hashLeaf(entry),
        emitter: sub.emitter,
        stream: sub.stream,
        seq: sub.seq,
        recordHash: sub.recordHash,
        received,
        ...sub.search,
      };
    });
    const nodes: { level: number; index: bigint; hash: Uint8Array }[] = [];
    const known = compactRangeNodes(this.#range);
    const range = appendLeafHashes(
      this.#range,
      newEntries.map((e) => e.leafHash),
      (n) => {
        known.set(nodeKey(n.level, n.index), n.hash);
        if (n.level > 0 && n.level % 8 === 0) nodes.push(n);
      },
    );
    const newSize = range.size;
    const root = rootOfCompactRange(range);
    let newHead = this.#head!;
    let committing = false;
    try {
      await db.transaction().execute(async (trx) => {
        if (newEntries.length > 0) {
          await insertEntries(trx, newEntries);
          await hooks?.afterEntries?.(newSize);
          const blobs = new Map<string, Uint8Array>();
          for (const { sub } of accepted) for (const b of sub.blobs) blobs.set(b.sha256, b.bytes);
          if (blobs.size > 0)
            await insertBlobs(
              trx,
              [...blobs].map(([sha256, bytes]) => ({ sha256, bytes })),
            );
          // S goes to the reader-only table with the entry that brought it, in this transaction.
          const sealed = accepted.flatMap(({ sub, index }) =>
            sub.sealed.map((s) => ({
              sha256: s.sha256,
              bytes: s.bytes,
              leafIndex: index,
              emitter: sub.emitter,
              stream: sub.stream,
              session: sub.search.session,
            })),
          );
          if (sealed.length > 0) await insertSealed(trx, sealed);
          const columns = accepted.flatMap(({ sub, index }) => sealedColumnsOf(sub, index));
          if (columns.length > 0) await insertSealedColumns(trx, columns);
          for (const a of actionIndices) {
            if (!(await setOperatorActionIndex(trx, a.id, a.index)))
              throw new Error(`operator action ${a.id} is no longer pending`);
          }
          if (nodes.length > 0) await insertTreeNodes(trx, nodes);
          await hooks?.afterNodes?.(newSize);
          // Never sign a root the stored hashes do not produce: the partial tiles are read back in
          // one round trip, full tiles from the reader (its cache, else this transaction).
          const partial = await getPartialTiles(trx, newSize);
          const readTile = (level: number, index: bigint, width: number) => {
            if (width === TILE_WIDTH) return this.#o.tiles.readTile(level, index, width, trx as Db);
            const hashes = partial.get(level) ?? [];
            if (hashes.length !== width)
              throw new Error(
                `partial tile ${level}/${index} has ${hashes.length} of ${width} hashes stored`,
              );
            return concatBytes(...hashes);
          };
          const storedRoot = await rootFromNodes(newSize, tileNodeReader(newSize, readTile));
          if (!bytesEqual(storedRoot, root))
            throw new Error(`stored hashes give another root at size ${newSize}`);
          const text = formatCheckpoint({ origin: this.#o.origin, size: newSize, root, extensions: [] });
          const note = signNote(text, [this.#o.signerKey]);
          await hooks?.afterSign?.(newSize);
          newHead = { size: newSize, root, note };
          await insertCheckpoint(trx, newHead);
          if (!(await casTreeHead(trx, oldSize, newHead))) {
            throw new FatalError(`tree head is no longer at size ${oldSize}: another writer moved it`);
          }
        }
        for (const i of incidents) await insertIncident(trx, i);
        await hooks?.beforeCommit?.(newSize);
        committing = true;
      });
    } catch (err) {
      if (committing || err instanceof FatalError) {
        this.#fatal(err as Error, batch, requests);
        return;
      }
      logger.error({ err }, 'batch failed, rolled back');
      rejectAll(err as Error);
      return;
    }
    // Committed: memory follows the database. Each level-0 tile the batch completed goes to the read
    // cache from memory (the root check just confirmed the stored rows give the same root), so
    // receipts and tile reads of fresh entries need no query.
    this.#range = range;
    this.#head = newHead;
    if (operatorStream !== undefined) {
      this.#operatorStream = operatorStream;
      try {
        changes.forEach((c, i) => this.#registry.apply(c, oldSize + BigInt(i), operator.name));
      } catch (err) {
        // Committed records the registry refuses: memory can no longer follow the database.
        this.#fatal(err as Error, batch, requests);
        return;
      }
    }
    if (this.#tail.length === Number(oldSize % BigInt(TILE_WIDTH))) {
      let tail = this.#tail.concat(newEntries.map((e) => e.leafHash));
      let tileIndex = oldSize / BigInt(TILE_WIDTH);
      while (tail.length >= TILE_WIDTH) {
        this.#o.tiles.cacheFullTile(0, tileIndex++, tail.slice(0, TILE_WIDTH));
        tail = tail.slice(TILE_WIDTH);
      }
      this.#tail = tail;
    }
    for (const [stream, h] of batchHeads) {
      if (h === null) continue;
      this.#streams.delete(stream);
      this.#streams.set(stream, h);
    }
    while (this.#streams.size > STREAM_CACHE_MAX) this.#streams.delete(this.#streams.keys().next().value!);
    try {
      await hooks?.afterCommit?.(newSize);
    } catch (err) {
      logger.warn({ err }, 'afterCommit hook failed');
    }
    const byIndex = new Map(newEntries.map((e) => [e.index, e]));
    let stored: GetNode | undefined;
    const getNode: GetNode = (level, index) =>
      known.get(nodeKey(level, index)) ?? (stored ??= this.#o.tiles.nodeReader(newHead.size))(level, index);
    // The operator's requested records, in request order.
    let r = 0;
    for (const req of requests) {
      req.resolve(requestIndices.slice(r, r + req.items.length));
      r += req.items.length;
    }
    // accepted[] begins with the operator's records, which answer no submission.
    let k = operatorItems.length;
    for (const a of answers) {
      const failure = failures.get(a.p);
      if (failure) {
        a.p.reject(failure);
        continue;
      }
      const items: ItemResult[] = [];
      for (let i = 0; i < a.p.subs.length; i++) {
        const dup = a.dupOf[i];
        if (dup !== undefined) {
          items.push({ index: dup, leafHash: new Uint8Array(0), entry: new Uint8Array(0), duplicate: true });
        } else {
          const e = byIndex.get(accepted[k++]!.index)!;
          items.push({ index: e.index, leafHash: e.leafHash, entry: e.entry, duplicate: false });
        }
      }
      a.p.resolve({ items, size: newHead.size, note: newHead.note, getNode });
    }
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    this.#o.onBatch?.({ entries: newEntries.length, seconds, size: newHead.size });
    if (newEntries.length > 0) {
      logger.debug({ oldSize: oldSize.toString(), newSize: newSize.toString() }, 'sequenced batch');
    }
  }

  /**
   * The registry changes the emitters table asks for: an emitter.add for each active name the tree
   * lacks, an emitter.revoke for each revoked name the tree holds as active. A table key that is not
   * the registered one is never followed: it goes to the log at error and to the incidents (once a
   * process), and the tree's key stays the one records are checked against.
   */
  async #changesFromTable(incidents: Parameters<typeof insertIncident>[1][]): Promise<RegistryChange[]> {
    const changes: RegistryChange[] = [];
    for (const e of await listEmitters(this.#o.db)) {
      if (e.name === this.#o.operator.name) continue;
      const registered = this.#registry.get(e.name);
      if (registered === undefined) {
        if (!e.revoked) {
          changes.push({ kind: EMITTER_ADD, name: e.name, vkey: e.vkey });
        } else if (!this.#revokedUnused.has(e.name)) {
          // Revoked before the registry existed (a log older than it): its past entries need its key
          // in the tree, and its revocation after it. Revoked before any use: nothing to record.
          if (await hasEntries(this.#o.db, e.name)) {
            changes.push({ kind: EMITTER_ADD, name: e.name, vkey: e.vkey });
            changes.push({ kind: EMITTER_REVOKE, name: e.name, vkey: e.vkey });
          } else {
            this.#revokedUnused.add(e.name);
          }
        }
        continue;
      }
      if (registered.vkey !== e.vkey) {
        this.#keyMismatch(e.name, e.vkey, registered, incidents);
        continue;
      }
      if (e.revoked && registered.revokedAt === undefined)
        changes.push({ kind: EMITTER_REVOKE, name: e.name, vkey: e.vkey });
    }
    return changes;
  }

  #keyMismatch(
    name: string,
    vkey: string,
    registered: Registration,
    incidents: Parameters<typeof insertIncident>[1][],
  ): void {
    const key = `${name}\n${vkey}`;
    if (this.#reportedMismatch.has(key)) return;
    this.#reportedMismatch.add(key);
    const detail = `the emitters table holds key ${vkey} for ${name}; the log registered ${registered.vkey} at entry ${registered.index}`;
    this.#o.logger.error({ emitter: name, registeredAt: registered.index.toString() }, detail);
    incidents.push({
      kind: 'emitter_key_mismatch',
      emitter: name,
      stream: null,
      seq: null,
      leafIndex: registered.index,
      detail,
    });
  }

  /** Why a submission is refused by the registry (checked before its stream), or undefined. */
  #registryRefusal(
    sub: Submission,
    pendingAdds: Map<string, string>,
    operatorStream: string | undefined,
    incidents: Parameters<typeof insertIncident>[1][],
  ): SequencerError | undefined {
    if (sub.emitter === this.#o.operator.name || sub.stream === (operatorStream ?? this.#operatorStream))
      return new SequencerError(
        'EMITTER_RESERVED',
        'the operator emitter and its stream write only through the log',
      );
    const registered = this.#registry.get(sub.emitter);
    if (registered !== undefined) {
      if (registered.vkey !== sub.vkey) {
        this.#keyMismatch(sub.emitter, sub.vkey, registered, incidents);
        return new SequencerError(
          'EMITTER_KEY_MISMATCH',
          `emitter ${sub.emitter}: the log registered another key at entry ${registered.index}`,
        );
      }
      if (registered.revokedAt !== undefined)
        return new SequencerError(
          'EMITTER_REVOKED',
          `emitter ${sub.emitter} was revoked at entry ${registered.revokedAt}`,
        );
      return undefined;
    }
    if (pendingAdds.get(sub.emitter) !== sub.vkey)
      return new SequencerError(
        'EMITTER_KEY_MISMATCH',
        `emitter ${sub.emitter}: another key is being registered in this batch`,
      );
    return undefined;
  }

  /** A record of the operator emitter (`fields` with its kind) at the next seq of its stream, signed. */
  #operatorSubmission(stream: string, head: StreamHead | null, fields: Record<string, unknown>): Submission {
    const time = new Date();
    const kind = fields.kind as string;
    const record: Record<string, unknown> = {
      ...fields,
      v: 1,
      stream,
      seq: head === null ? 0 : Number(head.seq + 1n),
      ...(head !== null ? { prev: head.recordHash } : {}),
      time: time.toISOString(),
      kind,
    };
    const canonical = canonicalJson(record);
    return {
      emitter: this.#o.operator.name,
      record,
      sig: signRecord(record, this.#o.operator.signerKey),
      vkey: this.#o.operator.vkey,
      peer: 'log',
      stream,
      seq: head === null ? 0n : head.seq + 1n,
      prev: head?.recordHash,
      recordHash: base64Encode(sha256(utf8(canonical))),
      canonical,
      blobs: [],
      sealed: [],
      search: { kind, session: null, method: null, tool: null, recordTime: time },
    };
  }

  #fatal(err: Error, batch: Pending[], requests: PendingOperator[]): void {
    this.#state = 'failed';
    this.#reason = `commit outcome unknown: ${err.message}`;
    this.#o.logger.error(
      { err },
      'sequencer stopped: commit outcome unknown, restart to re-read the database',
    );
    const stop = new SequencerError('SEQUENCER_STOPPED', 'sequencer stopped');
    for (const p of batch) p.reject(stop);
    for (const r of requests) r.reject(stop);
    this.#failAll(stop);
    this.#o.onFatal?.(err);
  }
}

class FatalError extends Error {}

/**
 * Why `item` cannot be an operator record, or undefined: fields need a string kind other than the
 * registry kinds, none of the envelope members, canonical JSON, an entry of at most MAX_ENTRY_SIZE
 * (with room for the envelope and signature), and blobs whose bytes hash to their names.
 */
function operatorRecordProblem(item: OperatorRecord): string | undefined {
  const { fields } = item;
  if (typeof fields.kind !== 'string' || fields.kind.length === 0) return 'kind must be a non-empty string';
  if (REGISTRY_KINDS.includes(fields.kind))
    return `kind ${fields.kind} is appended by the registry sync only`;
  for (const key of ENVELOPE_KEYS) if (key in fields) return `${key} is set by the log`;
  let size: number;
  try {
    size = canonicalBytes(fields).length;
  } catch (err) {
    return (err as Error).message;
  }
  // Envelope (stream uuid, seq, prev, time), entry wrapper and signature take well under 1 KiB.
  if (size > MAX_ENTRY_SIZE - 1024) return `fields take ${size} bytes, at most ${MAX_ENTRY_SIZE - 1024}`;
  for (const [hex, bytes] of Object.entries(item.blobs ?? {})) {
    if (hexEncode(sha256(bytes)) !== hex) return `blob ${hex} does not hash to its name`;
  }
  return undefined;
}

/** The hashes of every `{"$blob":{"sha256","size"}}` reference in a value. */
function blobHashesOf(value: unknown, out: string[] = []): string[] {
  if (Array.isArray(value)) {
    for (const v of value) blobHashesOf(v, out);
  } else if (value !== null && typeof value === 'object') {
    const ref = (value as { $blob?: { sha256?: unknown } }).$blob;
    if (Object.keys(value).length === 1 && typeof ref?.sha256 === 'string') out.push(ref.sha256);
    else for (const v of Object.values(value)) blobHashesOf(v, out);
  }
  return out;
}

/**
 * The search columns of an entry whose tool name or resource URI is sealed (`--seal all`) and whose S
 * came with it: the opened name, with the commitment it came from (erasing that value clears them).
 */
function sealedColumnsOf(sub: Submission, index: bigint): NewSealedColumns[] {
  if (sub.sealed.length === 0) return [];
  const open = (value: unknown): { name: string; sha256: string } | undefined => {
    if (!isSealedRef(value)) return undefined;
    const s = sub.sealed.find((x) => x.sha256 === value.$sealed.sha256);
    if (!s) return undefined;
    try {
      const name = openSealed(value, s.bytes);
      // Only a name a text column can hold (as searchColumns does for clear names).
      if (typeof name !== 'string' || name.length === 0 || name.length > 512) return undefined;
      if (!isDbText(name)) return undefined;
      return { name, sha256: value.$sealed.sha256 };
    } catch {
      return undefined;
    }
  };
  const tool = open(sub.record['gen_ai.tool.name']);
  const resource = open(sub.record['mcp.resource.uri']);
  if (!tool && !resource) return [];
  return [
    {
      leafIndex: index,
      // One commitment per row: the tool name's when both are sealed (the usual case is one of them).
      sha256: (tool ?? resource)!.sha256,
      tool: tool?.name ?? null,
      resourceUri: resource?.name ?? null,
    },
  ];
}

function nodeKey(level: number, index: bigint): string {
  return `${level}/${index}`;
}

/** The nodes of a compact range by key: its perfect subtrees, largest (leftmost) first. */
function compactRangeNodes(range: CompactRange): Map<string, Uint8Array> {
  const out = new Map<string, Uint8Array>();
  let start = 0n;
  let i = 0;
  for (let level = 64; level >= 0; level--) {
    if (((range.size >> BigInt(level)) & 1n) === 0n) continue;
    out.set(nodeKey(level, start >> BigInt(level)), range.nodes[i++]!);
    start += 1n << BigInt(level);
  }
  return out;
}
