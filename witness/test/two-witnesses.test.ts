// Two witness processes (embedded stores, separate data dirs) pull one log over HTTP: the log's
// /checkpoint/witnessed shows both cosignatures within seconds of new entries, and when the log is
// rewritten behind their backs both refuse and serve verifiable evidence. The log is test/fake-log.ts
// (checkpoint + tiles built with client-lib) running in this test process.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { openNote, parseCheckpoint, verifyCosignature } from '@vigil/client';
import { TestLog } from './helpers.js';
import { eventually, FakeLogServer } from './fake-log.js';

// Spawns several Node processes, each opening an embedded store: slow on a loaded 2-core machine.
t.setTimeout(480_000);

const MAIN = fileURLToPath(new URL('../src/main.js', import.meta.url));

function cli(
  args: string[],
  env: NodeJS.ProcessEnv,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
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

interface WitnessProcess {
  vkey: string;
  url: string;
  child: ChildProcess;
  exit: Promise<number | null>;
}

async function startWitness(
  dir: string,
  name: string,
  log: TestLog,
  logUrl: string,
): Promise<WitnessProcess> {
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, VIGIL_DATA_DIR: dir, LOG_LEVEL: 'info' };
  const init = await cli(['init', '--name', name], env);
  if (init.code !== 0) throw new Error(init.stderr);
  const added = await cli(
    ['log', 'add', log.origin, log.vkey, '--url', logUrl, '--pull-interval', '200ms'],
    env,
  );
  if (added.code !== 0) throw new Error(added.stderr);
  const child = spawn(process.execPath, [MAIN, 'serve', '--port', '0'], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  const exit = new Promise<number | null>((resolve) => child.on('close', resolve));
  const url = await eventually(
    'listening',
    () => /Server listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(output)?.[1],
    30_000,
  );
  return { vkey: init.stdout.trim(), url, child, exit };
}

t.test('two witness processes cosign one log and both catch a rewrite', async (t) => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'vigil-two-witnesses-'));
  t.teardown(() => fs.rm(dir, { recursive: true, force: true }));
  const honest = new TestLog('example.com/two');
  honest.append(7);
  const server = new FakeLogServer(honest, []);
  await server.listen();
  t.teardown(() => server.close());

  const witnesses = await Promise.all([
    startWitness(path.join(dir, 'a'), 'witness-a.example/w1', honest, server.url),
    startWitness(path.join(dir, 'b'), 'witness-b.example/w1', honest, server.url),
  ]);
  t.teardown(() => {
    for (const w of witnesses) if (w.child.exitCode === null) w.child.kill('SIGKILL');
  });
  server.witnessVkeys = witnesses.map((w) => w.vkey);

  const witnessedAt = async (size: number) =>
    eventually(
      `both cosignatures at size ${size}`,
      async () => {
        const res = await fetch(`${server.url}/checkpoint/witnessed`);
        if (!res.ok) return undefined;
        const note = await res.text();
        return parseCheckpoint(openNote(note, [honest.vkey]).text).size === BigInt(size) ? note : undefined;
      },
      60_000,
    );

  let note = await witnessedAt(7);
  for (const w of witnesses) t.ok(verifyCosignature(note, w.vkey) > 0n, 'cosigned by each witness');

  const started = Date.now();
  honest.append(500);
  note = await witnessedAt(507);
  // Pull interval 200 ms: normally well under a second; the bound is loose for a loaded CI machine.
  t.ok(Date.now() - started < 30_000, `both cosignatures ${Date.now() - started} ms after new entries`);

  const rewritten = new TestLog(honest.origin);
  rewritten.leaves = [...honest.leaves];
  rewritten.leaves[0] = new Uint8Array(32).fill(0xab);
  rewritten.append(10);
  server.log = rewritten;
  for (const w of witnesses) {
    const evidence = await eventually(
      'evidence',
      async () => {
        const res = await fetch(`${w.url}/v1/evidence`);
        const items = (await res.json()) as {
          evidence: { kind: string; conclusive: boolean; oldSize: string }[];
        };
        return items.evidence.find((e) => e.kind === 'inconsistent');
      },
      60_000,
    );
    t.equal(evidence.conclusive, true);
    t.equal(evidence.oldSize, '507');
  }
  const res = await fetch(`${server.url}/checkpoint/witnessed`);
  t.equal(res.status, 404, 'nobody cosigned the rewritten log');

  for (const w of witnesses) w.child.kill('SIGTERM');
  for (const w of witnesses) t.equal(await w.exit, 0);
});
