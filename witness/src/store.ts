/**
 * What the witness keeps, as an interface over the database (`db/store.ts` implements it for both the
 * embedded store and Postgres). The witness's state per origin is the newest checkpoint it cosigned;
 * it moves only through `compareAndSwap`, which is the one atomic "check the stored size and save"
 * step that tlog-witness requires (c2sp.org/tlog-witness, "the rollback race").
 */

/** A log the witness trusts. Logs are disabled, never deleted: their state and evidence stay. */
export interface LogRecord {
  origin: string;
  /** The log's verifier key (signed-note vkey, type 0x01). */
  vkey: string;
  /** Base URL for pull mode (tlog-tiles prefix); null for push-only logs. */
  url: string | null;
  pullIntervalMs: number;
  disabled: boolean;
  createdAt: Date;
}

/** The newest checkpoint the witness cosigned for an origin. */
export interface WitnessedCheckpoint {
  origin: string;
  size: bigint;
  root: Uint8Array;
  /** Checkpoint text + the log's verified signature line(s) + our cosignature line. */
  note: string;
  cosignedAt: Date;
}

/** The state to store after a successful cosignature. */
export interface NewWitnessedCheckpoint {
  size: bigint;
  root: Uint8Array;
  note: string;
}

/** Kinds of evidence: see witness/README.md ("Evidence") for what each proves. */
export type EvidenceKind = 'fork' | 'inconsistent' | 'rollback' | 'proof_failed';

export interface EvidenceInput {
  origin: string;
  kind: EvidenceKind;
  source: 'push' | 'pull';
  oldSize: bigint;
  newSize: bigint;
  /** The checkpoint the witness held, with the log's signature. */
  oldNote: string;
  /** The validly signed checkpoint that does not extend it. */
  newNote: string;
  /** Consistency proof hashes (oldSize -> newSize) that were checked; empty when none applies. */
  proof: Uint8Array[];
  /** For kind 'inconsistent': the root of the first oldSize leaves according to the new tree. */
  prefixRoot: Uint8Array | null;
}

export interface Evidence extends EvidenceInput {
  id: bigint;
  detectedAt: Date;
}

/** A log with its newest cosigned checkpoint (undefined when none: the witness's size is then 0). */
export interface LogState {
  log: LogRecord;
  latest: WitnessedCheckpoint | undefined;
}

export interface WitnessStore {
  getLog(origin: string): Promise<LogRecord | undefined>;
  /** `getLog` and `latest` in one read (add-checkpoint's hot path); undefined when the origin is unknown. */
  getLogState(origin: string): Promise<LogState | undefined>;
  listLogs(): Promise<LogRecord[]>;
  /** Adds a log at size 0. Throws WitnessError LOG_EXISTS if the origin is known (even disabled). */
  addLog(log: { origin: string; vkey: string; url: string | null; pullIntervalMs: number }): Promise<void>;
  /** Marks a log disabled; returns false when the origin is unknown. State is kept. */
  disableLog(origin: string): Promise<boolean>;
  /** Newest cosigned checkpoint, or undefined when none (the witness's size is then 0). */
  latest(origin: string): Promise<WitnessedCheckpoint | undefined>;
  /**
   * Stores `next` only if the stored size is still `oldSize`, with its history row, in one atomic
   * statement (one round trip, one implicit transaction, shared with the compare-and-swaps of other
   * origins that wait meanwhile). Returns false when another writer moved the state first; the
   * caller answers 409 with the new size.
   */
  compareAndSwap(origin: string, oldSize: bigint, next: NewWitnessedCheckpoint): Promise<boolean>;
  /** Appends evidence unless an identical (origin, kind, new note) item exists. Returns the item. */
  addEvidence(evidence: EvidenceInput): Promise<Evidence>;
  listEvidence(origin?: string): Promise<Evidence[]>;
  /** How many evidence items the store holds (one count query, for GET /metrics). */
  countEvidence(): Promise<number>;
}
