// The `vigil` CLI with a reader token (contract "Client"): `audit --reader-token` (and
// VIGIL_READER_TOKEN) opens and checks every sealed value; `search` sends the token and shows opened
// values, each checked against its commitment (a wrong one as FAILED), or `[sealed]` without one;
// `verify --reader-token` opens the entry's values. The token and no opened value of a failed check
// ever appear in the output. As a process (dist/src/cli/main.js) against the in-test log.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import {
  LogClient,
  formatEntry,
  generateKey,
  recordHash,
  sealValue,
  signRecord,
  type Entry,
  type Sealed,
} from '../../src/index.js';
import { useNodeCrypto } from '../../src/node.js';
import { startFakeLog } from '../helpers/fake-log.js';

useNodeCrypto();

const cli = path.join(path.dirname(fileURLToPath(import.meta.url)), '../../src/cli/main.js');
const TOKEN = 'vigil_rt_TOKENMARKER' + 'z'.repeat(32);
const ORIGIN = 'fake.example/log';
const OPERATOR = `${ORIGIN}/operator`;
const NAME = 'emitter.example/cli';

function run(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cli, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, NO_COLOR: '1', VIGIL_READER_TOKEN: '', ...env },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

let saltCounter = 0;
const seal = (v: unknown): Sealed => sealValue(v, new Uint8Array(16).fill(++saltCounter));

async function setup(t: { teardown(fn: () => unknown): void }) {
  const operator = generateKey(OPERATOR);
  const key = generateKey(NAME);
  const log = await startFakeLog({ origin: ORIGIN, emitters: new Map([[NAME, key.verifierKey]]) });
  log.operator = { name: OPERATOR, vkey: operator.verifierKey };
  log.readers.add(TOKEN);
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'vigil-cli-sealed-'));
  t.teardown(async () => {
    await log.close();
    await fs.rm(dir, { recursive: true, force: true });
  });
  const policy = path.join(dir, 'policy');
  await fs.writeFile(policy, log.policy);
  const seqs = new Map<string, { seq: number; prev?: string }>();
  const append = (emitter: string, signerKey: string, fields: Record<string, unknown>): void => {
    const s = seqs.get(emitter) ?? { seq: 0 };
    const record: Record<string, unknown> = {
      v: 1,
      stream: `${emitter}-stream`,
      seq: s.seq,
      ...(s.prev !== undefined ? { prev: s.prev } : {}),
      time: new Date().toISOString(),
      ...fields,
    };
    seqs.set(emitter, { seq: s.seq + 1, prev: recordHash(record) });
    log.appendRaw([
      formatEntry({
        received: new Date().toISOString(),
        emitter,
        peer: 'log',
        record,
        sig: signRecord(record, signerKey),
      }),
    ]);
  };
  append(OPERATOR, operator.signerKey, { kind: 'emitter.add', name: OPERATOR, vkey: operator.verifierKey });
  append(OPERATOR, operator.signerKey, { kind: 'emitter.add', name: NAME, vkey: key.verifierKey });
  const message = (params: unknown, result: unknown): [Sealed, Sealed] => {
    const p = seal(params);
    const r = seal(result);
    log.sealed.set(p.ref.$sealed.sha256, p.bytes);
    log.sealed.set(r.ref.$sealed.sha256, r.bytes);
    append(NAME, key.signerKey, {
      kind: 'mcp.message',
      session: 's-1',
      message: { jsonrpc: '2.0', id: 1, method: 'tools/call', params: p.ref, result: r.ref },
    });
    return [p, r];
  };
  /** Appends a record of the emitter with its own `time` (the emitter's clock). */
  const record = (fields: Record<string, unknown>): void => append(NAME, key.signerKey, fields);
  return { log, dir, policy, message, record };
}

t.test('audit --reader-token opens every value; a tampered S is SEALED_MISMATCH at its index', async (t) => {
  const { log, policy, message } = await setup(t);
  message({ q: 'hello' }, { text: 'world' }); // entry 2
  const [p] = message({ q: 'second' }, 'ok'); // entry 3
  const base = ['audit', '--log', log.url, '--policy', policy];

  const without = await run(base);
  t.equal(without.code, 0, without.stderr);
  t.match(without.stdout, /sealed\s+4 value\(s\) in the new entries, not opened \(no reader token/);

  const clean = await run([...base, '--reader-token', TOKEN]);
  t.equal(clean.code, 0, clean.stdout + clean.stderr);
  t.match(clean.stdout, /sealed\s+4 value\(s\) in the new entries: 4 opened and matched, 0 erased/);
  t.match(clean.stdout, /CLEAN/);

  log.sealed.set(p.ref.$sealed.sha256, seal({ q: 'FORGEDVALUE' }).bytes);
  const fromEnv = await run(base, { VIGIL_READER_TOKEN: TOKEN });
  t.equal(fromEnv.code, 1, 'the token from the environment opens too');
  t.match(fromEnv.stdout, new RegExp(`3\\s+SEALED_MISMATCH\\s+entry 3: .*${p.ref.$sealed.sha256}`));
  const json = await run([...base, '--json'], { VIGIL_READER_TOKEN: TOKEN });
  const report = JSON.parse(json.stdout) as { problems: { code: string; index: string }[] };
  t.same(
    report.problems.map((x) => `${x.code}@${x.index}`),
    ['SEALED_MISMATCH@3'],
  );
  for (const r of [without, clean, fromEnv, json]) {
    t.notMatch(r.stdout + r.stderr, 'TOKENMARKER');
    t.notMatch(r.stdout + r.stderr, 'FORGEDVALUE');
    t.notMatch(r.stdout + r.stderr, 'hello');
  }

  log.readers.clear();
  const refused = await run([...base, '--reader-token', TOKEN]);
  t.equal(refused.code, 2);
  t.match(refused.stderr, 'this log needs a reader token (--reader-token or VIGIL_READER_TOKEN)');
  t.notMatch(refused.stderr, 'TOKENMARKER');
});

t.test('search sends the token and shows opened values, a wrong one as FAILED', async (t) => {
  const { log, policy, message } = await setup(t);
  message({ q: 'hello' }, { text: 'world \u001b[31mred\u202e' }); // entry 2
  const [, r] = message({ q: 'second' }, 'ok'); // entry 3
  const base = ['search', '--log', log.url, '--policy', policy, '--emitter', NAME];

  const noToken = await run(base);
  t.equal(noToken.code, 2);
  t.match(noToken.stderr, 'this log needs a reader token (--reader-token or VIGIL_READER_TOKEN)');

  const opened = await run([...base, '--reader-token', TOKEN]);
  t.equal(opened.code, 0, opened.stderr);
  t.match(opened.stdout, 'message.params: {"q":"hello"}');
  t.match(
    opened.stdout,
    'message.result: {"text":"world \\u001b[31mred\\u202e"}',
    'control characters escaped',
  );
  t.notMatch(opened.stdout, '\u001b', 'no escape reaches the terminal');
  t.notMatch(opened.stdout, '\u202e');
  t.match(opened.stdout, 'message.result: "ok"');
  t.match(opened.stdout, /\n3\s.*\sresult: "ok"\s+yes\n/, 'the row summarises the opened value');
  t.match(opened.stdout, /\n2\s.*\sresult: \{"text":"world \\u001b\[31mred\\u202e"\}\s+yes\n/);

  const sealedOnly = await run([...base, '--no-open'], { VIGIL_READER_TOKEN: TOKEN });
  t.equal(sealedOnly.code, 0, sealedOnly.stderr);
  t.match(sealedOnly.stdout, 'message.params: [sealed]');
  t.notMatch(sealedOnly.stdout, 'hello');
  t.notMatch(
    log.authorizations.filter((a) => a.path === 'v1/search').at(-1)?.url ?? '',
    'open=1',
    '--no-open asks for nothing opened',
  );

  log.sealed.set(r.ref.$sealed.sha256, seal('FORGEDVALUE').bytes);
  const failed = await run([...base, '--reader-token', TOKEN]);
  t.equal(failed.code, 1);
  t.match(
    failed.stdout,
    `message.result: FAILED: the log's sealed value does not match commitment ${r.ref.$sealed.sha256}`,
  );
  t.match(failed.stdout, /FAILED 1 of 2 sealed/);
  t.match(failed.stderr, '1 sealed value(s) do not match their commitment');
  t.notMatch(failed.stdout, 'FORGEDVALUE', 'the forged value is not shown as if it were the value');

  const json = await run([...base, '--json'], { VIGIL_READER_TOKEN: TOKEN });
  const parsed = JSON.parse(json.stdout) as {
    results: { index: string; sealed?: { path: string; state: string; value?: unknown }[] }[];
  };
  t.same(
    parsed.results.map((x) => [x.index, x.sealed?.map((v) => `${v.path}:${v.state}`)]),
    [
      ['3', ['message.params:opened', 'message.result:failed']],
      ['2', ['message.params:opened', 'message.result:opened']],
    ],
  );
  for (const x of [noToken, opened, sealedOnly, failed, json]) t.notMatch(x.stdout + x.stderr, 'TOKENMARKER');
  t.ok(
    log.authorizations
      .filter((a) => a.path === 'v1/search')
      .every(
        (a) =>
          !a.url.includes('TOKENMARKER') &&
          (a.authorization === undefined || a.authorization === `Bearer ${TOKEN}`),
      ),
  );
});

t.test('verify with a reader token opens and checks the entry', async (t) => {
  const { log, dir, policy, message } = await setup(t);
  const [p] = message({ q: 'hello' }, { text: 'world' }); // entry 2
  const answer = await new LogClient(log.url).entry(2n);
  const entryFile = path.join(dir, 'entry');
  const receiptFile = path.join(dir, 'receipt');
  await fs.writeFile(entryFile, formatEntry(answer.entry as unknown as Entry));
  await fs.writeFile(receiptFile, answer.receipt);
  const base = ['verify', receiptFile, '--entry', entryFile, '--policy', policy];

  const offline = await run(base);
  t.equal(offline.code, 0, offline.stdout + offline.stderr);
  t.match(offline.stdout, /OK entry 2/);
  t.match(offline.stdout, '2 sealed value(s), not opened (no reader token):\n  message.params: [sealed]');

  const usage = await run([...base, '--reader-token', TOKEN]);
  t.equal(usage.code, 2);
  t.match(usage.stderr, '--log URL is required');

  const opened = await run([...base, '--log', log.url], { VIGIL_READER_TOKEN: TOKEN });
  t.equal(opened.code, 0, opened.stdout + opened.stderr);
  t.match(opened.stdout, 'message.params: {"q":"hello"}');
  t.match(opened.stdout, 'message.result: {"text":"world"}');

  log.sealed.delete(p.ref.$sealed.sha256);
  log.erased.set(p.ref.$sealed.sha256, 9n);
  const erased = await run([...base, '--log', log.url, '--reader-token', TOKEN]);
  t.equal(erased.code, 0);
  t.match(erased.stdout, 'message.params: [erased by entry 9]');

  log.erased.clear();
  log.sealed.set(p.ref.$sealed.sha256, seal({ q: 'FORGEDVALUE' }).bytes);
  const failed = await run([...base, '--log', log.url, '--reader-token', TOKEN]);
  t.equal(failed.code, 1);
  t.match(failed.stdout, 'message.params: FAILED');
  t.match(failed.stdout, 'FAIL 1 sealed value(s) do not match their commitment');
  for (const x of [offline, usage, opened, erased, failed]) {
    t.notMatch(x.stdout + x.stderr, 'TOKENMARKER');
    t.notMatch(x.stdout + x.stderr, 'FORGEDVALUE');
  }
});

t.test('search: one readable row per record, both clocks, and --clock emitter windows', async (t) => {
  const { log, policy, record } = await setup(t);
  const args = seal({ name: 'fetch', arguments: { url: 'https://example.com/\u001b[2J' } });
  const result = seal({ content: [{ type: 'text', text: 'x'.repeat(200) }] });
  for (const s of [args, result]) log.sealed.set(s.ref.$sealed.sha256, s.bytes);
  const old = '2026-01-01T00:00:00.000Z';
  // Entry 2: a request whose emitter clock says January (the log received it now); entry 3: its result.
  record({
    kind: 'mcp.message',
    time: old,
    session: 's-9',
    direction: 'client_to_server',
    messageType: 'request',
    'mcp.method.name': 'tools/call',
    'gen_ai.tool.name': 'fetch',
    'jsonrpc.request.id': '7',
    message: { jsonrpc: '2.0', id: 7, method: 'tools/call', params: args.ref },
  });
  record({
    kind: 'mcp.message',
    session: 's-9',
    direction: 'server_to_client',
    messageType: 'result',
    'mcp.method.name': 'tools/call',
    'gen_ai.tool.name': 'fetch',
    message: { jsonrpc: '2.0', id: 7, result: result.ref },
  });
  record({ kind: 'mcp.stderr', session: 's-9', line: 'plain line' }); // entry 4
  const base = ['search', '--log', log.url, '--policy', policy, '--emitter', NAME];

  const opened = await run(base, { VIGIL_READER_TOKEN: TOKEN });
  t.equal(opened.code, 0, opened.stderr);
  const lines = opened.stdout.split('\n');
  t.match(
    lines[0],
    /^INDEX\s+RECEIVED \(LOG\)\s+TIME \(EMITTER\)\s+EMITTER\s+DIRECTION\s+METHOD\s+TOOL\s+ID\s+ARGS\/RESULT\s+VERIFIED$/,
  );
  const row = (index: number) => lines.find((l) => l.startsWith(`${index} `)) ?? '';
  t.match(
    row(2),
    /^2\s+\S+Z\s+2026-01-01T00:00:00\.000Z\s+emitter\.example\/cli\s+client->server\s+tools\/call\s+fetch\s+7\s+args: \{"url":"https:\/\/example\.com\/\\u001b\[2J"\}\s+yes$/,
    'the arguments of the call, terminal-safe',
  );
  t.match(
    row(3),
    /^3\s+.*\sserver->client\s+tools\/call\s+fetch\s+7\s+result: \{"content":\[\{"text":"x+\.\.\.\s+yes$/,
  );
  t.ok(row(3).length < 260, 'the result is cut short in the table');
  t.match(row(4), /^4\s+.*\s+-\s+\(mcp\.stderr\)\s+-\s+-\s+\{"line":"plain line"\}\s+yes$/);
  t.notMatch(opened.stdout, '\u001b', 'no escape reaches the terminal');

  const sealedOnly = await run([...base, '--no-open'], { VIGIL_READER_TOKEN: TOKEN });
  t.match(row(2).replace(/args: .*/, ''), /fetch\s+7\s+$/);
  const sealedRow = sealedOnly.stdout.split('\n').find((l) => l.startsWith('2 ')) ?? '';
  t.match(sealedRow, /fetch\s+7\s+args: \[sealed\]\s+yes$/, 'not opened: [sealed]');

  // The log's clock (default): the window goes to the log, and the output names the clock.
  const recent = await run([...base, '--since', '10m'], { VIGIL_READER_TOKEN: TOKEN });
  t.equal(recent.code, 0, recent.stderr);
  t.match(recent.stdout, /^\d+ result\(s\), window on the log's clock \(received\)\n/);
  t.match(log.authorizations.filter((a) => a.path === 'v1/search').at(-1)?.url ?? '', /since=2/);

  // The emitter's clock: filtered here; only the request's emitter time lies in January.
  const january = await run([...base, '--clock', 'emitter', '--until', '2026-02-01T00:00:00Z'], {
    VIGIL_READER_TOKEN: TOKEN,
  });
  t.equal(january.code, 0, january.stderr);
  t.match(january.stdout, /^1 result\(s\), window on the emitter's clock \(time\)\n/);
  t.same(
    january.stdout
      .split('\n')
      .slice(2)
      .filter((l) => /^\d+ /.test(l))
      .map((l) => l.split(' ')[0]),
    ['2'],
  );
  t.notMatch(log.authorizations.filter((a) => a.path === 'v1/search').at(-1)?.url ?? '', /until=/);
  const since = await run([...base, '--clock', 'emitter', '--since', '7d'], { VIGIL_READER_TOKEN: TOKEN });
  t.notMatch(since.stdout, /\n2 /, 'the January request is outside the last 7 days on its own clock');
  t.match(since.stdout, /\n3 /);

  const bad = await run([...base, '--clock', 'wall'], { VIGIL_READER_TOKEN: TOKEN });
  t.equal(bad.code, 2);
  t.match(bad.stderr, '--clock must be received (the log) or emitter');
  const badTime = await run([...base, '--since', 'yesterday'], { VIGIL_READER_TOKEN: TOKEN });
  t.equal(badTime.code, 2);
  t.match(badTime.stderr, 'neither a duration like 10m');
});
