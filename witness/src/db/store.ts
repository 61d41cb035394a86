import type { Kysely } from 'kysely';
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
 * The only writer of latest_checkpoints is compareAndSwap, a single UPDATE guarded by the old size,
 * so the check and the save are one atomic step on either store.
 */
export function createWitnessStore(db: Kysely<WitnessDatabase>): WitnessStore {
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

    async compareAndSwap(origin: string, oldSize: bigint, next: NewWitnessedCheckpoint) {
      // One statement, so one implicit transaction and one round trip: the guarded UPDATE and the
      // history row commit together or not at all. If the process dies before the commit, the next
      // start sees the old size and the client saw no 200. On the embedded store this holds the
      // session for one query instead of BEGIN..COMMIT.
      const now = new Date();
      const result = await db
        .with('moved', (qb) =>
          qb
            .updateTable('latest_checkpoints')
            .set({ tree_size: next.size, root_hash: next.root, note: next.note, cosigned_at: now })
            .where('origin', '=', origin)
            .where('tree_size', '=', oldSize)
            .returning(['origin', 'tree_size', 'root_hash', 'note', 'cosigned_at']),
        )
        .insertInto('cosigned_checkpoints')
        .columns(['origin', 'tree_size', 'root_hash', 'note', 'cosigned_at'])
        .expression((eb) =>
          eb.selectFrom('moved').select(['origin', 'tree_size', 'root_hash', 'note', 'cosigned_at']),
        )
        .executeTakeFirst();
      return result.numInsertedOrUpdatedRows === 1n;
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
