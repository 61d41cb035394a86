// Test helpers shared by the server, witness and end-to-end suites. Not used by the services themselves.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rename, rm } from 'node:fs/promises';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import type { Test } from 'tap';
import pg from 'pg';
import { EMBEDDED_POSTGRES_VERSION, initEmbeddedCluster, waitForPostmasterExit } from './embedded.js';
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

/**
 * Why tests about an external PostgreSQL (DATABASE_URL: two servers on one database, the service role,
 * an unreachable URL) cannot run here, or undefined when they can. They run where TEST_DATABASE_URL is
 * set (CI sets it); in CI a missing TEST_DATABASE_URL is a failure (createTestPostgresDatabase throws).
 */
export function postgresSkipReason(env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (!env.TEST_DATABASE_URL && !env.CI) {
    return 'TEST_DATABASE_URL not set: tests against an external PostgreSQL run in CI (.ci/run sets it)';
  }
  return undefined;
}

/** Why a store cannot run here, or undefined when it can (see `testStoreKinds`). */
export function storeSkipReason(kind: StoreKind, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const only = env.VIGIL_TEST_STORE;
  if ((only === 'embedded' || only === 'postgres') && only !== kind) {
    return `VIGIL_TEST_STORE=${only}: this run uses the ${only} store only`;
  }
  return kind === 'postgres' ? postgresSkipReason(env) : undefined;
}

/**
 * The stores a store test runs on: the embedded store (one suite, one engine), or the one that
 * `VIGIL_TEST_STORE` (embedded|postgres) names. Tests about DATABASE_URL itself use
 * `createTestStore('postgres')` with `postgresSkipReason`.
 */
export function testStoreKinds(env: NodeJS.ProcessEnv = process.env): StoreKind[] {
  const only = env.VIGIL_TEST_STORE;
  if (only === 'embedded' || only === 'postgres') return [only];
  return ['embedded'];
}

/** One test's store: where it lives and how to open it. `cleanup()` drops/removes everything. */
export interface TestStore {
  readonly kind: StoreKind;
  /** A temp directory (always present: the embedded cluster in pg/, keys, sockets live here). */
  readonly dataDir: string;
  /** Set for Postgres. */
  readonly databaseUrl?: string;
  /**
   * Opens the store. Embedded: handles in this process share its running PostgreSQL, which stops
   * when the last is closed; close them all before a child process serves the same data directory.
   */
  open<DB>(): Promise<OpenDatabase<DB>>;
  cleanup(): Promise<void>;
}

/**
 * A cluster made by initdb once per machine and user (initdb costs about a second; a copy a tenth of
 * that), in the temp directory; each embedded test store starts from a copy.
 */
let template: Promise<string> | undefined;
function templateCluster(): Promise<string> {
  template ??= (async () => {
    const dir = join(tmpdir(), `vigil-test-template-${EMBEDDED_POSTGRES_VERSION}-${userInfo().uid}`);
    if (existsSync(join(dir, 'pg', 'PG_VERSION'))) return dir;
    const tmp = await mkdtemp(`${dir}.tmp-`);
    await initEmbeddedCluster(tmp);
    // Another test process may have won the race: keep theirs.
    await rename(tmp, dir).catch(() => rm(tmp, { recursive: true, force: true }));
    return dir;
  })();
  return template;
}

/**
 * Puts a fresh copy of the template cluster in `<dataDir>/pg` (which must not exist), so a test's
 * embedded store or `vigil-server start` skips initdb. The cluster is empty: migrations still apply.
 */
export async function copyTemplateCluster(dataDir: string): Promise<void> {
  // cp -a keeps the owner (the unprivileged user when root) and modes PostgreSQL insists on.
  const r = spawnSync('cp', ['-a', join(await templateCluster(), 'pg'), join(dataDir, 'pg')], {
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`copying the template cluster failed: ${r.stderr}`);
}

/** Creates a fresh store of the given kind: a temp data dir, plus a fresh database for Postgres. */
export async function createTestStore(
  kind: StoreKind,
  env: NodeJS.ProcessEnv = process.env,
): Promise<TestStore> {
  const dataDir = await mkdtemp(join(tmpdir(), 'vigil-test-'));
  const database = kind === 'postgres' ? await createTestPostgresDatabase(env) : undefined;
  if (kind === 'postgres' && !database) throw new Error('TEST_DATABASE_URL not set');
  if (kind === 'embedded') await copyTemplateCluster(dataDir);
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
      // A child process that served this directory may have left its PostgreSQL shutting down:
      // removing the files under it fails (ENOTEMPTY) while it still writes them.
      await waitForPostmasterExit(join(dataDir, 'pg'), 30_000).catch(() => undefined);
      await rm(dataDir, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 });
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
