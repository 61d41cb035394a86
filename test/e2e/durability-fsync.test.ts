// Durability of an acknowledgement: the real log process (embedded store) runs under
// `strace -f -e trace=fsync,fdatasync`, and every acknowledged batch must have at least one flush of a
// WAL file (pg_wal/) between the moment it was sent and the moment its 200 arrived. An engine that
// never flushes (PGlite, the previous embedded store, made none at all) answers from the page cache,
// and a power loss drops what it acknowledged. Needs strace: skipped with a message when it is missing,
// except in CI (CI=true), where a missing strace is a failure.
import { spawn, spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import t from 'tap';
import { generateKey } from '@vigil/client';
import { useNodeCrypto } from '@vigil/client/node';
import { runNode, serverMain, until } from '../helpers/log.js';
import { RecordStream, type PostAnswer } from '../helpers/reliability-log.js';

useNodeCrypto();

const EMITTER = 'fsync.test/emitter';
const BATCHES = 12;

/** Wall-clock seconds with sub-millisecond precision, comparable with `strace -ttt`. */
function now(): number {
  return (performance.timeOrigin + performance.now()) / 1000;
}

/** Start times (strace -ttt seconds) of fsync/fdatasync calls on files under pg_wal/. */
function walFlushTimes(trace: string): number[] {
  const times: number[] = [];
  for (const line of trace.split('\n')) {
    // e.g. `1234  1796545978.123456 fdatasync(5</tmp/x/pg/pg_wal/000000010000000000000001>) = 0`
    // (or `... <unfinished ...>` when another traced process interleaves).
    const m = /^\d+\s+(\d+\.\d+)\s+f(?:data)?sync\(\d+<([^>]*)>/.exec(line);
    if (m !== null && m[2]!.includes('/pg_wal/')) times.push(Number(m[1]));
  }
  return times;
}

const hasStrace = spawnSync('strace', ['-V'], { stdio: 'ignore' }).status === 0;
const skip = hasStrace
  ? undefined
  : process.env.CI
    ? undefined
    : 'strace is not installed (apt-get install strace); in CI this is a failure';

t.test('every acknowledged batch follows a WAL flush', skip ? { skip } : {}, async (t) => {
  t.ok(hasStrace, 'strace is installed (CI installs it)');
  if (!hasStrace) return;
  t.setTimeout(300_000);
  const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'vigil-fsync-'));
  t.teardown(() => fs.rm(dataDir, { recursive: true, force: true }));
  const traceFile = path.join(dataDir, '..', `${path.basename(dataDir)}.strace`);
  t.teardown(() => fs.rm(traceFile, { force: true }));
  const key = generateKey(EMITTER);

  const child = spawn(
    'strace',
    [
      '-f',
      '-qq',
      '-ttt',
      '-y',
      '-e',
      'trace=fsync,fdatasync',
      '-o',
      traceFile,
      process.execPath,
      serverMain,
      'start',
      '--data-dir',
      dataDir,
      '--host',
      '127.0.0.1',
      '--port',
      '0',
      '--origin',
      'fsync.test/log',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, DATABASE_URL: '', LOG_LEVEL: 'warn' } },
  );
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (out += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  let url = '';
  await until(`log listening under strace (output: ${out.slice(0, 500)})`, () => {
    if (child.exitCode !== null) throw new Error(`log exited during start-up:\n${out}`);
    const m = /listening on (http:\/\/127\.0\.0\.1:[0-9]+)/.exec(out);
    if (m === null) return false;
    url = `${m[1]}/`;
    return true;
  });
  // The log itself, strace's child: signals to strace would only make it detach.
  const ps = spawnSync('ps', ['-o', 'pid=', '--ppid', String(child.pid)], { encoding: 'utf8' });
  const logPid = Number.parseInt(ps.stdout, 10);
  t.teardown(() => {
    try {
      process.kill(logPid, 'SIGKILL');
    } catch {
      // exited already
    }
  });
  const add = await runNode(serverMain, ['emitter', 'add', EMITTER, key.verifierKey, '--data-dir', dataDir]);
  t.equal(add.code, 0, `emitter added: ${add.stderr}`);

  const stream = new RecordStream(EMITTER, key.signerKey, randomUUID());
  const batches: { sent: number; acked: number; size: number }[] = [];
  for (let i = 0; i < BATCHES; i++) {
    const entries = stream.next(1 + (i % 4));
    const sent = now();
    const res = await fetch(`${url}v1/entries`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ entries }),
    });
    const body = await res.text();
    const acked = now();
    t.equal(res.status, 200, `batch ${i} acknowledged`, { body: body.slice(0, 500) });
    t.match(
      (JSON.parse(body) as PostAnswer).checkpoint,
      /^fsync\.test\/log\n/,
      `batch ${i} has its checkpoint`,
    );
    batches.push({ sent, acked, size: entries.length });
  }
  // SIGTERM to the log: it stops its PostgreSQL, and strace ends with its last tracee.
  process.kill(logPid, 'SIGTERM');
  t.equal(await exited, 0, 'the log (and strace) exit cleanly');

  const flushes = walFlushTimes(await fs.readFile(traceFile, 'utf8'));
  t.ok(flushes.length > 0, `strace saw ${flushes.length} WAL flushes in all`);
  batches.forEach((b, i) => {
    const between = flushes.filter((f) => f >= b.sent && f <= b.acked).length;
    t.ok(
      between >= 1,
      `batch ${i} (${b.size} records): ${between} WAL flushes between its submission and its acknowledgement`,
    );
  });
});
