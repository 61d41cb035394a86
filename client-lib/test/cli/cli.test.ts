// The `vigil` CLI as a process (compiled dist/src/cli/main.js) against the in-test log: keygen,
// submit, verify, search, evidence verify, audit; exit codes 0 / 1 / 2 and exact messages.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import {
  formatCheckpoint,
  recordHash,
  formatEntry,
  signNote,
  signRecord,
  generateKey,
  rootFromLeafHashes,
} from '../../src/index.js';
import { useNodeCrypto } from '../../src/node.js';
import { startFakeLog } from '../helpers/fake-log.js';

useNodeCrypto();

const cli = path.join(path.dirname(fileURLToPath(import.meta.url)), '../../src/cli/main.js');

function run(args: string[], input?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cli, ...args], {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { ...process.env, NO_COLOR: '1' },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
    child.stdin.end(input ?? '');
  });
}

const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'vigil-cli-'));
t.teardown(() => fs.rm(dir, { recursive: true, force: true }));

t.test('keygen writes a 0600 key, prints only the vkey, never overwrites', async (t) => {
  const out = path.join(dir, 'k1.key');
  const r = await run(['keygen', 'emitter.example/k1', '--out', out]);
  t.equal(r.code, 0);
  t.match(r.stdout, /^emitter\.example\/k1\+[0-9a-f]{8}\+[A-Za-z0-9+/=]+\n$/);
  t.equal((await fs.stat(out)).mode & 0o777, 0o600);
  t.match(await fs.readFile(out, 'utf8'), /^PRIVATE\+KEY\+emitter\.example\/k1\+/);
  t.notMatch(r.stdout, /PRIVATE/);
  const again = await run(['keygen', 'emitter.example/k1', '--out', out]);
  t.equal(again.code, 2);
  t.match(again.stderr, /exists; refusing to overwrite a key/);
  const cwdDefault = await new Promise<number>((resolve) => {
    const c = spawn(process.execPath, [cli, 'keygen', 'a/b'], { cwd: dir, stdio: 'ignore' });
    c.on('close', (code) => resolve(code ?? -1));
  });
  t.equal(cwdDefault, 0);
  t.ok(await fs.stat(path.join(dir, 'a_b.key')), 'default file name replaces / with _');
});

t.test('usage errors exit 2 with the usage text', async (t) => {
  const r = await run(['nonsense']);
  t.equal(r.code, 2);
  t.match(r.stderr, /unknown command "nonsense"/);
  t.match(r.stderr, /usage: vigil <command>/);
  const a = await run(['audit', '--policy', 'x']);
  t.equal(a.code, 2);
  t.match(a.stderr, /--log is required/);
});

t.test('submit, verify, search, audit against a log', async (t) => {
  const k = generateKey('emitter.example/cli');
  const log = await startFakeLog({ emitters: new Map([['emitter.example/cli', k.verifierKey]]) });
  t.teardown(() => log.close());
  const keyFile = path.join(dir, 'cli.key');
  await fs.writeFile(keyFile, k.signerKey + '\n', { mode: 0o600 });
  const policyFile = path.join(dir, 'policy');
  await fs.writeFile(policyFile, log.policy);

  const s = await run(
    ['submit', '--log', log.url, '--key', keyFile, '--policy', policyFile],
    '{"kind":"app.a","x":1}\n\n{"kind":"app.b"}\n',
  );
  t.equal(s.code, 0, s.stderr);
  const lines = s.stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { seq: number; index: string; receipt: string });
  t.same(lines.map((l) => l.seq).sort(), [0, 1, 2, 3]);
  t.equal(log.entries.length, 4);
  const bad = await run(['submit', '--log', log.url, '--key', keyFile], 'not json\n');
  t.equal(bad.code, 2);
  t.match(bad.stderr, /line 1 is not JSON/);

  const one = lines.find((l) => l.seq === 1)!;
  const receiptFile = path.join(dir, 'r.tlog-proof');
  await fs.writeFile(receiptFile, one.receipt);
  const entryFile = path.join(dir, 'entry');
  await fs.writeFile(entryFile, log.entries[Number(one.index)]!);
  const v = await run(['verify', receiptFile, '--entry', entryFile, '--policy', policyFile]);
  t.equal(v.code, 0, v.stderr);
  // The shipper may split the four records over several POSTs, so the receipt's checkpoint is any
  // size that includes the entry.
  const size = new RegExp(`^OK entry ${one.index} is in fake.example/log at size (\\d+)\\n$`).exec(
    v.stdout,
  )?.[1];
  t.ok(size !== undefined && Number(size) > Number(one.index) && Number(size) <= 4, v.stdout);
  await fs.writeFile(entryFile, log.entries[0]!);
  const vf = await run(['verify', receiptFile, '--entry', entryFile, '--policy', policyFile]);
  t.equal(vf.code, 1);
  t.match(vf.stdout, /^FAIL PROOF_INVALID: /);

  const sr = await run([
    'search',
    '--log',
    log.url,
    '--policy',
    policyFile,
    '--emitter',
    'emitter.example/cli',
  ]);
  t.equal(sr.code, 0, sr.stderr);
  t.match(
    sr.stdout,
    /^INDEX\s+RECEIVED \(LOG\)\s+TIME \(EMITTER\)\s+EMITTER\s+DIRECTION\s+METHOD\s+TOOL\s+ID\s+ARGS\/RESULT\s+VERIFIED\n3 /,
  );
  t.equal(sr.stdout.trim().split('\n').length, 5);
  log.searchTamper = (e) => ({ ...e, peer: '10.0.0.1' });
  const st = await run(['search', '--log', log.url, '--policy', policyFile, '--json']);
  t.equal(st.code, 1);
  t.match(st.stderr, /4 result\(s\) failed verification/);
  t.equal(
    (JSON.parse(st.stdout) as { results: { verified: boolean }[] }).results.every((x) => !x.verified),
    true,
  );
  delete log.searchTamper;

  const stateDir = path.join(dir, 'state');
  const a = await run(['audit', '--log', log.url, '--policy', policyFile, '--state', stateDir]);
  t.equal(a.code, 0, a.stdout + a.stderr);
  t.match(a.stdout, /result\s+CLEAN/);
  t.match(a.stdout, /emitter\.example\/cli\s+4/);
  const aj = await run(['audit', '--log', log.url, '--policy', policyFile, '--state', stateDir, '--json']);
  t.equal(aj.code, 0);
  t.equal((JSON.parse(aj.stdout) as { ok: boolean; size: string }).size, '4');

  // A stream with a missing record.
  const rec = (seq: number, prev?: string): Record<string, unknown> => ({
    v: 1,
    stream: 'gap',
    seq,
    ...(prev !== undefined ? { prev } : {}),
    time: new Date().toISOString(),
    kind: 'x',
  });
  const r0 = rec(0);
  const r2 = rec(2, recordHash(r0));
  log.appendRaw(
    [r0, r2].map((r) =>
      formatEntry({
        received: new Date().toISOString(),
        emitter: 'emitter.example/cli',
        peer: 'p',
        record: r,
        sig: signRecord(r, k.signerKey),
      }),
    ),
  );
  const ag = await run(['audit', '--log', log.url, '--policy', policyFile, '--state', stateDir]);
  t.equal(ag.code, 1);
  t.match(ag.stdout, /\n5\s+SEQ_GAP\s+entry 5: stream gap jumps from seq 0 \(entry 4\) to 2/);
  const au = await run(['audit', '--log', log.url, '--policy', policyFile, '--fail-on-unclosed']);
  t.equal(au.code, 1);
  t.match(au.stdout, /STREAM_UNCLOSED/);
});

t.test('audit exits 2 when it cannot run', async (t) => {
  const policyFile = path.join(dir, 'p2');
  await fs.writeFile(policyFile, `log ${generateKey('x.example/log').verifierKey}\nquorum none\n`);
  const r = await run(['audit', '--log', 'http://127.0.0.1:9/', '--policy', policyFile]);
  t.equal(r.code, 2);
  t.match(r.stderr, /cannot reach http:\/\/127\.0\.0\.1:9\/checkpoint/);
  const m = await run(['audit', '--log', 'http://127.0.0.1:9/', '--policy', path.join(dir, 'missing')]);
  t.equal(m.code, 2);
  t.match(m.stderr, /cannot read policy/);
});

t.test(
  'evidence verify: fork and inconsistent confirmed, consistent refused, rollback not conclusive',
  async (t) => {
    const origin = 'ev.example/log';
    const k = generateKey(origin);
    const leaf = (n: number): Uint8Array => new Uint8Array(32).fill(n);
    const note = (leaves: Uint8Array[]): string =>
      signNote(
        formatCheckpoint({
          origin,
          size: BigInt(leaves.length),
          root: rootFromLeafHashes(leaves),
          extensions: [],
        }),
        [k.signerKey],
      );
    const b64 = (b: Uint8Array): string => Buffer.from(b).toString('base64');
    const write = async (name: string, v: unknown): Promise<string> => {
      const f = path.join(dir, name);
      await fs.writeFile(f, JSON.stringify(v));
      return f;
    };
    const fork = await write('fork.json', {
      evidence: [
        {
          id: '1',
          origin,
          kind: 'fork',
          oldSize: '2',
          newSize: '2',
          oldNote: note([leaf(1), leaf(2)]),
          newNote: note([leaf(1), leaf(3)]),
          proof: [],
        },
      ],
    });
    const r = await run(['evidence', 'verify', fork, '--log-key', k.verifierKey]);
    t.equal(r.code, 0, r.stderr);
    t.match(r.stdout, /^CONFIRMED ev\.example\/log signed two different roots at size 2 \(fork\)\n$/);

    // Inconsistent: the log signed [1,2] at size 2, then [1,9,3] at size 3 whose prefix root differs.
    const rewritten = [leaf(1), leaf(9), leaf(3)];
    const inconsistent = await write('inc.json', {
      kind: 'inconsistent',
      oldSize: '2',
      newSize: '3',
      oldNote: note([leaf(1), leaf(2)]),
      newNote: note(rewritten),
      prefixRoot: b64(rootFromLeafHashes(rewritten.slice(0, 2))),
      proof: [b64(leaf(3))],
    });
    const ri = await run(['evidence', 'verify', inconsistent, '--log-key', k.verifierKey]);
    t.equal(ri.code, 0, ri.stdout + ri.stderr);
    t.match(
      ri.stdout,
      /^CONFIRMED ev\.example\/log: the tree signed at size 3 does not extend the one signed at size 2/,
    );

    const honest = [leaf(1), leaf(2), leaf(3)];
    const fine = await write('fine.json', {
      kind: 'inconsistent',
      oldNote: note(honest.slice(0, 2)),
      newNote: note(honest),
      prefixRoot: b64(rootFromLeafHashes(honest.slice(0, 2))),
      proof: [b64(leaf(3))],
    });
    const f = await run(['evidence', 'verify', fine, '--log-key', k.verifierKey]);
    t.equal(f.code, 1);
    t.match(f.stdout, /NOT CONFIRMED .*the checkpoints are consistent/);

    const rb = await write('rb.json', [
      { kind: 'rollback', oldNote: note(honest), newNote: note(honest.slice(0, 1)) },
    ]);
    const rr = await run(['evidence', 'verify', rb, '--log-key', k.verifierKey]);
    t.equal(rr.code, 0);
    t.match(rr.stdout, /^CONFIRMED \(not conclusive\) ev\.example\/log served size 1 after signing size 3/);

    const stranger = generateKey(origin);
    const s = await run(['evidence', 'verify', fork, '--log-key', stranger.verifierKey]);
    t.equal(s.code, 1);
    t.match(s.stdout, /NOT CONFIRMED/);
    const nokey = await run(['evidence', 'verify', fork]);
    t.equal(nokey.code, 2);
    t.match(nokey.stderr, /logVkey is not a trust anchor/);
  },
);

t.test('audit --follow reports new problems as the log grows and exits 1 on SIGINT', async (t) => {
  const k = generateKey('emitter.example/f');
  const log = await startFakeLog({ emitters: new Map([['emitter.example/f', k.verifierKey]]) });
  t.teardown(() => log.close());
  const policyFile = path.join(dir, 'pf');
  await fs.writeFile(policyFile, log.policy);
  const child = spawn(
    process.execPath,
    [cli, 'audit', '--log', log.url, '--policy', policyFile, '--follow', '--interval', '100ms'],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, NO_COLOR: '1' },
    },
  );
  let stdout = '';
  const waitFor = (re: RegExp): Promise<void> =>
    new Promise((resolve, reject) => {
      const deadline = setTimeout(
        () => reject(new Error(`timed out waiting for ${re}; got ${stdout}`)),
        20_000,
      );
      const check = (): void => {
        if (re.test(stdout)) {
          clearTimeout(deadline);
          child.stdout.off('data', check);
          resolve();
        }
      };
      child.stdout.on('data', check);
      check();
    });
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  const exited = new Promise<number>((resolve) => child.on('close', (code) => resolve(code ?? -1)));
  await waitFor(/result\s+CLEAN/);
  const r0 = { v: 1, stream: 'f', seq: 0, time: new Date().toISOString(), kind: 'x' };
  const r3 = { v: 1, stream: 'f', seq: 3, prev: recordHash(r0), time: new Date().toISOString(), kind: 'x' };
  log.appendRaw(
    [r0, r3].map((r) =>
      formatEntry({
        received: new Date().toISOString(),
        emitter: 'emitter.example/f',
        peer: 'p',
        record: r,
        sig: signRecord(r, k.signerKey),
      }),
    ),
  );
  await waitFor(/size 2: 2 new entries, 1 new problem\(s\)\n.*\n1\s+SEQ_GAP/);
  child.kill('SIGINT');
  t.equal(await exited, 1);
});
