import { sql, type Kysely } from 'kysely';

/**
 * The witness store (witness/src/db/store.ts).
 * - logs: the logs this witness trusts; disabled, never deleted.
 * - latest_checkpoints: one row per log, the newest checkpoint cosigned; moved only by compare-and-swap
 *   on tree_size (UPDATE ... WHERE tree_size = old), never backwards (trigger), never deleted.
 * - cosigned_checkpoints: every checkpoint ever cosigned, append-only.
 * - evidence: validly signed checkpoints that do not extend the witnessed one, append-only.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('logs')
    .addColumn('origin', 'text', (c) => c.primaryKey())
    .addColumn('vkey', 'text', (c) => c.notNull())
    .addColumn('url', 'text')
    .addColumn('pull_interval_ms', 'integer', (c) => c.notNull().defaultTo(5000))
    .addColumn('disabled_at', 'timestamptz')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();

  await db.schema
    .createTable('latest_checkpoints')
    .addColumn('origin', 'text', (c) => c.primaryKey().references('logs.origin'))
    .addColumn('tree_size', 'int8', (c) => c.notNull().check(sql`tree_size >= 0`))
    .addColumn('root_hash', 'bytea')
    .addColumn('note', 'text')
    .addColumn('cosigned_at', 'timestamptz')
    .execute();

  await db.schema
    .createTable('cosigned_checkpoints')
    .addColumn('id', 'bigserial', (c) => c.primaryKey())
    .addColumn('origin', 'text', (c) => c.notNull().references('logs.origin'))
    .addColumn('tree_size', 'int8', (c) => c.notNull())
    .addColumn('root_hash', 'bytea', (c) => c.notNull())
    .addColumn('note', 'text', (c) => c.notNull())
    .addColumn('cosigned_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
  await db.schema
    .createIndex('cosigned_checkpoints_origin_size')
    .on('cosigned_checkpoints')
    .columns(['origin', 'tree_size'])
    .execute();

  await db.schema
    .createTable('evidence')
    .addColumn('id', 'bigserial', (c) => c.primaryKey())
    .addColumn('origin', 'text', (c) => c.notNull())
    .addColumn('kind', 'text', (c) => c.notNull())
    .addColumn('source', 'text', (c) => c.notNull())
    .addColumn('old_size', 'int8', (c) => c.notNull())
    .addColumn('new_size', 'int8', (c) => c.notNull())
    .addColumn('old_note', 'text', (c) => c.notNull())
    .addColumn('new_note', 'text', (c) => c.notNull())
    .addColumn('proof', 'text', (c) => c.notNull())
    .addColumn('prefix_root', 'bytea')
    .addColumn('detected_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
  await db.schema.createIndex('evidence_origin').on('evidence').columns(['origin', 'id']).execute();

  // Append-only is enforced by the database too (DESIGN.md "Storage").
  await sql`
    CREATE FUNCTION vigil_witness_reject_change() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      RAISE EXCEPTION 'table % is append-only', TG_TABLE_NAME;
    END $$`.execute(db);
  await sql`
    CREATE FUNCTION vigil_witness_no_rollback() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF NEW.tree_size < OLD.tree_size OR NEW.origin <> OLD.origin THEN
        RAISE EXCEPTION 'witnessed size of % may not move from % to %', OLD.origin, OLD.tree_size, NEW.tree_size;
      END IF;
      RETURN NEW;
    END $$`.execute(db);
  for (const table of ['evidence', 'cosigned_checkpoints']) {
    await sql`CREATE TRIGGER ${sql.raw(`${table}_append_only`)} BEFORE UPDATE OR DELETE ON ${sql.table(table)}
      FOR EACH ROW EXECUTE FUNCTION vigil_witness_reject_change()`.execute(db);
  }
  for (const table of ['evidence', 'cosigned_checkpoints', 'latest_checkpoints', 'logs']) {
    await sql`CREATE TRIGGER ${sql.raw(`${table}_no_truncate`)} BEFORE TRUNCATE ON ${sql.table(table)}
      FOR EACH STATEMENT EXECUTE FUNCTION vigil_witness_reject_change()`.execute(db);
  }
  for (const table of ['latest_checkpoints', 'logs']) {
    await sql`CREATE TRIGGER ${sql.raw(`${table}_no_delete`)} BEFORE DELETE ON ${sql.table(table)}
      FOR EACH ROW EXECUTE FUNCTION vigil_witness_reject_change()`.execute(db);
  }
  await sql`CREATE TRIGGER latest_checkpoints_forward_only BEFORE UPDATE ON latest_checkpoints
    FOR EACH ROW EXECUTE FUNCTION vigil_witness_no_rollback()`.execute(db);
}

/** Local use only (STYLE.md section 8). */
export async function down(db: Kysely<any>): Promise<void> {
  for (const table of ['evidence', 'cosigned_checkpoints', 'latest_checkpoints', 'logs']) {
    await db.schema.dropTable(table).ifExists().execute();
  }
  await sql`DROP FUNCTION IF EXISTS vigil_witness_reject_change()`.execute(db);
  await sql`DROP FUNCTION IF EXISTS vigil_witness_no_rollback()`.execute(db);
}
