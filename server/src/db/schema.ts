// Table types for migrations/log. Append-only columns are ColumnType<T, T, never>: an update of them
// does not compile. Row types never leave db/; repositories return domain types.
import type { ColumnType, Generated } from 'kysely';

type Fixed<T> = ColumnType<T, T, never>;
type FixedDefault<T> = ColumnType<T, T | undefined, never>;

export interface LogsTable {
  origin: Fixed<string>;
  vkey: Fixed<string>;
  created_at: FixedDefault<Date>;
}

export interface TreeHeadsTable {
  id: Fixed<number>;
  tree_size: bigint;
  root_hash: Uint8Array;
  note: string;
  updated_at: ColumnType<Date, Date | undefined, Date>;
}

export interface EntriesTable {
  leaf_index: Fixed<bigint>;
  entry: Fixed<Uint8Array>;
  leaf_hash: Fixed<Uint8Array>;
  emitter: Fixed<string>;
  stream: Fixed<string>;
  seq: Fixed<bigint>;
  record_hash: Fixed<string>;
  received: Fixed<Date>;
  kind: Fixed<string | null>;
  session: Fixed<string | null>;
  method: Fixed<string | null>;
  tool: Fixed<string | null>;
  record_time: Fixed<Date | null>;
}

export interface TreeNodesTable {
  level: Fixed<number>;
  node_index: Fixed<bigint>;
  hash: Fixed<Uint8Array>;
}

export interface CheckpointsTable {
  tree_size: Fixed<bigint>;
  root_hash: Fixed<Uint8Array>;
  note: Fixed<string>;
  created_at: FixedDefault<Date>;
}

export interface CosignaturesTable {
  tree_size: Fixed<bigint>;
  witness: Fixed<string>;
  line: Fixed<string>;
  timestamp: Fixed<bigint>;
  created_at: FixedDefault<Date>;
}

export interface BlobsTable {
  sha256: Fixed<string>;
  size: Fixed<bigint>;
  bytes: Fixed<Uint8Array>;
  created_at: FixedDefault<Date>;
}

export interface EmittersTable {
  name: Fixed<string>;
  vkey: Fixed<string>;
  created_at: FixedDefault<Date>;
  revoked_at: ColumnType<Date | null, Date | null | undefined, Date | null>;
}

export interface WitnessesTable {
  name: Fixed<string>;
  vkey: Fixed<string>;
  url: Fixed<string | null>;
  created_at: FixedDefault<Date>;
}

export interface SettingsTable {
  key: string;
  value: string;
}

export interface IncidentsTable {
  id: Generated<bigint>;
  kind: Fixed<string>;
  emitter: Fixed<string | null>;
  stream: Fixed<string | null>;
  seq: Fixed<bigint | null>;
  leaf_index: Fixed<bigint | null>;
  detail: Fixed<string>;
  created_at: FixedDefault<Date>;
}

/** S of a `$sealed` commitment: reader-only, erasable (DESIGN.md "Readers and sealed payloads"). */
export interface SealedTable {
  sha256: Fixed<string>;
  size: Fixed<bigint>;
  bytes: Fixed<Uint8Array>;
  leaf_index: Fixed<bigint | null>;
  emitter: Fixed<string | null>;
  stream: Fixed<string | null>;
  session: Fixed<string | null>;
  received: FixedDefault<Date>;
}

/** Search columns derived from opened values; cleared with them. */
export interface SealedColumnsTable {
  leaf_index: Fixed<bigint>;
  sha256: Fixed<string>;
  tool: Fixed<string | null>;
  resource_uri: Fixed<string | null>;
}

/** An operator request the log records as an operator-emitter record; record_index set once appended. */
export interface OperatorActionsTable {
  id: Generated<bigint>;
  kind: Fixed<string>;
  fields: Fixed<unknown>;
  created_at: FixedDefault<Date>;
  record_index: ColumnType<bigint | null, bigint | null | undefined, bigint>;
}

export interface ErasuresTable {
  sha256: Fixed<string>;
  action_id: Fixed<bigint>;
  erased_at: FixedDefault<Date>;
}

export interface ReadersTable {
  name: Fixed<string>;
  token_sha256: Fixed<string>;
  created_at: FixedDefault<Date>;
  revoked_at: ColumnType<Date | null, Date | null | undefined, Date | null>;
}

export interface HoldsTable {
  id: Fixed<string>;
  scope: Fixed<'session' | 'stream' | 'emitter'>;
  target: Fixed<string>;
  reason: Fixed<string>;
  created_at: FixedDefault<Date>;
  released_at: ColumnType<Date | null, Date | null | undefined, Date | null>;
}

/** The log server's database (migrations/log). */
export interface Database {
  logs: LogsTable;
  tree_heads: TreeHeadsTable;
  entries: EntriesTable;
  tree_nodes: TreeNodesTable;
  checkpoints: CheckpointsTable;
  cosignatures: CosignaturesTable;
  blobs: BlobsTable;
  emitters: EmittersTable;
  witnesses: WitnessesTable;
  settings: SettingsTable;
  incidents: IncidentsTable;
  sealed: SealedTable;
  sealed_columns: SealedColumnsTable;
  operator_actions: OperatorActionsTable;
  erasures: ErasuresTable;
  readers: ReadersTable;
  holds: HoldsTable;
}
