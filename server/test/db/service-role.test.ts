// Against an external PostgreSQL (DATABASE_URL; the machine's PostgreSQL in CI): the migration's
// service role may insert and read the append-only tables but never change or remove a row, and a
// database URL that cannot be reached stops `serve` with a clear error that does not print the URL's
// password.
import t from 'tap';
import pg from 'pg';
import { migrateToLatest, migrationsFolder } from '../../src/db/migrate.js';
import { createTestStore, postgresSkipReason } from '../../src/db/testing.js';
import { SERVER_MAIN, spawnNode } from '../helpers/process.js';

const skip = postgresSkipReason();

t.test('the service role: INSERT and SELECT only on append-only tables', skip ? { skip } : {}, async (t) => {
  const store = await createTestStore('postgres');
  t.teardown(() => store.cleanup());
  const opened = await store.open<any>();
  await migrateToLatest(opened.db, migrationsFolder('log'));
  await opened.close();
  const client = new pg.Client({ connectionString: store.databaseUrl });
  await client.connect();
  t.teardown(() => client.end());
  await client.query('set role vigil_service');
  await client.query(`insert into settings (key, value) values ('probe', '1')`);
  t.same((await client.query(`select value from settings where key = 'probe'`)).rows, [{ value: '1' }]);
  for (const statement of [
    `update checkpoints set note = 'x'`,
    'delete from entries',
    'truncate cosignatures',
    `insert into logs (origin) values ('x')`,
  ]) {
    await t.rejects(client.query(statement), { code: '42501' }, `${statement}: permission denied`);
  }
});

t.test(
  'a database URL that cannot be reached: serve exits 1, the password stays out of the output',
  async (t) => {
    const secret = 'pw-marker-3f9c1e';
    const child = spawnNode(SERVER_MAIN, ['serve', '--port', '0'], {
      DATABASE_URL: `postgres://vigil:${secret}@127.0.0.1:1/vigil`,
      VIGIL_DATA_DIR: '/nonexistent-vigil-data',
    });
    const { code } = await child.exited;
    t.equal(code, 1, 'exit 1');
    t.match(child.output(), /ECONNREFUSED|connect/, child.output());
    t.notMatch(child.output(), secret, 'the password is never printed');
  },
);
