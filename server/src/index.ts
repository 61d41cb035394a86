// Public API of @vigil/server: the app builder and its config. The store plumbing (shared with the
// witness) lives in @vigil/store; it is re-exported here so the end-to-end tests keep one import.
export {
  openDatabase,
  createPgPool,
  migrateToLatest,
  pendingMigrations,
  migrationsFolder,
  createTestPostgresDatabase,
  createTestStore,
  forEachStore,
  postgresSkipReason,
  storeSkipReason,
  testStoreKinds,
} from '@vigil/store';
export type {
  OpenDatabase,
  OpenDatabaseOptions,
  StoreKind,
  TestPostgresDatabase,
  TestStore,
} from '@vigil/store';
export { buildApp } from './app.js';
export type { AppDeps } from './app.js';
export { loadConfig, configSchema, ConfigError } from './config.js';
export type { Config } from './config.js';
export { exportLog, importLog, LOG_TABLES } from './transfer/log.js';
