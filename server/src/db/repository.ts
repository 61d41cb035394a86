// Plain query functions over the log's tables. Each takes `db` (or a transaction) first and returns
// domain types; rows stay here.
import { sql, type Kysely, type Transaction } from 'kysely';
import type { Database } from './schema.js';

export type Db = Kysely<Database> | Transaction<Database>;

/** The log row (origin, vkey), or undefined before `init`. */
export async function getLog(db: Db): Promise<{ origin: string; vkey: string } | undefined> {
  return db.selectFrom('logs').select(['origin', 'vkey']).executeTakeFirst();
}

/** The tree head (newest signed checkpoint), or undefined before `init`. */
export interface TreeHead {
  size: bigint;
  root: Uint8Array;
  note: string;
}

export async function getTreeHead(db: Db): Promise<TreeHead | undefined> {
  const row = await db
    .selectFrom('tree_heads')
    .select(['tree_size', 'root_hash', 'note'])
    .where('id', '=', 1)
    .executeTakeFirst();
  return row && { size: row.tree_size, root: row.root_hash, note: row.note };
}

/** Creates the log at size 0: logs row, the size-0 checkpoint and the tree head, in one transaction. */
export async function insertLog(
  db: Kysely<Database>,
  log: { origin: string; vkey: string },
  head: TreeHead,
): Promise<void> {
  await db.transaction().execute(async (trx) => {
    await trx.insertInto('logs').values(log).execute();
    await trx
      .insertInto('checkpoints')
      .values({ tree_size: head.size, root_hash: head.root, note: head.note })
      .execute();
    await trx
      .insertInto('tree_heads')
      .values({ id: 1, tree_size: head.size, root_hash: head.root, note: head.note })
      .execute();
  });
}

/**
 * Moves the tree head from `oldSize` by compare-and-swap; returns false when the stored size was not
 * `oldSize` (someone else moved it: the caller must stop).
 */
export async function casTreeHead(db: Db, oldSize: bigint, head: TreeHead): Promise<boolean> {
  const r = await db
    .updateTable('tree_heads')
    .set({ tree_size: head.size, root_hash: head.root, note: head.note, updated_at: new Date() })
    .where('id', '=', 1)
    .where('tree_size', '=', oldSize)
    .executeTakeFirst();
  return r.numUpdatedRows === 1n;
}

/** A new leaf as the sequencer stores it. */
export interface NewEntry {
  index: bigint;
  entry: Uint8Array;
  leafHash: Uint8Array;
  emitter: string;
  stream: string;
  seq: bigint;
  recordHash: string;
  received: Date;
  kind: string | null;
  session: string | null;
  method: string | null;
  tool: string | null;
  recordTime: Date | null;
}

const CHUNK = 256;

function chunks<T>(items: readonly T[], size = CHUNK): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/** Inserts entries in multi-row statements of 256. */
export async function insertEntries(db: Db, entries: readonly NewEntry[]): Promise<void> {
  for (const part of chunks(entries)) {
    await db
      .insertInto('entries')
      .values(
        part.map((e) => ({
          leaf_index: e.index,
          entry: e.entry,
          leaf_hash: e.leafHash,
          emitter: e.emitter,
          stream: e.stream,
          seq: e.seq,
          record_hash: e.recordHash,
          received: e.received,
          kind: e.kind,
          session: e.session,
          method: e.method,
          tool: e.tool,
          record_time: e.recordTime,
        })),
      )
      .execute();
  }
}

/** Inserts complete tree nodes at tile levels (8, 16, ...). */
export async function insertTreeNodes(
  db: Db,
  nodes: readonly { level: number; index: bigint; hash: Uint8Array }[],
): Promise<void> {
  for (const part of chunks(nodes)) {
    await db
      .insertInto('tree_nodes')
      .values(part.map((n) => ({ level: n.level, node_index: n.index, hash: n.hash })))
      .execute();
  }
}

/** Stores blobs content-addressed; an already stored hash is left as it is (same bytes by definition). */
export async function insertBlobs(
  db: Db,
  blobs: readonly { sha256: string; bytes: Uint8Array }[],
): Promise<void> {
  for (const part of chunks(blobs, 64)) {
    await db
      .insertInto('blobs')
      .values(part.map((b) => ({ sha256: b.sha256, size: BigInt(b.bytes.length), bytes: b.bytes })))
      .onConflict((oc) => oc.column('sha256').doNothing())
      .execute();
  }
}

/** Which of these blob hashes are not stored. */
export async function missingBlobs(db: Db, hashes: readonly string[]): Promise<string[]> {
  const stored = new Set<string>();
  for (const part of chunks([...new Set(hashes)], 500)) {
    const rows = await db.selectFrom('blobs').select('sha256').where('sha256', 'in', part).execute();
    for (const r of rows) stored.add(r.sha256);
  }
  return hashes.filter((h) => !stored.has(h));
}

export async function getBlob(db: Db, sha256: string): Promise<Uint8Array | undefined> {
  const row = await db.selectFrom('blobs').select('bytes').where('sha256', '=', sha256).executeTakeFirst();
  return row?.bytes;
}

export async function insertCheckpoint(db: Db, head: TreeHead): Promise<void> {
  await db
    .insertInto('checkpoints')
    .values({ tree_size: head.size, root_hash: head.root, note: head.note })
    .execute();
}

/** The signed checkpoint note of exactly `size`, if the log ever published that size. */
export async function getCheckpoint(db: Db, size: bigint): Promise<TreeHead | undefined> {
  const row = await db
    .selectFrom('checkpoints')
    .select(['tree_size', 'root_hash', 'note'])
    .where('tree_size', '=', size)
    .executeTakeFirst();
  return row && { size: row.tree_size, root: row.root_hash, note: row.note };
}

/** Checkpoints from newest down (for /checkpoint/witnessed). */
export async function listCheckpointsDesc(db: Db, limit: number): Promise<TreeHead[]> {
  const rows = await db
    .selectFrom('checkpoints')
    .select(['tree_size', 'root_hash', 'note'])
    .orderBy('tree_size', 'desc')
    .limit(limit)
    .execute();
  return rows.map((row) => ({ size: row.tree_size, root: row.root_hash, note: row.note }));
}

/** Level-0 hashes [start, start + width) from entries. */
export async function getLeafHashes(db: Db, start: bigint, width: number): Promise<Uint8Array[]> {
  const rows = await db
    .selectFrom('entries')
    .select('leaf_hash')
    .where('leaf_index', '>=', start)
    .where('leaf_index', '<', start + BigInt(width))
    .orderBy('leaf_index')
    .execute();
  return rows.map((r) => r.leaf_hash);
}

/**
 * The hashes of every partial tile of a tree of `size`, by tile level (the level-0 one from
 * entries.leaf_hash, the others from tree_nodes), in one round trip. A level without a partial
 * tile is absent; a level whose rows are missing has fewer hashes than its tile's width.
 */
export async function getPartialTiles(db: Db, size: bigint): Promise<Map<number, Uint8Array[]>> {
  const out = new Map<number, Uint8Array[]>();
  let query;
  for (let tileLevel = 0; size >> BigInt(8 * tileLevel) > 0n; tileLevel++) {
    const n = size >> BigInt(8 * tileLevel);
    const width = n % 256n;
    if (width === 0n) continue;
    out.set(tileLevel, []);
    const part =
      tileLevel === 0
        ? db
            .selectFrom('entries')
            .select([sql<number>`0`.as('level'), 'leaf_index as index', 'leaf_hash as hash'])
            .where('leaf_index', '>=', n - width)
            .where('leaf_index', '<', n)
        : db
            .selectFrom('tree_nodes')
            .select([sql<number>`level`.as('level'), 'node_index as index', 'hash'])
            .where('level', '=', 8 * tileLevel)
            .where('node_index', '>=', n - width)
            .where('node_index', '<', n);
    query = query === undefined ? part : query.unionAll(part);
  }
  if (query === undefined) return out;
  const rows = await query.execute();
  rows.sort((a, b) => a.level - b.level || (a.index < b.index ? -1 : a.index > b.index ? 1 : 0));
  for (const r of rows) out.get(Number(r.level) / 8)!.push(r.hash);
  return out;
}

/** Stored node hashes at `level`, indices [start, start + width). */
export async function getTreeNodes(
  db: Db,
  level: number,
  start: bigint,
  width: number,
): Promise<Uint8Array[]> {
  const rows = await db
    .selectFrom('tree_nodes')
    .select('hash')
    .where('level', '=', level)
    .where('node_index', '>=', start)
    .where('node_index', '<', start + BigInt(width))
    .orderBy('node_index')
    .execute();
  return rows.map((r) => r.hash);
}

/** Entry bytes [start, start + width). */
export async function getEntryRange(db: Db, start: bigint, width: number): Promise<Uint8Array[]> {
  const rows = await db
    .selectFrom('entries')
    .select('entry')
    .where('leaf_index', '>=', start)
    .where('leaf_index', '<', start + BigInt(width))
    .orderBy('leaf_index')
    .execute();
  return rows.map((r) => r.entry);
}

/** Entries with index, bytes and stored leaf hash, for the start-up check. */
export async function getEntriesForCheck(
  db: Db,
  start: bigint,
  limit: number,
): Promise<{ index: bigint; entry: Uint8Array; leafHash: Uint8Array }[]> {
  const rows = await db
    .selectFrom('entries')
    .select(['leaf_index', 'entry', 'leaf_hash'])
    .where('leaf_index', '>=', start)
    .orderBy('leaf_index')
    .limit(limit)
    .execute();
  return rows.map((r) => ({ index: r.leaf_index, entry: r.entry, leafHash: r.leaf_hash }));
}

export async function getTreeNodesFrom(db: Db, level: number): Promise<Map<bigint, Uint8Array>> {
  const rows = await db
    .selectFrom('tree_nodes')
    .select(['node_index', 'hash'])
    .where('level', '=', level)
    .execute();
  return new Map(rows.map((r) => [r.node_index, r.hash]));
}

export async function countTreeNodes(db: Db): Promise<bigint> {
  const row = await db
    .selectFrom('tree_nodes')
    .select(sql<bigint>`count(*)`.as('n'))
    .executeTakeFirstOrThrow();
  return BigInt(row.n);
}

/** A stored entry (by index), or undefined. */
export interface StoredEntry {
  index: bigint;
  entry: Uint8Array;
  emitter: string;
  stream: string;
  seq: bigint;
  recordHash: string;
}

export async function getEntry(db: Db, index: bigint): Promise<StoredEntry | undefined> {
  const row = await db
    .selectFrom('entries')
    .select(['leaf_index', 'entry', 'emitter', 'stream', 'seq', 'record_hash'])
    .where('leaf_index', '=', index)
    .executeTakeFirst();
  return row && toStored(row);
}

function toStored(row: {
  leaf_index: bigint;
  entry: Uint8Array;
  emitter: string;
  stream: string;
  seq: bigint;
  record_hash: string;
}): StoredEntry {
  return {
    index: row.leaf_index,
    entry: row.entry,
    emitter: row.emitter,
    stream: row.stream,
    seq: row.seq,
    recordHash: row.record_hash,
  };
}

export async function getEntryByStreamSeq(
  db: Db,
  stream: string,
  seq: bigint,
): Promise<StoredEntry | undefined> {
  const row = await db
    .selectFrom('entries')
    .select(['leaf_index', 'entry', 'emitter', 'stream', 'seq', 'record_hash'])
    .where('stream', '=', stream)
    .where('seq', '=', seq)
    .executeTakeFirst();
  return row && toStored(row);
}

/** A stream's newest record and the emitter that owns the stream. */
export interface StreamHead {
  seq: bigint;
  recordHash: string;
  /** The emitter whose record opened the stream (seq 0): the only one that may extend it. */
  owner: string;
}

/**
 * The last (highest seq) record of each given stream, with its owner: the emitter of its seq 0 record
 * (a stream always starts at seq 0). Both come from the (stream, seq) unique index.
 */
export async function getStreamHeads(db: Db, streams: readonly string[]): Promise<Map<string, StreamHead>> {
  const out = new Map<string, StreamHead>();
  for (const part of chunks(streams, 500)) {
    const heads = db
      .selectFrom('entries')
      .select(['stream', 'seq', 'record_hash', 'emitter'])
      .distinctOn('stream')
      .where('stream', 'in', part)
      .orderBy('stream')
      .orderBy('seq', 'desc')
      .as('h');
    const rows = await db
      .selectFrom(heads)
      .leftJoin('entries as o', (j) => j.onRef('o.stream', '=', 'h.stream').on('o.seq', '=', 0n))
      .select(['h.stream', 'h.seq', 'h.record_hash', 'h.emitter', 'o.emitter as owner'])
      .execute();
    for (const r of rows)
      out.set(r.stream, { seq: r.seq, recordHash: r.record_hash, owner: r.owner ?? r.emitter });
  }
  return out;
}

/** Search filters; all optional. `after` pages (entries with a smaller index). */
export interface SearchQuery {
  emitter?: string | undefined;
  stream?: string | undefined;
  session?: string | undefined;
  method?: string | undefined;
  tool?: string | undefined;
  since?: Date | undefined;
  until?: Date | undefined;
  after?: bigint | undefined;
  maxIndex: bigint;
  limit: number;
}

export async function searchEntries(db: Db, q: SearchQuery): Promise<StoredEntry[]> {
  let query = db
    .selectFrom('entries')
    .select(['leaf_index', 'entry', 'emitter', 'stream', 'seq', 'record_hash'])
    .where('leaf_index', '<', q.maxIndex);
  if (q.emitter !== undefined) query = query.where('emitter', '=', q.emitter);
  if (q.stream !== undefined) query = query.where('stream', '=', q.stream);
  if (q.session !== undefined) query = query.where('session', '=', q.session);
  if (q.method !== undefined) query = query.where('method', '=', q.method);
  // A tool name in clear is an entries column; one sealed under `--seal all` is in sealed_columns
  // (derived from the opened value, cleared when it is erased).
  const tool = q.tool;
  if (tool !== undefined)
    query = query.where((eb) =>
      eb.or([
        eb('tool', '=', tool),
        eb('leaf_index', 'in', eb.selectFrom('sealed_columns').select('leaf_index').where('tool', '=', tool)),
      ]),
    );
  if (q.since !== undefined) query = query.where('received', '>=', q.since);
  if (q.until !== undefined) query = query.where('received', '<', q.until);
  if (q.after !== undefined) query = query.where('leaf_index', '<', q.after);
  const rows = await query.orderBy('leaf_index', 'desc').limit(q.limit).execute();
  return rows.map(toStored);
}

/** Emitters (all, revoked included). */
export interface EmitterInfo {
  name: string;
  vkey: string;
  revoked: boolean;
}

export async function listEmitters(db: Db): Promise<EmitterInfo[]> {
  const rows = await db
    .selectFrom('emitters')
    .select(['name', 'vkey', 'revoked_at'])
    .orderBy('name')
    .execute();
  return rows.map((r) => ({ name: r.name, vkey: r.vkey, revoked: r.revoked_at !== null }));
}

export async function getEmitter(db: Db, name: string): Promise<EmitterInfo | undefined> {
  const r = await db
    .selectFrom('emitters')
    .select(['name', 'vkey', 'revoked_at'])
    .where('name', '=', name)
    .executeTakeFirst();
  return r && { name: r.name, vkey: r.vkey, revoked: r.revoked_at !== null };
}

/** Adds an emitter; false when the name exists already. */
export async function insertEmitter(db: Db, name: string, vkey: string): Promise<boolean> {
  const r = await db
    .insertInto('emitters')
    .values({ name, vkey })
    .onConflict((oc) => oc.column('name').doNothing())
    .executeTakeFirst();
  return (r.numInsertedOrUpdatedRows ?? 0n) === 1n;
}

/** Revokes an emitter; false when unknown or already revoked. */
export async function revokeEmitter(db: Db, name: string): Promise<boolean> {
  const r = await db
    .updateTable('emitters')
    .set({ revoked_at: new Date() })
    .where('name', '=', name)
    .where('revoked_at', 'is', null)
    .executeTakeFirst();
  return r.numUpdatedRows === 1n;
}

export interface WitnessInfo {
  name: string;
  vkey: string;
  url: string | null;
}

export async function listWitnesses(db: Db): Promise<WitnessInfo[]> {
  return db.selectFrom('witnesses').select(['name', 'vkey', 'url']).orderBy('name').execute();
}

export async function insertWitness(db: Db, w: WitnessInfo): Promise<boolean> {
  const r = await db
    .insertInto('witnesses')
    .values(w)
    .onConflict((oc) => oc.column('name').doNothing())
    .executeTakeFirst();
  return (r.numInsertedOrUpdatedRows ?? 0n) === 1n;
}

export async function deleteWitness(db: Db, name: string): Promise<boolean> {
  const r = await db.deleteFrom('witnesses').where('name', '=', name).executeTakeFirst();
  return r.numDeletedRows === 1n;
}

export async function getSetting(db: Db, key: string): Promise<string | undefined> {
  const r = await db.selectFrom('settings').select('value').where('key', '=', key).executeTakeFirst();
  return r?.value;
}

export async function putSetting(db: Db, key: string, value: string): Promise<void> {
  await db
    .insertInto('settings')
    .values({ key, value })
    .onConflict((oc) => oc.column('key').doUpdateSet({ value }))
    .execute();
}

/** Stores a cosignature line; false when that witness already cosigned that size. */
export async function insertCosignature(
  db: Db,
  c: { size: bigint; witness: string; line: string; timestamp: bigint },
): Promise<boolean> {
  const r = await db
    .insertInto('cosignatures')
    .values({ tree_size: c.size, witness: c.witness, line: c.line, timestamp: c.timestamp })
    .onConflict((oc) => oc.columns(['tree_size', 'witness']).doNothing())
    .executeTakeFirst();
  return (r.numInsertedOrUpdatedRows ?? 0n) === 1n;
}

export async function getCosignatures(db: Db, size: bigint): Promise<{ witness: string; line: string }[]> {
  return db
    .selectFrom('cosignatures')
    .select(['witness', 'line'])
    .where('tree_size', '=', size)
    .orderBy('witness')
    .execute();
}

/** The newest cosigned size per witness. */
export async function latestCosignedSizes(db: Db): Promise<Map<string, bigint>> {
  const rows = await db
    .selectFrom('cosignatures')
    .select(['witness', sql<bigint>`max(tree_size)`.as('size')])
    .groupBy('witness')
    .execute();
  return new Map(rows.map((r) => [r.witness, BigInt(r.size)]));
}

export interface Incident {
  id: bigint;
  kind: string;
  emitter: string | null;
  stream: string | null;
  seq: bigint | null;
  leafIndex: bigint | null;
  detail: string;
  created: Date;
}

export async function insertIncident(db: Db, i: Omit<Incident, 'id' | 'created'>): Promise<void> {
  await db
    .insertInto('incidents')
    .values({
      kind: i.kind,
      emitter: i.emitter,
      stream: i.stream,
      seq: i.seq,
      leaf_index: i.leafIndex,
      detail: i.detail,
    })
    .execute();
}

export async function listIncidents(db: Db, limit: number): Promise<Incident[]> {
  const rows = await db.selectFrom('incidents').selectAll().orderBy('id', 'desc').limit(limit).execute();
  return rows.map((r) => ({
    id: r.id,
    kind: r.kind,
    emitter: r.emitter,
    stream: r.stream,
    seq: r.seq,
    leafIndex: r.leaf_index,
    detail: r.detail,
    created: r.created_at,
  }));
}

/**
 * The registry records in the tree: entries of the operator emitter with kind `emitter.add` or
 * `emitter.revoke`, oldest first, with their stored leaf hash (the caller checks the bytes against it).
 */
export async function getRegistryEntries(
  db: Db,
  operator: string,
  limit = 1_000_000,
): Promise<{ index: bigint; entry: Uint8Array; leafHash: Uint8Array }[]> {
  const rows = await db
    .selectFrom('entries')
    .select(['leaf_index', 'entry', 'leaf_hash'])
    .where('emitter', '=', operator)
    .where('kind', 'in', ['emitter.add', 'emitter.revoke'])
    .orderBy('leaf_index')
    .limit(limit)
    .execute();
  return rows.map((r) => ({ index: r.leaf_index, entry: r.entry, leafHash: r.leaf_hash }));
}

/** The newest entry of an emitter (its stream, seq and record hash), or undefined. */
export async function getLastEntryOf(
  db: Db,
  emitter: string,
): Promise<{ index: bigint; stream: string; seq: bigint; recordHash: string } | undefined> {
  const row = await db
    .selectFrom('entries')
    .select(['leaf_index', 'stream', 'seq', 'record_hash'])
    .where('emitter', '=', emitter)
    .orderBy('leaf_index', 'desc')
    .limit(1)
    .executeTakeFirst();
  return row && { index: row.leaf_index, stream: row.stream, seq: row.seq, recordHash: row.record_hash };
}

/** Whether an emitter has any entry (one index lookup). */
export async function hasEntries(db: Db, emitter: string): Promise<boolean> {
  const row = await db
    .selectFrom('entries')
    .select('leaf_index')
    .where('emitter', '=', emitter)
    .limit(1)
    .executeTakeFirst();
  return row !== undefined;
}

/** An operator action the CLI asked for and the log has not appended yet (record_index null). */
export interface PendingOperatorAction {
  id: bigint;
  kind: string;
  fields: unknown;
}

/** Pending operator actions, oldest (lowest id) first. */
export async function listPendingOperatorActions(db: Db, limit: number): Promise<PendingOperatorAction[]> {
  return db
    .selectFrom('operator_actions')
    .select(['id', 'kind', 'fields'])
    .where('record_index', 'is', null)
    .orderBy('id')
    .limit(limit)
    .execute();
}

/**
 * Sets the record index of a pending operator action; false when it is not pending any more (the
 * caller rolls back: another writer appended it).
 */
export async function setOperatorActionIndex(db: Db, id: bigint, index: bigint): Promise<boolean> {
  const r = await db
    .updateTable('operator_actions')
    .set({ record_index: index })
    .where('id', '=', id)
    .where('record_index', 'is', null)
    .executeTakeFirst();
  return r.numUpdatedRows === 1n;
}

/** Inserts an operator action (admin commands); the running log appends its record. */
export async function insertOperatorAction(
  db: Db,
  kind: string,
  fields: Record<string, unknown>,
): Promise<bigint> {
  const row = await db
    .insertInto('operator_actions')
    .values({ kind, fields: JSON.stringify(fields) })
    .returning('id')
    .executeTakeFirstOrThrow();
  return row.id;
}

/** An operator action by id (kind, fields and the index of its record once appended). */
export async function getOperatorAction(
  db: Db,
  id: bigint,
): Promise<{ kind: string; fields: unknown; recordIndex: bigint | null } | undefined> {
  const r = await db
    .selectFrom('operator_actions')
    .select(['kind', 'fields', 'record_index'])
    .where('id', '=', id)
    .executeTakeFirst();
  return r && { kind: r.kind, fields: r.fields, recordIndex: r.record_index };
}

/** S of a sealed commitment as the sequencer stores it, with the entry that brought it. */
export interface NewSealed {
  sha256: string;
  bytes: Uint8Array;
  leafIndex: bigint;
  emitter: string;
  stream: string;
  session: string | null;
}

/**
 * Stores sealed values; a commitment already stored keeps its first row (same bytes by definition),
 * and one already erased is not stored again (erasure is for good).
 */
export async function insertSealed(db: Db, values: readonly NewSealed[]): Promise<void> {
  if (values.length === 0) return;
  const erased = await erasedAmong(
    db,
    values.map((v) => v.sha256),
  );
  const keep = values.filter((v) => !erased.has(v.sha256));
  for (const part of chunks(keep, 64)) {
    await db
      .insertInto('sealed')
      .values(
        part.map((v) => ({
          sha256: v.sha256,
          size: BigInt(v.bytes.length),
          bytes: v.bytes,
          leaf_index: v.leafIndex,
          emitter: v.emitter,
          stream: v.stream,
          session: v.session,
        })),
      )
      .onConflict((oc) => oc.column('sha256').doNothing())
      .execute();
  }
}

/** Which of these commitments were erased. */
export async function erasedAmong(db: Db, hashes: readonly string[]): Promise<Set<string>> {
  const out = new Set<string>();
  for (const part of chunks([...new Set(hashes)], 500)) {
    const rows = await db.selectFrom('erasures').select('sha256').where('sha256', 'in', part).execute();
    for (const r of rows) out.add(r.sha256);
  }
  return out;
}

/** Search columns derived from an opened sealed value (a tool name or resource sealed under `all`). */
export interface NewSealedColumns {
  leafIndex: bigint;
  sha256: string;
  tool: string | null;
  resourceUri: string | null;
}

export async function insertSealedColumns(db: Db, rows: readonly NewSealedColumns[]): Promise<void> {
  for (const part of chunks(rows)) {
    await db
      .insertInto('sealed_columns')
      .values(
        part.map((r) => ({
          leaf_index: r.leafIndex,
          sha256: r.sha256,
          tool: r.tool,
          resource_uri: r.resourceUri,
        })),
      )
      .onConflict((oc) => oc.column('leaf_index').doNothing())
      .execute();
  }
}

/** Stored sealed values among these commitments: S by hash. */
export async function getSealedValues(db: Db, hashes: readonly string[]): Promise<Map<string, Uint8Array>> {
  const out = new Map<string, Uint8Array>();
  for (const part of chunks([...new Set(hashes)], 500)) {
    const rows = await db
      .selectFrom('sealed')
      .select(['sha256', 'bytes'])
      .where('sha256', 'in', part)
      .execute();
    for (const r of rows) out.set(r.sha256, r.bytes);
  }
  return out;
}

/** Whether a commitment's S is stored (without reading it). */
export async function hasSealed(db: Db, sha256: string): Promise<boolean> {
  const row = await db.selectFrom('sealed').select('sha256').where('sha256', '=', sha256).executeTakeFirst();
  return row !== undefined;
}

/**
 * Erased commitments among these, with the index of their log.erasure record (null while the log has
 * not appended it yet).
 */
export async function getErasures(db: Db, hashes: readonly string[]): Promise<Map<string, bigint | null>> {
  const out = new Map<string, bigint | null>();
  for (const part of chunks([...new Set(hashes)], 500)) {
    const rows = await db
      .selectFrom('erasures')
      .innerJoin('operator_actions', 'operator_actions.id', 'erasures.action_id')
      .select(['erasures.sha256', 'operator_actions.record_index'])
      .where('erasures.sha256', 'in', part)
      .execute();
    for (const r of rows) out.set(r.sha256, r.record_index);
  }
  return out;
}

/** A reader as listed by `reader list`. */
export interface ReaderInfo {
  name: string;
  created: Date;
  revoked: Date | null;
}

/** Adds a reader (token stored as its SHA-256 hex); false when the name exists already. */
export async function insertReader(db: Db, name: string, tokenSha256: string): Promise<boolean> {
  const r = await db
    .insertInto('readers')
    .values({ name, token_sha256: tokenSha256 })
    .onConflict((oc) => oc.column('name').doNothing())
    .executeTakeFirst();
  return (r.numInsertedOrUpdatedRows ?? 0n) === 1n;
}

export async function listReaders(db: Db): Promise<ReaderInfo[]> {
  const rows = await db
    .selectFrom('readers')
    .select(['name', 'created_at', 'revoked_at'])
    .orderBy('name')
    .execute();
  return rows.map((r) => ({ name: r.name, created: r.created_at, revoked: r.revoked_at }));
}

/** Revokes a reader; false when unknown or already revoked. */
export async function revokeReader(db: Db, name: string): Promise<boolean> {
  const r = await db
    .updateTable('readers')
    .set({ revoked_at: new Date() })
    .where('name', '=', name)
    .where('revoked_at', 'is', null)
    .executeTakeFirst();
  return r.numUpdatedRows === 1n;
}

/** The unrevoked reader whose token hashes to `tokenSha256`, with the stored hash; or undefined. */
export async function getActiveReaderByTokenHash(
  db: Db,
  tokenSha256: string,
): Promise<{ name: string; tokenSha256: string } | undefined> {
  const r = await db
    .selectFrom('readers')
    .select(['name', 'token_sha256'])
    .where('token_sha256', '=', tokenSha256)
    .where('revoked_at', 'is', null)
    .executeTakeFirst();
  return r && { name: r.name, tokenSha256: r.token_sha256 };
}

/** Whether `sha256` is a sealed commitment the log knows (stored or erased): never served as a blob. */
export async function isSealedCommitment(db: Db, sha256: string): Promise<boolean> {
  const row = await db
    .selectFrom('sealed')
    .select('sha256')
    .where('sha256', '=', sha256)
    .unionAll(db.selectFrom('erasures').select('sha256').where('sha256', '=', sha256))
    .limit(1)
    .executeTakeFirst();
  return row !== undefined;
}
