// The service role (vigil_service, created by the first migration) connects through a login role that
// is a member of it (docs/OPERATIONS.md). `serve` refuses to start with pending migrations, so that
// role must read kysely's bookkeeping tables; it still cannot change them.
import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  await sql`grant select on kysely_migration, kysely_migration_lock to vigil_service`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`revoke select on kysely_migration, kysely_migration_lock from vigil_service`.execute(db);
}
