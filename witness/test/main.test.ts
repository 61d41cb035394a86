// The vigil-witness CLI as real processes: init, migrate, log add/list/disable (also while serve runs:
// on the embedded store through its PostgreSQL's socket), serve over HTTP, SIGTERM, restart, and the
// data-dir lock.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { forEachStore } from '@vigil/store';
import { parseVerifierKey, verifyCosignature } from '@vigil/client';
import { formatAddCheckpointRequest } from '../src/witness/request.js';
import { TestLog } from './helpers.js';
import { eventually } from './fake-log.js';

// Spawns several Node processes, each opening an embedded store: slow on a loaded 2-core machine.
t.setTimeout(480_000);

const MAIN = fileURLToPath(new URL('../src/main.js', import.meta.url));

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function envFor(dataDir: string, databaseUrl: string | undefined): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, VIGIL_DATA_DIR: dataDir, LOG_LEVEL: 'info' };
  if (databaseUrl !== undefined) env.DATABASE_URL = databaseUrl;
  return env;
}

function run(args: string[], env: NodeJS.ProcessEnv): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [MAIN, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

interface Served {
  child: ChildProcess;
  url: string;
  output: () => string;
  exit: Promise<number | null>;
}

async function serve(env: NodeJS.ProcessEnv): Promise<Served> {
  const child = spawn(process.execPath, [MAIN, 'serve', '--port', '0'], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  const exit = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  let exited = false;
  void exit.then(() => (exited = true));
  const url = await eventually(
    'witness listening',
    () => {
      if (exited) throw new Error(`serve exited: ${output}`);
      const m = /"msg":"witness ready"/.test(output)
        ? /Server listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(output)
        : null;
      return m?.[1];
    },
    30_000,
  );
  return { child, url, output: () => output, exit };
}

function addCheckpoint(url: string, body: string) {
  return fetch(`${url}/add-checkpoint`, {
    method: 'POST',
    headers: { 'content-type': 'text/plain; charset=utf-8' },
    body,
  });
}

forEachStore(t, async (t, testStore) => {
  const dataDir = path.join(testStore.dataDir, 'witness');
  const env = envFor(dataDir, testStore.databaseUrl);
  const log = new TestLog('example.com/cli-log');
  const second = new TestLog('example.com/second-log', 2);

  const init = await run(['init', '--name', 'witness.example/w1'], env);
  t.equal(init.code, 0, init.stderr);
  const vkey = init.stdout.trim();
  t.equal(parseVerifierKey(vkey).type, 4, 'init prints the cosigner vkey (type 0x04)');
  t.equal(parseVerifierKey(vkey).name, 'witness.example/w1');
  t.notMatch(init.stdout + init.stderr, /PRIVATE/, 'the key is never printed');
  const stat = await fs.stat(path.join(dataDir, 'witness.key'));
  t.equal(stat.mode & 0o777, 0o600, 'key file is 0600');
  const again = await run(['init', '--name', 'witness.example/w1'], env);
  t.equal(again.code, 1, 'init never overwrites an identity');
  t.match(again.stderr, /already has a witness identity/);
  t.equal((await run(['vkey'], env)).stdout.trim(), vkey);
  // The key-mode rule shared with vigil-server: readable by others is fixed loudly, writable refuses.
  const keyPath = path.join(dataDir, 'witness.key');
  await fs.chmod(keyPath, 0o644);
  const fixed = await run(['vkey'], env);
  t.equal(fixed.code, 0, fixed.stderr);
  t.match(
    fixed.stderr,
    `WARNING: witness key ${keyPath} had mode 644: others could read it. Its mode is now 600.`,
  );
  t.equal((await fs.stat(keyPath)).mode & 0o777, 0o600, 'made 0600');
  await fs.chmod(keyPath, 0o666);
  const writable = await run(['vkey'], env);
  t.equal(writable.code, 1);
  t.match(writable.stderr, `witness key ${keyPath} has mode 666: others can write it`);
  t.equal(writable.stdout, '', 'no vkey from a key others can write');
  await fs.chmod(keyPath, 0o600);

  if (testStore.databaseUrl !== undefined) {
    const refused = await run(['serve', '--port', '0'], env);
    t.equal(refused.code, 1, 'serve refuses with pending migrations');
    t.match(refused.stderr, /pending migrations/);
    t.equal((await run(['migrate'], env)).code, 0);
  }

  const added = await run(['log', 'add', log.origin, log.vkey], env);
  t.equal(added.code, 0, added.stderr);
  const dup = await run(['log', 'add', log.origin, log.vkey], env);
  t.equal(dup.code, 1);
  t.match(dup.stderr, /LOG_EXISTS/);
  const badKey = await run(['log', 'add', 'example.com/x', 'not-a-vkey'], env);
  t.equal(badKey.code, 1);

  const served = await serve(env);
  t.teardown(() => {
    if (served.child.exitCode === null) served.child.kill('SIGKILL');
  });

  log.append(3);
  let res = await addCheckpoint(
    served.url,
    formatAddCheckpointRequest({ oldSize: 0n, proof: [], note: log.checkpoint() }),
  );
  t.equal(res.status, 200);
  t.ok(verifyCosignature(log.checkpoint() + (await res.text()), vkey) > 0n);

  // Admin commands while serve runs (embedded: through the PostgreSQL socket in the data directory,
  // which only the service's user may enter; Postgres: directly).
  if (testStore.databaseUrl === undefined) {
    const pgDir = await fs.stat(path.join(dataDir, 'pg'));
    t.equal(pgDir.mode & 0o777, 0o700, 'the embedded cluster and its socket directory are 0700');
    const sock = await fs.stat(path.join(dataDir, 'pg', '.s.PGSQL.5432'));
    t.ok(sock.isSocket(), 'the embedded PostgreSQL listens on a Unix socket in the data directory');
  }
  const add2 = await run(
    ['log', 'add', second.origin, second.vkey, '--url', 'http://127.0.0.1:9/', '--pull-interval', '2s'],
    env,
  );
  t.equal(add2.code, 0, add2.stderr);
  const list = await run(['log', 'list', '--json'], env);
  t.equal(list.code, 0, list.stderr);
  const logs = JSON.parse(list.stdout) as {
    origin: string;
    size: string;
    url: string | null;
    pullIntervalMs: number;
  }[];
  t.same(
    logs.map((l) => [l.origin, l.size, l.url, l.pullIntervalMs]),
    [
      [log.origin, '3', null, 5000],
      [second.origin, '0', 'http://127.0.0.1:9/', 2000],
    ],
  );
  second.append(1);
  res = await addCheckpoint(
    served.url,
    formatAddCheckpointRequest({ oldSize: 0n, proof: [], note: second.checkpoint() }),
  );
  t.equal(res.status, 200, 'a log added while serving is used at once');
  const disabled = await run(['log', 'disable', second.origin], env);
  t.equal(disabled.code, 0, disabled.stderr);
  second.append(1);
  res = await addCheckpoint(
    served.url,
    formatAddCheckpointRequest({ oldSize: 1n, proof: second.proof(1), note: second.checkpoint() }),
  );
  t.equal(res.status, 404, 'a disabled log is refused');

  if (testStore.databaseUrl === undefined) {
    const locked = await run(['serve', '--port', '0'], env);
    t.equal(locked.code, 1, 'a second process on the same data dir refuses to start');
    t.match(locked.stderr, /in use by pid/);
  }

  served.child.kill('SIGTERM');
  t.equal(await served.exit, 0, 'SIGTERM exits 0');

  const restarted = await serve(env);
  t.teardown(() => {
    if (restarted.child.exitCode === null) restarted.child.kill('SIGKILL');
  });
  log.append(2);
  res = await addCheckpoint(
    restarted.url,
    formatAddCheckpointRequest({ oldSize: 0n, proof: [], note: log.checkpoint() }),
  );
  t.equal(res.status, 409, 'state survived the restart');
  t.equal(await res.text(), '3\n');
  res = await addCheckpoint(
    restarted.url,
    formatAddCheckpointRequest({ oldSize: 3n, proof: log.proof(3), note: log.checkpoint() }),
  );
  t.equal(res.status, 200);
  restarted.child.kill('SIGTERM');
  t.equal(await restarted.exit, 0);
});
