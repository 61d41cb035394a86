// Test helpers shared by the server and witness suites. Not used by the services themselves.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Test } from 'tap';
import pg from 'pg';
import { openDatabase, type OpenDatabase, type StoreKind } from './open.js';

/** A fresh Postgres database for one test file; `drop()` removes it (forcing other sessions off). */
export interface TestPostgresDatabase {
  readonly url: string;
  drop(): Promise<void>;
}

/**
 * Creates `vigil_t_<random>` on the server of `TEST_DATABASE_URL`. Returns undefined when that variable
 * is unset and `CI` is not; throws when it is unset in CI (a missing Postgres fails CI, never skips).
 */
export async function createTestPostgresDatabase(
  env: NodeJS.ProcessEnv = process.env,
): Promise<TestPostgresDatabase | undefined> {
  const base = env.TEST_DATABASE_URL;
  if (!base) {
    if (env.CI) throw new Error('TEST_DATABASE_URL is not set (required in CI)');
    return undefined;
  }
  const name = `vigil_t_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: base });
  await admin.connect();
  try {
    await admin.query(`create database ${name}`);
  } finally {
    await admin.end();
  }
  const url = new URL(base);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    async drop() {
      const client = new pg.Client({ connectionString: base });
      await client.connect();
      try {
        await client.query(`drop database if exists ${name} with (force)`);
      } finally {
        await client.end();
      }
    },
  };
}

/** Why a store cannot run here, or undefined when it can (see `testStoreKinds`). */
export function storeSkipReason(kind: StoreKind, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const only = env.VIGIL_TEST_STORE;
  if ((only === 'pglite' || only === 'postgres') && only !== kind) {
    return `VIGIL_TEST_STORE=${only}: this pass runs the ${only} store only`;
  }
  if (kind === 'postgres' && !env.TEST_DATABASE_URL && !env.CI) return 'TEST_DATABASE_URL not set';
  return undefined;
}

/**
 * The stores a store test runs on: both, unless `VIGIL_TEST_STORE` (set by .ci/run, which runs the
 * suite once per store) names one.
 */
export function testStoreKinds(env: NodeJS.ProcessEnv = process.env): StoreKind[] {
  const only = env.VIGIL_TEST_STORE;
  if (only === 'pglite' || only === 'postgres') return [only];
  return ['pglite', 'postgres'];
}

/** One test's store: where it lives and how to open it. `cleanup()` drops/removes everything. */
export interface TestStore {
  readonly kind: StoreKind;
  /** A temp directory (always present: PGlite files, keys, sockets live here). */
  readonly dataDir: string;
  /** Set for Postgres. */
  readonly databaseUrl?: string;
  /** Opens the store (for PGlite, close the previous handle first: one process-wide lock). */
  open<DB>(): Promise<OpenDatabase<DB>>;
  cleanup(): Promise<void>;
}

/** Creates a fresh store of the given kind: a temp data dir, plus a fresh database for Postgres. */
export async function createTestStore(
  kind: StoreKind,
  env: NodeJS.ProcessEnv = process.env,
): Promise<TestStore> {
  const dataDir = await mkdtemp(join(tmpdir(), 'vigil-test-'));
  const database = kind === 'postgres' ? await createTestPostgresDatabase(env) : undefined;
  if (kind === 'postgres' && !database) throw new Error('TEST_DATABASE_URL not set');
  const databaseUrl = database?.url;
  const opened: OpenDatabase<unknown>[] = [];
  return {
    kind,
    dataDir,
    ...(databaseUrl ? { databaseUrl } : {}),
    async open<DB>() {
      const handle = await openDatabase<DB>({ databaseUrl, dataDir, poolSize: 4 });
      opened.push(handle as OpenDatabase<unknown>);
      return handle;
    },
    async cleanup() {
      for (const handle of opened) {
        try {
          await handle.close();
        } catch {
          // already closed by the test
        }
      }
      await database?.drop();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/**
 * Runs `fn` as a subtest once per store kind (`testStoreKinds`), each with a fresh store that is
 * cleaned up after the subtest. Postgres is skipped with a message when TEST_DATABASE_URL is unset
 * outside CI.
 */
export function forEachStore(t: Test, fn: (t: Test, store: TestStore) => Promise<void>): void {
  for (const kind of testStoreKinds()) {
    const skip = storeSkipReason(kind);
    t.test(kind, skip ? { skip } : {}, async (t) => {
      const store = await createTestStore(kind);
      t.teardown(() => store.cleanup());
      await fn(t, store);
    });
  }
}
