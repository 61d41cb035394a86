import { sql, type Kysely } from 'kysely';
import { base64Decode, base64Encode } from '@vigil/client';
import { WitnessError } from '../errors.js';
import type {
  Evidence,
  EvidenceInput,
  EvidenceKind,
  LogRecord,
  LogState,
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
 * The witness store over kysely, for both the embedded PostgreSQL and an external one: one code path.
 * The only writer of latest_checkpoints is compareAndSwap, an UPDATE guarded by the old size, so the
 * check and the save are one atomic step on either store; concurrent ones share a statement (CasGroup).
 */
export function createWitnessStore(db: Kysely<WitnessDatabase>): WitnessStore {
  const cas = casGroup(db);
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

  // add-checkpoint's one read: the reads that arrive while one runs go together in the next.
  const stateReads = new Grouped<string, LogState | undefined>(async (origins) => {
    const rows = await db
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
      .where('logs.origin', 'in', [...new Set(origins)])
      .execute();
    const byOrigin = new Map(
      rows.map((row) => [row.origin, { log: rowToLog(row), latest: rowToLatest(row) }]),
    );
    return origins.map((o) => byOrigin.get(o));
  });

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

    getLogState(origin) {
      return stateReads.submit(origin);
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
      return cas.submit({ origin, oldSize, next });
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

    async countEvidence() {
      const row = await db
        .selectFrom('evidence')
        .select((eb) => eb.fn.countAll<string | number | bigint>().as('n'))
        .executeTakeFirstOrThrow();
      return Number(row.n);
    },
  };
}

/** Most requests one statement takes. */
const GROUP_MAX = 256;

interface Waiting<T, R> {
  item: T;
  resolve: (result: R) => void;
  reject: (err: unknown) => void;
}

/**
 * Runs requests in groups: while one statement runs, those that arrive wait, then go together in the
 * next (at most GROUP_MAX; with `keyOf`, at most one per key). `run` answers a group in order; if it
 * throws, every request of that group rejects with its error.
 */
class Grouped<T, R> {
  readonly #run: (group: T[]) => Promise<R[]>;
  readonly #keyOf: ((item: T) => string) | undefined;
  #queue: Waiting<T, R>[] = [];
  #running = false;

  constructor(run: (group: T[]) => Promise<R[]>, keyOf?: (item: T) => string) {
    this.#run = run;
    this.#keyOf = keyOf;
  }

  submit(item: T): Promise<R> {
    return new Promise((resolve, reject) => {
      this.#queue.push({ item, resolve, reject });
      if (!this.#running) void this.#drain();
    });
  }

  async #drain(): Promise<void> {
    this.#running = true;
    try {
      while (this.#queue.length > 0) {
        const group: Waiting<T, R>[] = [];
        const rest: Waiting<T, R>[] = [];
        const keys = new Set<string>();
        for (const w of this.#queue) {
          const key = this.#keyOf?.(w.item);
          if (group.length < GROUP_MAX && (key === undefined || !keys.has(key))) {
            if (key !== undefined) keys.add(key);
            group.push(w);
          } else {
            rest.push(w);
          }
        }
        this.#queue = rest;
        try {
          const results = await this.#run(group.map((w) => w.item));
          group.forEach((w, i) => w.resolve(results[i]!));
        } catch (err) {
          for (const w of group) w.reject(err);
        }
      }
    } finally {
      this.#running = false;
    }
  }
}

interface Cas {
  origin: string;
  oldSize: bigint;
  next: NewWitnessedCheckpoint;
}

/**
 * Group commit of compare-and-swaps, in one statement: each UPDATE guarded by its own old size, the
 * history row of each that moved. One statement is one implicit transaction, so they commit together
 * or not at all, and a caller hears `true` only after the commit. At most one per origin goes in a
 * statement (a second one for the same origin waits for the next), so each answer is exactly that
 * compare-and-swap's outcome.
 */
function casGroup(db: Kysely<WitnessDatabase>): Grouped<Cas, boolean> {
  return new Grouped(
    async (group) => {
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
      returning origin`.execute(db);
      const saved = new Set(result.rows.map((r) => r.origin));
      return group.map((c) => saved.has(c.origin));
    },
    (c) => c.origin,
  );
}
