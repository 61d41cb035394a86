// Erasure, retention and legal holds over the sealed tables (DESIGN.md "Readers and sealed payloads").
// Plain query functions like repository.ts; kept apart because every statement here removes sealed
// bytes or decides whether they may be removed.
import { sql, type Kysely } from 'kysely';
import type { Database } from './schema.js';
import { insertOperatorAction, type Db } from './repository.js';

/** Which sealed values an erasure selects. `olderThan`: values received before that time (retention). */
export type SealedSelection =
  { sealed: readonly string[] } | { session: string } | { stream: string } | { olderThan: Date };

export type HoldScope = 'session' | 'stream' | 'emitter';

export interface Hold {
  id: string;
  scope: HoldScope;
  target: string;
  reason: string;
  created: Date;
  released: Date | null;
}

/**
 * Transaction-level advisory lock taken by every erasure and every hold change: an erasure's check of
 * the holds and its delete see the same holds (a hold added meanwhile waits for the erasure, and the
 * erasure for it). Two 32-bit keys ("vigl", "eras"): a key space apart from the sequencing lock's
 * single 64-bit key. Advisory locks need no table privilege, so the service role can take it too.
 */
async function lockErasures(trx: Db): Promise<void> {
  await sql`select pg_advisory_xact_lock(${0x7669676c}::int4, ${0x65726173}::int4)`.execute(trx);
}

/** SQL condition on `sealed s` for a selection. */
function selectionCondition(sel: SealedSelection) {
  if ('sealed' in sel) return sql`s.sha256 = any(${[...sel.sealed]}::text[])`;
  if ('session' in sel) return sql`s.session = ${sel.session}`;
  if ('stream' in sel) return sql`s.stream = ${sel.stream}`;
  return sql`s.received < ${sel.olderThan}`;
}

/** SQL condition: hold `h` (active) covers sealed value `s`. */
const holdCovers = sql`h.released_at is null and (
  (h.scope = 'session' and h.target = s.session) or
  (h.scope = 'stream' and h.target = s.stream) or
  (h.scope = 'emitter' and h.target = s.emitter))`;

/**
 * Most commitments a log.erasure record lists inline; a longer list is a `$blob` reference to its
 * canonical JSON (public, like the commitments themselves), stored with the erasure. Contract 13.
 */
export const ERASURE_INLINE_MAX = 500;

export interface ErasureRequest {
  reason: string;
  by: string;
  /** The record's target: `{"session":..}`, `{"stream":..}`, `{"sealed":true}` or `{"retention":..}`. */
  target: Record<string, string | boolean>;
  /**
   * `refuse`: any held value in the selection refuses the whole erasure (explicit erase);
   * `skip`: held values are left and the rest erased (retention).
   */
  held: 'refuse' | 'skip';
}

export type ErasureResult =
  | { kind: 'erased'; actionId: bigint; count: number; commitments: string[] }
  | { kind: 'nothing' }
  | { kind: 'held'; holds: Pick<Hold, 'id' | 'scope' | 'target'>[] };

/**
 * Erases the selected sealed values in one transaction, set-based whatever their number: deletes the
 * `sealed` rows and the `sealed_columns` derived from them, inserts one pending `log.erasure`
 * operator action (fields: reason, by, target, count, commitments in hex order: inline up to
 * ERASURE_INLINE_MAX, else a `$blob` reference to their list in the blobs table) and one `erasures`
 * row per commitment pointing at it. With nothing left to erase it inserts nothing (idempotent). The
 * running log turns the action into a record of its operator emitter; the caller then VACUUMs
 * (outside this transaction) and notifies the log.
 */
export async function eraseSealed(
  db: Kysely<Database>,
  sel: SealedSelection,
  req: ErasureRequest,
): Promise<ErasureResult> {
  return db.transaction().execute(async (trx) => {
    await lockErasures(trx);
    const where = selectionCondition(sel);
    if (req.held === 'refuse') {
      const held = await sql<{ id: string; scope: HoldScope; target: string }>`
        select distinct h.id, h.scope, h.target from sealed s join holds h on ${holdCovers}
        where ${where} order by h.id`.execute(trx);
      if (held.rows.length > 0) return { kind: 'held', holds: held.rows };
    }
    // One statement: the delete's RETURNING feeds the derived-column delete, the commitments list
    // (canonical JSON: an array of hex strings, sorted, no spaces), the action (only when something
    // was deleted), the public blob of a list over ERASURE_INLINE_MAX and the erasure marks. All of it
    // commits or none.
    const r = await sql<{ id: string | bigint; count: number; list: string }>`
      with doomed as (
        delete from sealed s
        where ${where} and not exists (select 1 from holds h where ${holdCovers})
        returning s.sha256
      ), derived as (
        delete from sealed_columns c using doomed d where c.sha256 = d.sha256
      ), agg as (
        select count(*)::int as n,
          convert_to('[' || coalesce(string_agg('"' || sha256 || '"', ',' order by sha256 collate "C"), '') || ']', 'UTF8') as list
        from doomed
      ), action as (
        insert into operator_actions (kind, fields)
        select 'log.erasure', jsonb_build_object(
          'reason', ${req.reason}::text,
          'by', ${req.by}::text,
          'target', ${JSON.stringify(req.target)}::jsonb,
          'count', n,
          'commitments', case when n <= ${ERASURE_INLINE_MAX} then convert_from(list, 'UTF8')::jsonb
            else jsonb_build_object('$blob',
              jsonb_build_object('sha256', encode(sha256(list), 'hex'), 'size', length(list))) end)
        from agg
        where n > 0
        returning id
      ), blob as (
        insert into blobs (sha256, size, bytes)
        select encode(sha256(list), 'hex'), length(list), list from agg where n > ${ERASURE_INLINE_MAX}
        on conflict (sha256) do nothing
      ), marks as (
        insert into erasures (sha256, action_id)
        select d.sha256, a.id from doomed d cross join action a
        on conflict (sha256) do nothing
      )
      select a.id, agg.n as count, convert_from(agg.list, 'UTF8') as list from action a cross join agg`.execute(
      trx,
    );
    const row = r.rows[0];
    if (!row) return { kind: 'nothing' };
    const commitments = JSON.parse(row.list) as string[];
    return { kind: 'erased', actionId: BigInt(row.id), count: row.count, commitments };
  });
}

/**
 * VACUUMs and ANALYZEs the sealed tables; runs outside a transaction. ANALYZE replaces the planner
 * statistics (pg_statistic keeps sample values of each column: S of small values, derived tool names)
 * with ones computed from the values that are left. Plain VACUUM frees the deleted tuples' space for
 * reuse without locking out writers, but their bytes can stay in that free space (seen in a one-entry
 * index page) until it is reused. `full` rewrites the tables and their indexes into new files (the old
 * files are removed) and holds an exclusive lock on them meanwhile: every submission with sealed
 * values and every reader waits. A role that does not own the tables gets a warning from PostgreSQL,
 * not an error (autovacuum does the plain one later). The old statistics rows are dead tuples of
 * pg_statistic until it is vacuumed too (here, when the role may; else by autovacuum).
 */
export async function vacuumSealed(db: Kysely<Database>, full = false): Promise<void> {
  if (full) {
    await sql`vacuum (full, analyze) sealed, sealed_columns`.execute(db);
    await sql`vacuum full pg_catalog.pg_statistic`.execute(db);
  } else {
    await sql`vacuum (analyze) sealed, sealed_columns`.execute(db);
    await sql`vacuum pg_catalog.pg_statistic`.execute(db);
  }
}

function holdFromRow(r: {
  id: string;
  scope: HoldScope;
  target: string;
  reason: string;
  created_at: Date;
  released_at: Date | null;
}): Hold {
  return {
    id: r.id,
    scope: r.scope,
    target: r.target,
    reason: r.reason,
    created: r.created_at,
    released: r.released_at,
  };
}

/** Adds a hold and its pending `hold.add` operator action in one transaction. */
export async function insertHold(
  db: Kysely<Database>,
  hold: { id: string; scope: HoldScope; target: string; reason: string },
): Promise<void> {
  await db.transaction().execute(async (trx) => {
    await lockErasures(trx);
    await trx.insertInto('holds').values(hold).execute();
    await insertOperatorAction(trx, 'hold.add', {
      hold: hold.id,
      scope: hold.scope,
      target: hold.target,
      reason: hold.reason,
    });
  });
}

/** Releases an active hold (and inserts `hold.release`); false when there is no active hold `id`. */
export async function releaseHold(db: Kysely<Database>, id: string): Promise<boolean> {
  return db.transaction().execute(async (trx) => {
    await lockErasures(trx);
    const r = await trx
      .updateTable('holds')
      .set({ released_at: new Date() })
      .where('id', '=', id)
      .where('released_at', 'is', null)
      .executeTakeFirst();
    if (r.numUpdatedRows !== 1n) return false;
    await insertOperatorAction(trx, 'hold.release', { hold: id });
    return true;
  });
}

/** Every hold, oldest first; with `active`, only those not released. */
export async function listHolds(db: Db, active = false): Promise<Hold[]> {
  let q = db.selectFrom('holds').selectAll().orderBy('created_at').orderBy('id');
  if (active) q = q.where('released_at', 'is', null);
  return (await q.execute()).map(holdFromRow);
}
