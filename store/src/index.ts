// Public API of @vigil/store: the one place that owns the store of both services (the embedded
// PostgreSQL, opening, migrating) and the test-store helpers their suites share.
export { openDatabase, createPgPool } from './open.js';
export type { OpenDatabase, OpenDatabaseOptions, StoreKind } from './open.js';
export {
  startEmbeddedPostgres,
  embeddedConnectionString,
  processState,
  EmbeddedPostgresError,
  LegacyDataDirError,
  EMBEDDED_POSTGRES_VERSION,
  UNPRIVILEGED_USER,
} from './embedded.js';
export type { EmbeddedPostgres, StartEmbeddedOptions } from './embedded.js';
export { acquireDataDirLock, DataDirInUseError, isAlive } from './lock.js';
export type { DataDirLock } from './lock.js';
export {
  migrateToLatest,
  pendingMigrations,
  migrationsFolder,
  CompiledMigrationProvider,
} from './migrate.js';
export {
  createTestPostgresDatabase,
  createTestStore,
  copyTemplateCluster,
  forEachStore,
  storeSkipReason,
  testStoreKinds,
  postgresSkipReason,
} from './testing.js';
export type { TestPostgresDatabase, TestStore } from './testing.js';
export {
  BatchInserter,
  TransferError,
  dumpTable,
  prepareExportDir,
  readManifest,
  readTable,
  refuseNonEmpty,
  writeManifest,
} from './transfer.js';
export type { ColumnType, Manifest, ManifestTable, TableSpec } from './transfer.js';
