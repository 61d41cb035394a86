// The log server's tables. See DESIGN.md "Storage": entries, checkpoints, cosignatures, blobs and the
// tile-level tree nodes are append-only (triggers below); the tree head row moves only by
// compare-and-swap on tree_size (done by the sequencer, the one writer).
import { sql, type Kysely } from 'kysely';

const APPEND_ONLY = ['entries', 'tree_nodes', 'checkpoints', 'cosignatures', 'blobs', 'incidents'];

export async function up(db: Kysely<any>): Promise<void> {
  // One log per database: its origin and verifier key, fixed at `vigil-server init`.
  await db.schema
    .createTable('logs')
    .addColumn('origin', 'text', (c) => c.primaryKey())
    .addColumn('vkey', 'text', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();

  // The one tree head row (id = 1): the newest signed checkpoint's size, root and note.
  await db.schema
    .createTable('tree_heads')
    .addColumn('id', 'int2', (c) => c.primaryKey().check(sql`id = 1`))
    .addColumn('tree_size', 'int8', (c) => c.notNull())
    .addColumn('root_hash', 'bytea', (c) => c.notNull())
    .addColumn('note', 'text', (c) => c.notNull())
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();

  // Leaves. leaf_hash is stored so level-0 tiles are a range read; the search columns are extracted
  // from the record when sequenced.
  await db.schema
    .createTable('entries')
    .addColumn('leaf_index', 'int8', (c) => c.primaryKey())
    .addColumn('entry', 'bytea', (c) => c.notNull())
    .addColumn('leaf_hash', 'bytea', (c) => c.notNull())
    .addColumn('emitter', 'text', (c) => c.notNull())
    .addColumn('stream', 'text', (c) => c.notNull())
    .addColumn('seq', 'int8', (c) => c.notNull())
    .addColumn('record_hash', 'text', (c) => c.notNull())
    .addColumn('received', 'timestamptz', (c) => c.notNull())
    .addColumn('kind', 'text')
    .addColumn('session', 'text')
    .addColumn('method', 'text')
    .addColumn('tool', 'text')
    .addColumn('record_time', 'timestamptz')
    .addUniqueConstraint('entries_stream_seq_key', ['stream', 'seq'])
    .execute();
  await db.schema
    .createIndex('entries_emitter_idx')
    .on('entries')
    .columns(['emitter', 'leaf_index'])
    .execute();
  await db.schema
    .createIndex('entries_session_idx')
    .on('entries')
    .columns(['session', 'leaf_index'])
    .execute();
  await db.schema.createIndex('entries_method_idx').on('entries').columns(['method', 'leaf_index']).execute();
  await db.schema.createIndex('entries_tool_idx').on('entries').columns(['tool', 'leaf_index']).execute();
  await db.schema.createIndex('entries_received_idx').on('entries').columns(['received']).execute();

  // Complete subtree hashes at tile levels 8, 16, ... (level 0 hashes are entries.leaf_hash); node
  // (level, node_index) covers leaves [node_index * 2^level, (node_index + 1) * 2^level).
  await db.schema
    .createTable('tree_nodes')
    .addColumn('level', 'int2', (c) => c.notNull())
    .addColumn('node_index', 'int8', (c) => c.notNull())
    .addColumn('hash', 'bytea', (c) => c.notNull())
    .addPrimaryKeyConstraint('tree_nodes_pkey', ['level', 'node_index'])
    .execute();

  // Every checkpoint the log signed.
  await db.schema
    .createTable('checkpoints')
    .addColumn('tree_size', 'int8', (c) => c.primaryKey())
    .addColumn('root_hash', 'bytea', (c) => c.notNull())
    .addColumn('note', 'text', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();

  // Witness cosignature lines, per checkpoint size.
  await db.schema
    .createTable('cosignatures')
    .addColumn('tree_size', 'int8', (c) => c.notNull())
    .addColumn('witness', 'text', (c) => c.notNull())
    .addColumn('line', 'text', (c) => c.notNull())
    .addColumn('timestamp', 'int8', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint('cosignatures_pkey', ['tree_size', 'witness'])
    .execute();

  await db.schema
    .createTable('blobs')
    .addColumn('sha256', 'text', (c) => c.primaryKey())
    .addColumn('size', 'int8', (c) => c.notNull())
    .addColumn('bytes', 'bytea', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();

  await db.schema
    .createTable('emitters')
    .addColumn('name', 'text', (c) => c.primaryKey())
    .addColumn('vkey', 'text', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('revoked_at', 'timestamptz')
    .execute();

  await db.schema
    .createTable('witnesses')
    .addColumn('name', 'text', (c) => c.primaryKey())
    .addColumn('vkey', 'text', (c) => c.notNull())
    .addColumn('url', 'text')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();

  await db.schema
    .createTable('settings')
    .addColumn('key', 'text', (c) => c.primaryKey())
    .addColumn('value', 'text', (c) => c.notNull())
    .execute();

  // Conflicting resubmissions and other evidence; append-only.
  await db.schema
    .createTable('incidents')
    .addColumn('id', 'bigserial', (c) => c.primaryKey())
    .addColumn('kind', 'text', (c) => c.notNull())
    .addColumn('emitter', 'text')
    .addColumn('stream', 'text')
    .addColumn('seq', 'int8')
    .addColumn('leaf_index', 'int8')
    .addColumn('detail', 'text', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();

  await sql`
    create function vigil_reject_change() returns trigger language plpgsql as $$
    begin
      raise exception 'table % is append-only: % rejected', tg_table_name, tg_op
        using errcode = 'insufficient_privilege';
    end
    $$`.execute(db);
  for (const table of [...APPEND_ONLY, 'tree_heads']) {
    const events = table === 'tree_heads' ? 'delete' : 'update or delete';
    await sql
      .raw(
        `create trigger ${table}_append_only before ${events} on ${table} ` +
          `for each row execute function vigil_reject_change()`,
      )
      .execute(db);
    await sql
      .raw(
        `create trigger ${table}_no_truncate before truncate on ${table} ` +
          `for each statement execute function vigil_reject_change()`,
      )
      .execute(db);
  }

  // The service role: INSERT and SELECT only on the append-only tables. Roles are cluster-wide, so
  // another database (or a concurrent migration) may have created it already.
  await sql`
    do $$
    begin
      if not exists (select from pg_roles where rolname = 'vigil_service') then
        create role vigil_service nologin;
      end if;
    exception when duplicate_object or unique_violation then null;
    end
    $$`.execute(db);
  await sql.raw(`grant select, insert on ${APPEND_ONLY.join(', ')} to vigil_service`).execute(db);
  await sql.raw(`grant select, insert, update on tree_heads to vigil_service`).execute(db);
  await sql
    .raw(`grant select, insert, update, delete on emitters, witnesses, settings to vigil_service`)
    .execute(db);
  await sql.raw(`grant select on logs to vigil_service`).execute(db);
  await sql.raw(`grant usage on sequence incidents_id_seq to vigil_service`).execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  for (const table of [
    'incidents',
    'settings',
    'witnesses',
    'emitters',
    'blobs',
    'cosignatures',
    'checkpoints',
    'tree_nodes',
    'entries',
    'tree_heads',
    'logs',
  ]) {
    await db.schema.dropTable(table).ifExists().execute();
  }
  await sql`drop function if exists vigil_reject_change()`.execute(db);
}
