// Pull mode against the real log server process (server/dist/src/main.js, embedded store): the witness
// cosigns as entries arrive and the log's GET /checkpoint/witnessed shows the cosignature; then the
// log is rebuilt with the same key and different entries on the same URL, and the witness refuses
// and records conclusive evidence.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import {
  bytesEqual,
  base64Decode,
  generateKey,
  openNote,
  parseCheckpoint,
  recordHash,
  signRecord,
  verifyConsistency,
  verifyCosignature,
} from '@vigil/client';
import { useNodeCrypto } from '@vigil/client/node';
import { eventually } from './fake-log.js';

useNodeCrypto();

// Spawns several Node processes, each opening an embedded store: slow on a loaded 2-core machine.
t.setTimeout(480_000);

const WITNESS_MAIN = fileURLToPath(new URL('../src/main.js', import.meta.url));
const SERVER_MAIN = fileURLToPath(new URL('../../../server/dist/src/main.js', import.meta.url));
const ORIGIN = 'example.com/real-log';

function run(
  main: string,
  args: string[],
  env: NodeJS.ProcessEnv,
): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [main, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, out }));
  });
}

async function ok(main: string, args: string[], env: NodeJS.ProcessEnv): Promise<string> {
  const r = await run(main, args, env);
  if (r.code !== 0)
    throw new Error(`${path.basename(path.dirname(path.dirname(main)))} ${args.join(' ')}: ${r.out}`);
  return r.out;
}

interface Proc {
  child: ChildProcess;
  output: () => string;
  exit: Promise<number | null>;
}

function start(main: string, args: string[], env: NodeJS.ProcessEnv): Proc {
  const child = spawn(process.execPath, [main, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  const exit = new Promise<number | null>((resolve) => child.on('close', resolve));
  return { child, output: () => output, exit };
}

async function startLog(
  dataDir: string,
  port: number,
  keyFile?: string,
): Promise<{ proc: Proc; url: string; vkey: string }> {
  const env = { PATH: process.env.PATH, LOG_LEVEL: 'warn' };
  const args = [
    'start',
    '--data-dir',
    dataDir,
    '--port',
    String(port),
    '--origin',
    ORIGIN,
    '--witness-interval',
    '200',
  ];
  if (keyFile !== undefined) args.push('--key-file', keyFile);
  const proc = start(SERVER_MAIN, args, env);
  const url = await eventually('log listening', () => {
    if (proc.child.exitCode !== null) throw new Error(`log exited: ${proc.output()}`);
    return /vigil log listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(proc.output())?.[1];
  });
  const vkey = await eventually('log vkey', () => /vkey:\s+(\S+)/.exec(proc.output())?.[1]);
  return { proc, url, vkey };
}

/** Registers an emitter and submits `n` signed records of one new stream. */
async function submit(logDir: string, url: string, n: number): Promise<void> {
  const key = generateKey(`emitter-${randomUUID().slice(0, 8)}`);
  await ok(
    SERVER_MAIN,
    ['emitter', 'add', key.verifierKey.split('+')[0]!, key.verifierKey, '--data-dir', logDir],
    {
      PATH: process.env.PATH,
    },
  );
  const stream = randomUUID();
  let prev: string | undefined;
  const entries = [];
  for (let seq = 0; seq < n; seq++) {
    const record: Record<string, unknown> = {
      v: 1,
      stream,
      seq,
      time: new Date().toISOString(),
      kind: 'test.event',
      n: seq,
    };
    if (prev !== undefined) record.prev = prev;
    entries.push({ emitter: key.verifierKey.split('+')[0]!, record, sig: signRecord(record, key.signerKey) });
    prev = recordHash(record);
  }
  const res = await fetch(`${url}/v1/entries`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ entries }),
  });
  if (!res.ok) throw new Error(`submit: ${res.status} ${await res.text()}`);
}

t.test(
  'pull mode against the real log server',
  { skip: existsSync(SERVER_MAIN) ? false : 'server not built' },
  async (t) => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'vigil-real-log-'));
    t.teardown(() => fs.rm(dir, { recursive: true, force: true }));
    const logDir = path.join(dir, 'log');
    const witnessDir = path.join(dir, 'witness');
    const procs: Proc[] = [];
    t.teardown(() => {
      for (const p of procs) if (p.child.exitCode === null) p.child.kill('SIGKILL');
    });

    const log = await startLog(logDir, 0);
    procs.push(log.proc);
    const port = Number(new URL(log.url).port);

    // Witness A pulls; witness B is push-only (the log sends it add-checkpoint).
    const wenv = { PATH: process.env.PATH, VIGIL_DATA_DIR: witnessDir, LOG_LEVEL: 'info' };
    const benv = { PATH: process.env.PATH, VIGIL_DATA_DIR: path.join(dir, 'witness-b'), LOG_LEVEL: 'info' };
    const witnessVkey = (await ok(WITNESS_MAIN, ['init', '--name', 'witness.example/real'], wenv))
      .trim()
      .split('\n')
      .pop()!;
    const pushVkey = (await ok(WITNESS_MAIN, ['init', '--name', 'witness.example/push'], benv))
      .trim()
      .split('\n')
      .pop()!;
    await ok(
      WITNESS_MAIN,
      ['log', 'add', ORIGIN, log.vkey, '--url', log.url, '--pull-interval', '200ms'],
      wenv,
    );
    await ok(WITNESS_MAIN, ['log', 'add', ORIGIN, log.vkey], benv);
    const witness = start(WITNESS_MAIN, ['serve', '--port', '0'], wenv);
    const pushWitness = start(WITNESS_MAIN, ['serve', '--port', '0'], benv);
    procs.push(witness, pushWitness);
    const listening = (p: Proc) => () =>
      /Server listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(p.output())?.[1];
    const witnessUrl = await eventually('witness listening', listening(witness));
    const pushUrl = await eventually('push witness listening', listening(pushWitness));
    const configureLog = async (dataDir: string) => {
      for (const args of [
        ['witness', 'add', 'witness.example/real', witnessVkey],
        ['witness', 'add', 'witness.example/push', pushVkey, '--url', pushUrl],
        ['quorum', '2'],
      ]) {
        await ok(SERVER_MAIN, [...args, '--data-dir', dataDir], { PATH: process.env.PATH });
      }
    };
    await configureLog(logDir);

    await submit(logDir, log.url, 5);
    const witnessedNote = async (size: bigint) =>
      eventually(`witnessed checkpoint of size ${size}`, async () => {
        const res = await fetch(`${log.url}/checkpoint/witnessed`);
        if (!res.ok) return undefined;
        const note = await res.text();
        return parseCheckpoint(openNote(note, [log.vkey]).text).size >= size ? note : undefined;
      });
    let note = await witnessedNote(5n);
    t.ok(verifyCosignature(note, witnessVkey) > 0n, 'the log shows the pull witness cosignature');
    t.ok(verifyCosignature(note, pushVkey) > 0n, 'and the push witness cosignature');
    await submit(logDir, log.url, 300);
    note = await witnessedNote(305n);
    t.ok(verifyCosignature(note, witnessVkey) > 0n, 'both again after 300 more entries');
    t.ok(verifyCosignature(note, pushVkey) > 0n);
    const witnessedSize = parseCheckpoint(openNote(note, [log.vkey]).text).size;

    // Rebuild the log from scratch with the same key on the same URL, with different entries.
    log.proc.child.kill('SIGTERM');
    t.equal(await log.proc.exit, 0);
    const rebuilt = await startLog(path.join(dir, 'log2'), port, path.join(logDir, 'log.key'));
    procs.push(rebuilt.proc);
    t.equal(rebuilt.vkey, log.vkey, 'same key');
    await configureLog(path.join(dir, 'log2'));
    await submit(path.join(dir, 'log2'), rebuilt.url, Number(witnessedSize) + 10);

    const evidence = await eventually('evidence', async () => {
      const res = await fetch(`${witnessUrl}/v1/evidence`);
      const body = (await res.json()) as {
        evidence: {
          kind: string;
          oldNote: string;
          newNote: string;
          proof: string[];
          prefixRoot: string | null;
          conclusive: boolean;
        }[];
      };
      return body.evidence.find((e) => e.kind === 'inconsistent' || e.kind === 'fork');
    });
    t.equal(evidence.conclusive, true);
    const oldCp = parseCheckpoint(openNote(evidence.oldNote, [log.vkey]).text);
    const newCp = parseCheckpoint(openNote(evidence.newNote, [log.vkey]).text);
    if (evidence.kind === 'inconsistent') {
      const prefixRoot = base64Decode(evidence.prefixRoot!);
      verifyConsistency(
        oldCp.size,
        newCp.size,
        prefixRoot,
        newCp.root,
        evidence.proof.map((h) => base64Decode(h)),
      );
      t.notOk(bytesEqual(prefixRoot, oldCp.root), 'the rebuilt log has another history');
    }
    const info = (await (await fetch(`${witnessUrl}/v1/witness`)).json()) as { logs: { size: string }[] };
    t.equal(info.logs[0]?.size, witnessedSize.toString(), 'the witness did not move');
    const res = await fetch(`${rebuilt.url}/checkpoint/witnessed`);
    const served = res.ok ? await res.text() : undefined;
    t.ok(served === undefined || !served.includes('witness.example/'), 'no witness cosigned the rebuilt log');
    const pushInfo = (await (await fetch(`${pushUrl}/v1/witness`)).json()) as { logs: { size: string }[] };
    const pushSize = BigInt(pushInfo.logs[0]?.size ?? '0');
    t.ok(
      pushSize >= 305n && pushSize <= witnessedSize,
      `the push witness stayed at the old log (${pushSize})`,
    );

    for (const w of [witness, pushWitness]) {
      w.child.kill('SIGTERM');
      t.equal(await w.exit, 0);
    }
    rebuilt.proc.child.kill('SIGTERM');
    await rebuilt.proc.exit;
  },
);
