import { readdir } from 'node:fs/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { join } from 'node:path';
import { Migrator, type Kysely, type Migration, type MigrationProvider, type MigrationResult } from 'kysely';

/**
 * Absolute path of the compiled migrations of one service: `migrations/dist/<which>/` in the repository
 * (compiled from `migrations/<which>/*.ts` by `migrations/tsconfig.json`).
 */
export function migrationsFolder(which: 'log' | 'witness'): string {
  // This file is store/dist/src/migrate.js.
  return fileURLToPath(new URL(`../../../migrations/dist/${which}/`, import.meta.url));
}

/** Reads `*.js` migration files (not maps or declarations) from a folder, keyed by file name. */
export class CompiledMigrationProvider implements MigrationProvider {
  readonly folder: string;
  constructor(folder: string) {
    this.folder = folder;
  }

  async getMigrations(): Promise<Record<string, Migration>> {
    const files = (await readdir(this.folder)).filter((f) => f.endsWith('.js')).sort();
    const migrations: Record<string, Migration> = {};
    for (const file of files) {
      const mod = (await import(pathToFileURL(join(this.folder, file)).href)) as Partial<Migration>;
      if (typeof mod.up !== 'function') throw new Error(`migration ${file} has no up()`);
      migrations[file.slice(0, -'.js'.length)] = mod as Migration;
    }
    return migrations;
  }
}

function migrator(db: Kysely<any>, folder: string): Migrator {
  return new Migrator({ db, provider: new CompiledMigrationProvider(folder) });
}

/** Applies every pending migration; throws (with the failing migration's error) on any failure. */
export async function migrateToLatest(db: Kysely<any>, folder: string): Promise<MigrationResult[]> {
  const { error, results } = await migrator(db, folder).migrateToLatest();
  if (error) {
    const failed = results?.find((r) => r.status === 'Error');
    throw new Error(`migration ${failed?.migrationName ?? '(unknown)'} failed: ${String(error)}`, {
      cause: error,
    });
  }
  return results ?? [];
}

/** Names of migrations not yet applied, in order (empty when up to date). */
export async function pendingMigrations(db: Kysely<any>, folder: string): Promise<string[]> {
  const all = await migrator(db, folder).getMigrations();
  return all.filter((m) => m.executedAt === undefined).map((m) => m.name);
}
