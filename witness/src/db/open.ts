import { migrateToLatest, migrationsFolder, openDatabase, pendingMigrations } from '@vigil/store';
import type { Kysely } from 'kysely';
import type { StoreKind } from '@vigil/store';
import type { WitnessStore } from '../store.js';
import type { WitnessDatabase } from './schema.js';
import { createWitnessStore } from './store.js';

export interface OpenedStore {
  store: WitnessStore;
  db: Kysely<WitnessDatabase>;
  kind: StoreKind;
  close(): Promise<void>;
}

/**
 * Opens the witness store: Postgres with `databaseUrl`, else the embedded PostgreSQL in
 * `<dataDir>/pg`, through @vigil/store (the same plumbing as the log). 'own' (serve, the default)
 * starts it and stops it on close; 'attach' (CLI commands) uses a running witness's server through its
 * socket (see openDatabase).
 */
export async function openWitnessStore(
  options: { databaseUrl?: string | undefined; dataDir: string },
  mode: 'own' | 'attach' = 'own',
): Promise<OpenedStore> {
  const opened = await openDatabase<WitnessDatabase>({
    databaseUrl: options.databaseUrl,
    dataDir: options.dataDir,
    mode,
  });
  return {
    store: createWitnessStore(opened.db),
    db: opened.db,
    kind: opened.kind,
    close: () => opened.close(),
  };
}

/** Applies pending witness migrations (migrations/witness/). Returns the names applied. */
export async function migrateWitness(db: Kysely<WitnessDatabase>): Promise<string[]> {
  const results = await migrateToLatest(db as Kysely<any>, migrationsFolder('witness'));
  return results.filter((r) => r.status === 'Success').map((r) => r.migrationName);
}

/** Names of witness migrations not applied yet; serve refuses to start unless this is empty. */
export async function pendingWitnessMigrations(db: Kysely<WitnessDatabase>): Promise<string[]> {
  return pendingMigrations(db as Kysely<any>, migrationsFolder('witness'));
}
