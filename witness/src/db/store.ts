import { sql, type Kysely } from 'kysely';
import { base64Decode, base64Encode } from '@vigil/client';
import { WitnessError } from '../errors.js';
import type {
  Evidence,
  EvidenceInput,
  EvidenceKind,
  LogRecord,
  NewWitnessedCheckpoint,
  WitnessedCheckpoint,
  WitnessStore,
} from '../store.js';
import type { WitnessDatabase } from './schema.js';

function toBytes(value: Uint8Array): Uint8Array {
  // pg returns Buffers; domain code gets plain Uint8Array views.
  return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
}

function toBigint(value: bigint | string | number): bigint {
  return typeof value === 'bigint' ? value : BigInt(value);
}

/**
 * The witness store over kysely, for both the embedded store (PGlite) and Postgres: one code path.
 * The only writer of latest_checkpoints is compareAndSwap, an UPDATE guarded by the old size, so the
 * check and the save are one atomic step on either store; concurrent ones share a statement (CasGroup).
 */
export function createWitnessStore(db: Kysely<WitnessDatabase>): WitnessStore {
  const casGroup = new CasGroup(db);
  const rowToLog = (row: {
    origin: string;
    vkey: string;
    url: string | null;
    pull_interval_ms: number;
    disabled_at: Date | null;
    created_at: Date;
  }): LogRecord => ({
    origin: row.origin,
    vkey: row.vkey,
    url: row.url,
    pullIntervalMs: Number(row.pull_interval_ms),
    disabled: row.disabled_at !== null,
    createdAt: new Date(row.created_at),
  });

  const rowToEvidence = (row: {
    id: bigint;
    origin: string;
    kind: string;
    source: string;
    old_size: bigint;
    new_size: bigint;
    old_note: string;
    new_note: string;
    proof: string;
    prefix_root: Uint8Array | null;
    detected_at: Date;
  }): Evidence => ({
    id: toBigint(row.id),
    origin: row.origin,
    kind: row.kind as EvidenceKind,
    source: row.source as 'push' | 'pull',
    oldSize: toBigint(row.old_size),
    newSize: toBigint(row.new_size),
    oldNote: row.old_note,
    newNote: row.new_note,
    proof: row.proof === '' ? [] : row.proof.split('\n').map((line) => base64Decode(line)),
    prefixRoot: row.prefix_root === null ? null : toBytes(row.prefix_root),
    detectedAt: new Date(row.detected_at),
  });

  const rowToLatest = (row: {
    origin: string;
    tree_size: bigint | null;
    root_hash: Uint8Array | null;
    note: string | null;
    cosigned_at: Date | null;
  }): WitnessedCheckpoint | undefined => {
    if (row.tree_size === null || row.note === null || row.root_hash === null || row.cosigned_at === null) {
      return undefined;
    }
    return {
      origin: row.origin,
      size: toBigint(row.tree_size),
      root: toBytes(row.root_hash),
      note: row.note,
      cosignedAt: new Date(row.cosigned_at),
    };
  };

  return {
    async getLog(origin) {
      const row = await db.selectFrom('logs').selectAll().where('origin', '=', origin).executeTakeFirst();
      return row === undefined ? undefined : rowToLog(row);
    },

    async listLogs() {
      const rows = await db.selectFrom('logs').selectAll().orderBy('origin').execute();
      return rows.map(rowToLog);
    },

    async addLog(log) {
      // The state row starts at size 0 with no checkpoint, so every later move is an UPDATE (CAS).
      await db.transaction().execute(async (trx) => {
        const inserted = await trx
          .insertInto('logs')
          .values({ origin: log.origin, vkey: log.vkey, url: log.url, pull_interval_ms: log.pullIntervalMs })
          .onConflict((oc) => oc.column('origin').doNothing())
          .executeTakeFirst();
        if (inserted.numInsertedOrUpdatedRows !== 1n) {
          throw new WitnessError('LOG_EXISTS', `log ${log.origin} already exists`);
        }
        await trx.insertInto('latest_checkpoints').values({ origin: log.origin, tree_size: 0n }).execute();
      });
    },

    async disableLog(origin) {
      const result = await db
        .updateTable('logs')
        .set({ disabled_at: new Date() })
        .where('origin', '=', origin)
        .where('disabled_at', 'is', null)
        .executeTakeFirst();
      if (result.numUpdatedRows === 1n) return true;
      return (await this.getLog(origin)) !== undefined;
    },

    async getLogState(origin) {
      const row = await db
        .selectFrom('logs')
        .leftJoin('latest_checkpoints', 'latest_checkpoints.origin', 'logs.origin')
        .select([
          'logs.origin',
          'logs.vkey',
          'logs.url',
          'logs.pull_interval_ms',
          'logs.disabled_at',
          'logs.created_at',
          'latest_checkpoints.tree_size',
          'latest_checkpoints.root_hash',
          'latest_checkpoints.note',
          'latest_checkpoints.cosigned_at',
        ])
        .where('logs.origin', '=', origin)
        .executeTakeFirst();
      if (row === undefined) return undefined;
      return { log: rowToLog(row), latest: rowToLatest(row) };
    },

    async latest(origin) {
      const row = await db
        .selectFrom('latest_checkpoints')
        .selectAll()
        .where('origin', '=', origin)
        .executeTakeFirst();
      return row === undefined ? undefined : rowToLatest(row);
    },

    compareAndSwap(origin: string, oldSize: bigint, next: NewWitnessedCheckpoint) {
      return casGroup.submit({ origin, oldSize, next });
    },

    async addEvidence(evidence: EvidenceInput) {
      const existing = await db
        .selectFrom('evidence')
        .selectAll()
        .where('origin', '=', evidence.origin)
        .where('kind', '=', evidence.kind)
        .where('new_note', '=', evidence.newNote)
        .where('old_size', '=', evidence.oldSize)
        .executeTakeFirst();
      if (existing !== undefined) return rowToEvidence(existing);
      const row = await db
        .insertInto('evidence')
        .values({
          origin: evidence.origin,
          kind: evidence.kind,
          source: evidence.source,
          old_size: evidence.oldSize,
          new_size: evidence.newSize,
          old_note: evidence.oldNote,
          new_note: evidence.newNote,
          proof: evidence.proof.map(base64Encode).join('\n'),
          prefix_root: evidence.prefixRoot,
        })
        .returningAll()
        .executeTakeFirstOrThrow();
      return rowToEvidence(row);
    },

    async listEvidence(origin?: string) {
      let query = db.selectFrom('evidence').selectAll().orderBy('id');
      if (origin !== undefined) query = query.where('origin', '=', origin);
      return (await query.execute()).map(rowToEvidence);
    },
  };
}

interface Cas {
  origin: string;
  oldSize: bigint;
  next: NewWitnessedCheckpoint;
  resolve: (saved: boolean) => void;
  reject: (err: unknown) => void;
}

/** Most compare-and-swaps one statement takes. */
const CAS_GROUP_MAX = 256;

/**
 * Group commit of compare-and-swaps: while one statement runs, the ones that arrive wait, then go
 * together in the next. Each is still guarded by its own old size; one statement is one implicit
 * transaction, so the guarded UPDATEs and their history rows commit together or not at all, and a
 * caller hears `true` only after the commit. At most one per origin goes in a statement (a second
 * one for the same origin waits for the next), so each answer is exactly that CAS's outcome.
 */
class CasGroup {
  readonly #db: Kysely<WitnessDatabase>;
  #queue: Cas[] = [];
  #running = false;

  constructor(db: Kysely<WitnessDatabase>) {
    this.#db = db;
  }

  submit(cas: Omit<Cas, 'resolve' | 'reject'>): Promise<boolean> {
    return new Promise((resolve, reject) => {
      this.#queue.push({ ...cas, resolve, reject });
      if (!this.#running) void this.#drain();
    });
  }

  async #drain(): Promise<void> {
    this.#running = true;
    try {
      while (this.#queue.length > 0) {
        const group: Cas[] = [];
        const rest: Cas[] = [];
        const origins = new Set<string>();
        for (const c of this.#queue) {
          if (group.length < CAS_GROUP_MAX && !origins.has(c.origin)) {
            origins.add(c.origin);
            group.push(c);
          } else {
            rest.push(c);
          }
        }
        this.#queue = rest;
        try {
          const saved = await this.#run(group);
          for (const c of group) c.resolve(saved.has(c.origin));
        } catch (err) {
          for (const c of group) c.reject(err);
        }
      }
    } finally {
      this.#running = false;
    }
  }

  /** One statement: every guarded UPDATE and the history row of each that moved. Returns those origins. */
  async #run(group: Cas[]): Promise<Set<string>> {
    const now = new Date();
    const rows = sql.join(
      group.map(
        (c) =>
          sql`(${c.origin}::text, ${c.oldSize}::bigint, ${c.next.size}::bigint, ${c.next.root}::bytea, ${c.next.note}::text)`,
      ),
    );
    const result = await sql<{ origin: string }>`
      with input (origin, old_size, tree_size, root_hash, note) as (values ${rows}),
      moved as (
        update latest_checkpoints l
        set tree_size = i.tree_size, root_hash = i.root_hash, note = i.note, cosigned_at = ${now}
        from input i
        where l.origin = i.origin and l.tree_size = i.old_size
        returning l.origin, l.tree_size, l.root_hash, l.note, l.cosigned_at
      )
      insert into cosigned_checkpoints (origin, tree_size, root_hash, note, cosigned_at)
      select origin, tree_size, root_hash, note, cosigned_at from moved
      returning origin`.execute(this.#db);
    return new Set(result.rows.map((r) => r.origin));
  }
}
