import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { Kysely } from 'kysely';
import { PostgresDialect } from 'kysely';
import pg from 'pg';
import { acquireDataDirLock, type DataDirLock } from './lock.js';
import { PGliteDialect, pgliteTypeOptions } from './pglite-dialect.js';

/** Which store backs a database handle. */
export type StoreKind = 'pglite' | 'postgres';

/** An open database: the kysely instance, which store it is, and `close()` (pool/PGlite + lock). */
export interface OpenDatabase<DB> {
  readonly db: Kysely<DB>;
  readonly kind: StoreKind;
  /** Present for PGlite: the data-directory lock this handle holds. */
  readonly lock?: DataDirLock;
  close(): Promise<void>;
}

/** Options for `openDatabase`: `databaseUrl` selects Postgres, else PGlite in `<dataDir>/pgdata`. */
export interface OpenDatabaseOptions {
  databaseUrl?: string | undefined;
  dataDir?: string | undefined;
  /** Postgres pool size (default 10). */
  poolSize?: number;
  /** PGlite only: skip taking the data-directory lock because the caller already holds it. */
  lockHeld?: boolean;
}

/** Turns a pg bytea Buffer into a plain Uint8Array view (no copy), so Buffers never leave db/. */
function parseByteaHex(text: string): Uint8Array {
  // Postgres text output for bytea is "\x" followed by hex (bytea_output = hex, the default).
  const buf = Buffer.from(text.slice(2), 'hex');
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
}

/** A pg Pool whose int8 columns parse to bigint and bytea to Uint8Array (this pool only). */
export function createPgPool(connectionString: string, max = 10): pg.Pool {
  const pool = new pg.Pool({
    connectionString,
    max,
    types: {
      getTypeParser: ((oid: number, format?: 'text' | 'binary') => {
        if (oid === 20) return (value: string) => BigInt(value);
        if (oid === 17 && format !== 'binary') return parseByteaHex;
        return pg.types.getTypeParser(oid, format as 'text');
      }) as typeof pg.types.getTypeParser,
    },
  });
  // An IDLE client whose connection the server ended (a Postgres restart, a terminated backend) is
  // dropped from the pool, and the next query opens a new one. Without a listener pg would raise it as
  // an uncaught exception and kill the process; errors on checked-out clients still reach their query.
  pool.on('error', () => {});
  return pool;
}

/**
 * Opens the store: Postgres when `databaseUrl` is given, else PGlite with its files in
 * `<dataDir>/pgdata` (the directory is created). PGlite is single-writer, so the data-directory lock is
 * taken first (unless `lockHeld`) and released by `close()`; a live holder makes this throw
 * DataDirInUseError before PGlite touches the files.
 */
export async function openDatabase<DB>(options: OpenDatabaseOptions): Promise<OpenDatabase<DB>> {
  if (options.databaseUrl) {
    const pool = createPgPool(options.databaseUrl, options.poolSize ?? 10);
    const db = new Kysely<DB>({ dialect: new PostgresDialect({ pool }) });
    return { db, kind: 'postgres', close: () => db.destroy() };
  }
  if (!options.dataDir) throw new Error('openDatabase needs databaseUrl or dataDir');
  mkdirSync(options.dataDir, { recursive: true });
  const lock = options.lockHeld ? undefined : acquireDataDirLock(options.dataDir);
  let pglite: PGlite;
  try {
    pglite = await PGlite.create(join(options.dataDir, 'pgdata'), pgliteTypeOptions);
  } catch (err) {
    lock?.release();
    throw err;
  }
  const db = new Kysely<DB>({ dialect: new PGliteDialect(pglite) });
  return {
    db,
    kind: 'pglite',
    ...(lock ? { lock } : {}),
    async close() {
      try {
        await db.destroy();
        // kysely skips the driver's destroy when no query ever ran.
        if (!pglite.closed) await pglite.close();
      } finally {
        lock?.release();
      }
    },
  };
}
