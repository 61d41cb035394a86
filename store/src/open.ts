import { mkdirSync } from 'node:fs';
import { Kysely } from 'kysely';
import { PostgresDialect } from 'kysely';
import pg from 'pg';
import { acquireDataDirLock, DataDirInUseError, type DataDirLock } from './lock.js';
import { embeddedConnectionString, startEmbeddedPostgres, type EmbeddedPostgres } from './embedded.js';
import { join } from 'node:path';

/** Which store backs a database handle: the embedded PostgreSQL of a data directory, or DATABASE_URL. */
export type StoreKind = 'embedded' | 'postgres';

/** An open database: the kysely instance, which store it is, and `close()`. */
export interface OpenDatabase<DB> {
  readonly db: Kysely<DB>;
  readonly kind: StoreKind;
  /** Where the pool connects (for the embedded store: its Unix socket in the data directory). */
  readonly connectionString: string;
  /** True when this handle started the embedded PostgreSQL and stops it on close. */
  readonly owner: boolean;
  close(): Promise<void>;
}

/** Options for `openDatabase`: `databaseUrl` selects Postgres, else the embedded store of `dataDir`. */
export interface OpenDatabaseOptions {
  databaseUrl?: string | undefined;
  dataDir?: string | undefined;
  /** Postgres pool size (default 10). */
  poolSize?: number;
  /**
   * Embedded only. 'own' (a service): start the embedded PostgreSQL and own it; another live owner
   * makes this throw DataDirInUseError. 'attach' (CLI commands): use the running one through its socket
   * when another process owns it, else start it for the life of this handle.
   */
  mode?: 'own' | 'attach';
  /** Embedded only: receives PostgreSQL's log lines. */
  onLog?: (line: string) => void;
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

/** One process's running embedded PostgreSQL per data directory, shared by its handles. */
interface Running {
  readonly postgres: EmbeddedPostgres;
  readonly lock: DataDirLock;
  handles: number;
}
const running = new Map<string, Promise<Running>>();

/** Starts (or joins this process's) embedded PostgreSQL of `dataDir`, holding its owner lock. */
async function ownEmbedded(dataDir: string, onLog?: (line: string) => void): Promise<Running> {
  const key = join(dataDir);
  let entry = running.get(key);
  if (!entry) {
    entry = (async () => {
      mkdirSync(dataDir, { recursive: true, mode: 0o700 });
      const lock = acquireDataDirLock(dataDir);
      try {
        const postgres = await startEmbeddedPostgres(dataDir, onLog ? { onLog } : {});
        return { postgres, lock, handles: 0 };
      } catch (err) {
        lock.release();
        throw err;
      }
    })();
    running.set(key, entry);
    entry.catch(() => running.delete(key));
  }
  const r = await entry;
  r.handles++;
  return r;
}

async function releaseEmbedded(dataDir: string, r: Running): Promise<void> {
  if (--r.handles > 0) return;
  running.delete(join(dataDir));
  try {
    await r.postgres.stop();
  } finally {
    r.lock.release();
  }
}

/** A kysely handle over a fresh pool. */
function kyselyOver<DB>(connectionString: string, poolSize: number): Kysely<DB> {
  const pool = createPgPool(connectionString, poolSize);
  return new Kysely<DB>({ dialect: new PostgresDialect({ pool }) });
}

/**
 * Opens the store: Postgres when `databaseUrl` is given, else the embedded PostgreSQL of `dataDir`
 * (files in `<dataDir>/pg`, created on first use). The embedded one belongs to the process holding the
 * data directory's lock: with mode 'own' (the default) this process takes the lock and starts it, and
 * `close()` of its last handle stops it; with 'attach' a running owner's server is used through its
 * Unix socket instead.
 */
export async function openDatabase<DB>(options: OpenDatabaseOptions): Promise<OpenDatabase<DB>> {
  const poolSize = options.poolSize ?? 10;
  if (options.databaseUrl) {
    const db = kyselyOver<DB>(options.databaseUrl, poolSize);
    return {
      db,
      kind: 'postgres',
      connectionString: options.databaseUrl,
      owner: false,
      close: () => db.destroy(),
    };
  }
  const dataDir = options.dataDir;
  if (!dataDir) throw new Error('openDatabase needs databaseUrl or dataDir');
  let r: Running;
  try {
    r = await ownEmbedded(dataDir, options.onLog);
  } catch (err) {
    if (!(err instanceof DataDirInUseError) || options.mode !== 'attach') throw err;
    // Another live process owns the embedded server: use it through its socket.
    const connectionString = embeddedConnectionString(join(dataDir, 'pg'));
    const db = kyselyOver<DB>(connectionString, poolSize);
    return { db, kind: 'embedded', connectionString, owner: false, close: () => db.destroy() };
  }
  const connectionString = r.postgres.connectionString();
  const db = kyselyOver<DB>(connectionString, poolSize);
  let closed = false;
  return {
    db,
    kind: 'embedded',
    connectionString,
    owner: true,
    async close() {
      if (closed) return;
      closed = true;
      try {
        await db.destroy();
      } finally {
        await releaseEmbedded(dataDir, r);
      }
    },
  };
}
