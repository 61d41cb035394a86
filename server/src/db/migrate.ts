// Migrations run through @vigil/store; this re-export keeps the server's imports short.
export {
  migrateToLatest,
  migrationsFolder,
  pendingMigrations,
  CompiledMigrationProvider,
} from '@vigil/store';
