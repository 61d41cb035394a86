// The shared test-store helpers moved to @vigil/store; this re-export keeps server tests' imports.
export {
  createTestPostgresDatabase,
  createTestStore,
  forEachStore,
  postgresSkipReason,
  storeSkipReason,
  testStoreKinds,
} from '@vigil/store';
export type { TestPostgresDatabase, TestStore } from '@vigil/store';
