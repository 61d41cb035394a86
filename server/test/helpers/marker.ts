// Scans every column of every table of a database for a planted marker: the plain text, its hex (how
// bytea reads as text) and its base64 at each of the three alignments; and the planner's statistics,
// which keep sample values of columns. Tests of erasure use it to show that no byte of an erased value
// is left anywhere a query can reach.
import { sql, type Kysely } from 'kysely';

/** The forms the marker can take in a column read as text. */
export function markerForms(marker: string): string[] {
  const bytes = Buffer.from(marker, 'utf8');
  const forms = [marker, bytes.toString('hex')];
  // base64 of the marker preceded by 0, 1 or 2 other bytes: the characters that depend on the marker
  // alone (drop the ones mixed with neighbouring bytes at both ends).
  for (let pad = 0; pad < 3; pad++) {
    const b64 = Buffer.concat([Buffer.alloc(pad, 0x20), bytes]).toString('base64');
    forms.push(b64.slice(Math.ceil((pad * 4) / 3) + 1, -4));
  }
  return forms;
}

/** `schema.table.column` of every column holding the marker in any form (empty: none). */
export async function markerHits(db: Kysely<any>, marker: string): Promise<string[]> {
  const columns = await sql<{ table_schema: string; table_name: string; column_name: string }>`
    select c.table_schema, c.table_name, c.column_name
    from information_schema.columns c
    join information_schema.tables t using (table_schema, table_name)
    where t.table_type = 'BASE TABLE' and c.table_schema not in ('pg_catalog', 'information_schema')
    order by 1, 2, 3`.execute(db);
  if (columns.rows.length === 0) throw new Error('the scan found no columns');
  const forms = markerForms(marker);
  const hits: string[] = [];
  for (const c of columns.rows) {
    const column = sql`${sql.id(c.table_schema, c.table_name, c.column_name)}::text`;
    const r = await sql<{ n: string }>`
      select count(*) as n from ${sql.id(c.table_schema, c.table_name)}
      where ${sql.join(
        forms.map((f) => sql`strpos(lower(${column}), lower(${f})) > 0`),
        sql` or `,
      )}`.execute(db);
    if (BigInt(r.rows[0]!.n) > 0n) hits.push(`${c.table_schema}.${c.table_name}.${c.column_name}`);
  }
  // The planner's sample values (not in information_schema; readable by a superuser, as tests are).
  for (let slot = 1; slot <= 5; slot++) {
    const values = sql`${sql.ref(`stavalues${slot}`)}::text`;
    const r = await sql<{ n: string }>`
      select count(*) as n from pg_catalog.pg_statistic
      where ${sql.join(
        forms.map((f) => sql`strpos(lower(${values}), lower(${f})) > 0`),
        sql` or `,
      )}`.execute(db);
    if (BigInt(r.rows[0]!.n) > 0n) hits.push(`pg_catalog.pg_statistic.stavalues${slot}`);
  }
  return hits;
}
