// End to end: a log on Postgres whose entry rows a superuser altered (triggers disabled): `vigil audit`
// exits 1 naming the entry, and an incremental run catches the change once it re-reads the bundle.
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import pg from 'pg';
import t from 'tap';
import { storeSkipReason } from '@vigil/server';
import { useNodeCrypto } from '@vigil/client/node';
import { auditHelpers, exits } from '../helpers/audit.js';
import { startLog } from '../helpers/log.js';

useNodeCrypto();

const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'vigil-e2e-audit-'));
t.teardown(() => fs.rm(tmp, { recursive: true, force: true }));

const { emitSome, audit } = auditHelpers(tmp);

const pgUrl = process.env.TEST_DATABASE_URL;
// Skipped only when this pass runs the embedded store alone, or outside CI without TEST_DATABASE_URL.
const pgSkip = storeSkipReason('postgres') ?? false;

t.test('Postgres rows altered by a superuser: exit 1 naming the entry', { skip: pgSkip }, async (t) => {
  if (pgUrl === undefined) throw new Error('TEST_DATABASE_URL must be set in CI');
  const log = await startLog({ postgresUrl: pgUrl });
  t.teardown(() => log.stop());
  // Entries 0 and 1 are the operator's registrations of itself and of the emitter; 2 is stream.open.
  await emitSome(log, 'e2e.example/pg', 8);
  const state = path.join(tmp, 'state-pg');
  const clean = await audit(log, '--state', state);
  exits(t, clean, 0, 'exit 0');
  const c = new pg.Client({ connectionString: log.databaseUrl });
  await c.connect();
  try {
    await c.query('ALTER TABLE entries DISABLE TRIGGER ALL');
    const res = await c.query(
      `UPDATE entries SET entry = convert_to(replace(convert_from(entry, 'UTF8'), '"n":3', '"n":4'), 'UTF8') WHERE leaf_index = 6`,
    );
    t.equal(res.rowCount, 1, 'row 6 altered');
    await c.query('ALTER TABLE entries ENABLE TRIGGER ALL');
  } finally {
    await c.end();
  }
  const r = await audit(log);
  exits(t, r, 1, 'exit 1');
  t.match(r.stdout, /\n6\s+LEAF_HASH_MISMATCH\s+entry 6 does not hash to the leaf hash/);
  t.match(r.stdout, /\n6\s+SIGNATURE_INVALID/);
  // The incremental run (state at size 12) re-reads the partial bundle once the log grows, and
  // compares the entries it audited before with what the log serves now.
  await emitSome(log, 'e2e.example/pg2', 2);
  const withState = await audit(log, '--state', state, '--json');
  exits(t, withState, 1, 'exit 1');
  t.same(
    (JSON.parse(withState.stdout) as { newProblems: { code: string; index?: string }[] }).newProblems.map(
      (p) => `${p.code}@${p.index}`,
    ),
    ['LEAF_HASH_MISMATCH@6'],
  );
});
