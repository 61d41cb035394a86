import type { ColumnType, Generated } from 'kysely';

/** Tables of migrations/witness/ (rows never leave db/). Append-only columns use ColumnType<T, T, never>. */
export interface LogsTable {
  origin: ColumnType<string, string, never>;
  vkey: ColumnType<string, string, never>;
  url: ColumnType<string | null, string | null, never>;
  pull_interval_ms: ColumnType<number, number, never>;
  disabled_at: Date | null;
  created_at: ColumnType<Date, Date | undefined, never>;
}

export interface LatestCheckpointsTable {
  origin: ColumnType<string, string, never>;
  tree_size: bigint;
  root_hash: Uint8Array | null;
  note: string | null;
  cosigned_at: Date | null;
}

export interface CosignedCheckpointsTable {
  id: Generated<bigint>;
  origin: ColumnType<string, string, never>;
  tree_size: ColumnType<bigint, bigint, never>;
  root_hash: ColumnType<Uint8Array, Uint8Array, never>;
  note: ColumnType<string, string, never>;
  cosigned_at: ColumnType<Date, Date | undefined, never>;
}

export interface EvidenceTable {
  id: Generated<bigint>;
  origin: ColumnType<string, string, never>;
  kind: ColumnType<string, string, never>;
  source: ColumnType<string, string, never>;
  old_size: ColumnType<bigint, bigint, never>;
  new_size: ColumnType<bigint, bigint, never>;
  old_note: ColumnType<string, string, never>;
  new_note: ColumnType<string, string, never>;
  /** Proof hashes, base64, one a line. */
  proof: ColumnType<string, string, never>;
  prefix_root: ColumnType<Uint8Array | null, Uint8Array | null, never>;
  detected_at: ColumnType<Date, Date | undefined, never>;
}

export interface WitnessDatabase {
  logs: LogsTable;
  latest_checkpoints: LatestCheckpointsTable;
  cosigned_checkpoints: CosignedCheckpointsTable;
  evidence: EvidenceTable;
}
