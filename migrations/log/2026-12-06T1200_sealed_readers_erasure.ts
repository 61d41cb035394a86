// Confidential by default (DESIGN.md "Readers and sealed payloads"): the sealed bytes S live in their own
// table, readable only through a reader's token, and erasable (unlike every append-only table); readers,
// legal holds, erasures and the operator's pending actions have tables of their own.
import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  // S of each `$sealed` commitment, stored with the entry that brought it (same transaction). Not
  // append-only: erasure deletes rows (and VACUUM then reclaims the bytes).
  await db.schema
    .createTable('sealed')
    .addColumn('sha256', 'text', (c) => c.primaryKey())
    .addColumn('size', 'int8', (c) => c.notNull())
    .addColumn('bytes', 'bytea', (c) => c.notNull())
    // The entry whose submission carried S; null for values moved here from blobs by this migration.
    .addColumn('leaf_index', 'int8')
    .addColumn('emitter', 'text')
    .addColumn('stream', 'text')
    .addColumn('session', 'text')
    .addColumn('received', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
  await db.schema.createIndex('sealed_leaf_idx').on('sealed').column('leaf_index').execute();
  await db.schema.createIndex('sealed_session_idx').on('sealed').column('session').execute();
  await db.schema.createIndex('sealed_stream_idx').on('sealed').column('stream').execute();
  await db.schema.createIndex('sealed_emitter_idx').on('sealed').column('emitter').execute();
  await db.schema.createIndex('sealed_received_idx').on('sealed').column('received').execute();

  // Search columns the log derived from opened values (a tool name sealed under `--seal all`): cleared
  // with the values they came from.
  await db.schema
    .createTable('sealed_columns')
    .addColumn('leaf_index', 'int8', (c) => c.primaryKey())
    .addColumn('sha256', 'text', (c) => c.notNull())
    .addColumn('tool', 'text')
    .addColumn('resource_uri', 'text')
    .execute();
  await db.schema.createIndex('sealed_columns_sha_idx').on('sealed_columns').column('sha256').execute();
  await db.schema
    .createIndex('sealed_columns_tool_idx')
    .on('sealed_columns')
    .columns(['tool', 'leaf_index'])
    .execute();

  // What the operator asked for that the log records as a record of its operator emitter: the CLI
  // inserts a row (kind and fields), the running log appends the record and stores its index.
  await db.schema
    .createTable('operator_actions')
    .addColumn('id', 'bigserial', (c) => c.primaryKey())
    .addColumn('kind', 'text', (c) => c.notNull())
    .addColumn('fields', 'jsonb', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('record_index', 'int8')
    .execute();
  await sql`create index operator_actions_pending_idx on operator_actions (id) where record_index is null`.execute(
    db,
  );

  // Each erased commitment, with the action (log.erasure) that erased it: GET /v1/sealed answers 410
  // with that action's record index.
  await db.schema
    .createTable('erasures')
    .addColumn('sha256', 'text', (c) => c.primaryKey())
    .addColumn('action_id', 'int8', (c) => c.notNull().references('operator_actions.id'))
    .addColumn('erased_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
  await db.schema.createIndex('erasures_action_idx').on('erasures').column('action_id').execute();

  // Readers: a bearer token's SHA-256 (hex), never the token.
  await db.schema
    .createTable('readers')
    .addColumn('name', 'text', (c) => c.primaryKey())
    .addColumn('token_sha256', 'text', (c) => c.notNull().unique())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('revoked_at', 'timestamptz')
    .execute();

  // Legal holds: values of a held session, stream or emitter are never erased while the hold stands.
  await db.schema
    .createTable('holds')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('scope', 'text', (c) => c.notNull().check(sql`scope in ('session', 'stream', 'emitter')`))
    .addColumn('target', 'text', (c) => c.notNull())
    .addColumn('reason', 'text', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('released_at', 'timestamptz')
    .execute();

  // An earlier version stored S as a public blob: move every blob that is a sealed value (canonical
  // `{"salt":"...` first) to the reader-only table. blobs is append-only, so its trigger is set aside
  // for this one statement.
  await sql`
    insert into sealed (sha256, size, bytes, received)
    select sha256, size, bytes, created_at from blobs
    where substring(bytes from 1 for 9) = '\x7b2273616c74223a22'::bytea
    on conflict do nothing`.execute(db);
  await sql`alter table blobs disable trigger blobs_append_only`.execute(db);
  await sql`delete from blobs where substring(bytes from 1 for 9) = '\x7b2273616c74223a22'::bytea`.execute(
    db,
  );
  await sql`alter table blobs enable trigger blobs_append_only`.execute(db);

  await sql`grant select, insert, delete on sealed, sealed_columns to vigil_service`.execute(db);
  await sql`grant select, insert on erasures to vigil_service`.execute(db);
  await sql`grant select, insert, update on operator_actions to vigil_service`.execute(db);
  await sql`grant usage on sequence operator_actions_id_seq to vigil_service`.execute(db);
  await sql`grant select on readers, holds to vigil_service`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  for (const table of ['holds', 'readers', 'erasures', 'operator_actions', 'sealed_columns', 'sealed']) {
    await db.schema.dropTable(table).ifExists().execute();
  }
}
