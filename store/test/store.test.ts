import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { sql, type Kysely } from 'kysely';
import { forEachStore } from '../src/testing.js';
import { migrateToLatest, migrationsFolder, pendingMigrations } from '../src/migrate.js';
import { acquireDataDirLock, DataDirInUseError } from '../src/lock.js';
import { processState } from '../src/embedded.js';

const folder = migrationsFolder('log');

forEachStore(t, async (t, store) => {
  const { db } = await store.open<any>();
  const kdb = db as Kysely<any>;

  t.test('migrations', async (t) => {
    t.ok((await pendingMigrations(kdb, folder)).length > 0, 'pending before');
    await migrateToLatest(kdb, folder);
    t.same(await pendingMigrations(kdb, folder), [], 'none pending after');
    await migrateToLatest(kdb, folder); // idempotent
  });

  t.test('int8 is bigint, bytea is Uint8Array', async (t) => {
    const bytes = new Uint8Array([0, 1, 92, 120, 255]);
    await kdb.insertInto('blobs').values({ sha256: 'ab', size: 9007199254740993n, bytes }).execute();
    const row = await kdb
      .selectFrom('blobs')
      .selectAll()
      .where('sha256', '=', 'ab')
      .executeTakeFirstOrThrow();
    t.equal(row.size, 9007199254740993n);
    t.ok(row.bytes instanceof Uint8Array);
    t.same([...row.bytes], [...bytes]);
  });

  t.test('append-only triggers', async (t) => {
    await t.rejects(
      kdb.updateTable('blobs').set({ size: 1n }).where('sha256', '=', 'ab').execute(),
      /append-only/,
    );
    await t.rejects(kdb.deleteFrom('blobs').where('sha256', '=', 'ab').execute(), /append-only/);
    await t.rejects(sql`truncate blobs`.execute(kdb), /append-only/);
    await t.rejects(sql`truncate checkpoints`.execute(kdb), /append-only/);
    const count = await kdb
      .selectFrom('blobs')
      .select(sql<bigint>`count(*)`.as('n'))
      .executeTakeFirstOrThrow();
    t.equal(count.n, 1n);
  });

  t.test('concurrent writers: rolled-back rows are never seen', async (t) => {
    await sql`create table tx_rows (tx int not null, i int not null)`.execute(kdb);
    const writers = 40;
    const rowsPerTx = 5;
    const bad: string[] = [];
    const writes = Array.from({ length: writers }, (_, tx) =>
      kdb
        .transaction()
        .execute(async (trx) => {
          for (let i = 0; i < rowsPerTx; i++) {
            await trx.insertInto('tx_rows').values({ tx, i }).execute();
          }
          if (tx % 2 === 1) throw new Error('roll back');
        })
        .catch((err: Error) => {
          if (err.message !== 'roll back') throw err;
        }),
    );
    const reads = Array.from({ length: writers }, async () => {
      const rows = await kdb
        .selectFrom('tx_rows')
        .select(['tx', sql<number>`count(*)::int`.as('n')])
        .groupBy('tx')
        .execute();
      for (const r of rows) {
        if (r.tx % 2 === 1 || r.n !== rowsPerTx) bad.push(`tx ${r.tx} has ${r.n} rows`);
      }
    });
    await Promise.all([...writes, ...reads]);
    t.same(bad, [], 'readers saw only whole committed transactions');
    const final = await kdb.selectFrom('tx_rows').select(['tx']).distinct().orderBy('tx').execute();
    t.same(
      final.map((r) => r.tx),
      Array.from({ length: writers / 2 }, (_, i) => i * 2),
    );
  });
});

t.test('data-dir lock', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'vigil-lock-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const lock = acquireDataDirLock(dir);
  t.equal((await readFile(join(dir, 'LOCK'), 'utf8')).trim(), String(process.pid));
  t.throws(() => acquireDataDirLock(dir), { code: 'DATA_DIR_IN_USE' });
  // A live other process holds it.
  lock.release();
  await writeFile(join(dir, 'LOCK'), `${process.ppid}\n`);
  t.throws(() => acquireDataDirLock(dir), new DataDirInUseError(dir, process.ppid));
  // A dead holder (kill -9 leaves its lock behind) is taken over.
  const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']);
  await writeFile(join(dir, 'LOCK'), `${dead.stdout.toString()}\n`);
  const taken = acquireDataDirLock(dir);
  t.equal((await readFile(join(dir, 'LOCK'), 'utf8')).trim(), String(process.pid));
  taken.release();
  // A zombie holder (killed, never reaped) is dead too. `sh` starts a background sleep and then execs
  // into a sleep that never waits for it, so the killed background process stays a zombie.
  const parent = spawn('sh', ['-c', 'sleep 600 & echo $!; exec sleep 600'], {
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  t.teardown(() => parent.kill('SIGKILL'));
  const zpid = Number.parseInt(
    await new Promise<string>((resolve) => parent.stdout.once('data', (d: Buffer) => resolve(d.toString()))),
    10,
  );
  // Kill it only once sh has become the sleep that never reaps (sh itself would reap it).
  const comm = () => readFileSync(`/proc/${parent.pid}/comm`, 'utf8').trim();
  for (let i = 0; comm() !== 'sleep'; i++) {
    if (i > 500) throw new Error('sh did not exec');
    await new Promise((r) => setTimeout(r, 10));
  }
  process.kill(zpid, 'SIGKILL');
  for (let i = 0; processState(zpid) !== 'Z'; i++) {
    if (i > 500) throw new Error(`pid ${zpid} did not become a zombie (${processState(zpid)})`);
    await new Promise((r) => setTimeout(r, 10));
  }
  await writeFile(join(dir, 'LOCK'), `${zpid}\n`);
  const fromZombie = acquireDataDirLock(dir);
  t.equal(
    (await readFile(join(dir, 'LOCK'), 'utf8')).trim(),
    String(process.pid),
    'a zombie holder is taken over',
  );
  fromZombie.release();
});
