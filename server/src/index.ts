// Public API of @vigil/server: the store plumbing (shared with the witness) and the app builder.
export { PGliteDialect, pgliteTypeOptions, Mutex } from './db/pglite-dialect.js';
export { openDatabase, createPgPool } from './db/open.js';
export type { OpenDatabase, OpenDatabaseOptions, StoreKind } from './db/open.js';
export { acquireDataDirLock, DataDirInUseError } from './db/lock.js';
export type { DataDirLock } from './db/lock.js';
export {
  migrateToLatest,
  pendingMigrations,
  migrationsFolder,
  CompiledMigrationProvider,
} from './db/migrate.js';
export {
  createTestPostgresDatabase,
  createTestStore,
  forEachStore,
  storeSkipReason,
  testStoreKinds,
} from './db/testing.js';
export type { TestPostgresDatabase, TestStore } from './db/testing.js';
export { buildApp } from './app.js';
export type { AppDeps } from './app.js';
export { loadConfig, configSchema, ConfigError } from './config.js';
export type { Config } from './config.js';
export {
  BatchInserter,
  TransferError,
  dumpTable,
  prepareExportDir,
  readManifest,
  readTable,
  refuseNonEmpty,
  writeManifest,
} from './transfer/dump.js';
export type { ColumnType, Manifest, ManifestTable, TableSpec } from './transfer/dump.js';
export { exportLog, importLog, LOG_TABLES } from './transfer/log.js';
