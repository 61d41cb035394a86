// End to end: the reviewer's commands against a real log holding a real MCP session (server-everything
// behind `vigil mcp wrap`): `vigil policy` (trust on first use, warned), `vigil verify --log --index`
// and the documented file path over `?format=raw`, `vigil sessions` in a time window on either clock,
// `vigil transcript` opened with a reader token and `[sealed]` without one, `--help` of every command,
// and `vigil reconcile` of two files of `vigil search --json` output.
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { generateKey, hashLeaf, parsePolicy } from '@vigil/client';
import t from 'tap';
import { runNode, startLog, vigilMain } from '../helpers/log.js';
import { registerEmitter, wrappedEverythingSession } from '../helpers/mcp.js';

const log = await startLog();
t.teardown(() => log.stop());
const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'vigil-review-cli-'));
t.teardown(() => fs.rm(dir, { recursive: true, force: true }));
const wrapper = await registerEmitter(log, dir, 'mcp-wrapper');
const token = await log.readerToken();
const MARKER = 'review-marker-7f3a';

// One session through the wrapper: tools/list, then two tool calls.
const { found, session } = await wrappedEverythingSession(
  log,
  wrapper,
  path.join(dir, 'spool'),
  'review-e2e',
  async (c) => {
    await c.listTools();
    await c.callTool({ name: 'echo', arguments: { message: MARKER } });
    await c.callTool({ name: 'get-sum', arguments: { a: 2, b: 3 } });
  },
);
const echoCall = found.find(
  (x) => x.record['messageType'] === 'request' && x.record['gen_ai.tool.name'] === 'echo',
)!;
const env = { NO_COLOR: '1', VIGIL_READER_TOKEN: '' };
const withToken = { NO_COLOR: '1', VIGIL_READER_TOKEN: token };

t.test('policy prints the log key and warns that it is trust on first use', async (t) => {
  const r = await runNode(vigilMain, ['policy', '--log', log.url], env);
  t.equal(r.code, 0, r.stderr);
  const policy = parsePolicy(r.stdout);
  t.same(
    policy.logs.map((l) => l.vkey),
    [log.vkey],
  );
  t.equal(policy.quorum, 'none', 'a log without witnesses');
  t.match(r.stderr, /trust on first use/);
  t.match(r.stderr, /out of band/);
  t.notMatch(r.stdout, /warning/, 'the warning is on stderr only');
  const file = path.join(dir, 'tofu.policy');
  await fs.writeFile(file, r.stdout);
  const v = await runNode(
    vigilMain,
    ['verify', '--log', log.url, '--index', echoCall.index.toString(), '--policy', file],
    env,
  );
  t.equal(v.code, 0, `the printed policy verifies the log's entries: ${v.stderr}`);
});

t.test('verify --log --index checks the entry and its receipt; the raw entry path works', async (t) => {
  const index = echoCall.index.toString();
  const r = await runNode(
    vigilMain,
    ['verify', '--log', log.url, '--index', index, '--policy', wrapper.policyFile],
    env,
  );
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, new RegExp(`^OK entry ${index} is in `));
  t.match(r.stdout, /\[sealed\]/, 'sealed values listed, not opened without a token');
  t.notMatch(r.stdout, new RegExp(MARKER));
  const opened = await runNode(
    vigilMain,
    ['verify', '--log', log.url, '--index', index, '--policy', wrapper.policyFile],
    withToken,
  );
  t.equal(opened.code, 0, opened.stderr);
  t.match(opened.stdout, new RegExp(MARKER), 'opened with the reader token');

  // Another log key: the receipt does not verify.
  const other = path.join(dir, 'other.policy');
  await fs.writeFile(other, `log ${generateKey(log.origin).verifierKey}\nquorum none\n`);
  const wrong = await runNode(
    vigilMain,
    ['verify', '--log', log.url, '--index', index, '--policy', other],
    env,
  );
  t.equal(wrong.code, 1);
  t.match(wrong.stdout, /^FAIL /);

  // The documented path: download the raw entry and the receipt, verify offline.
  const raw = new Uint8Array(await (await fetch(`${log.url}v1/entries/${index}?format=raw`)).arrayBuffer());
  const json = (await (await fetch(`${log.url}v1/entries/${index}`)).json()) as { leafHash: string };
  t.equal(Buffer.from(hashLeaf(raw)).toString('base64'), json.leafHash, 'raw bytes are the leaf');
  const entryFile = path.join(dir, 'entry.bin');
  const receiptFile = path.join(dir, 'receipt.txt');
  await fs.writeFile(entryFile, raw);
  await fs.writeFile(receiptFile, await (await fetch(`${log.url}v1/receipt/${index}`)).text());
  const offline = await runNode(
    vigilMain,
    ['verify', receiptFile, '--entry', entryFile, '--policy', wrapper.policyFile],
    env,
  );
  t.equal(offline.code, 0, offline.stderr);
  raw[raw.length - 3] = raw[raw.length - 3]! ^ 1;
  await fs.writeFile(entryFile, raw);
  const tampered = await runNode(
    vigilMain,
    ['verify', receiptFile, '--entry', entryFile, '--policy', wrapper.policyFile],
    env,
  );
  t.equal(tampered.code, 1);

  const bad = await runNode(vigilMain, ['verify', '--log', log.url, '--index', '-1', '--policy', other], env);
  t.equal(bad.code, 2);
  t.match(bad.stderr, /--index/);
});

interface SessionLine {
  session: string;
  emitters: string[];
  principals: string[];
  tools: string[];
  records: number;
  requests: number;
  failed: number;
  clock: string;
  servers: string[];
  ended?: string;
}

t.test('sessions lists the session in the window on either clock', async (t) => {
  const base = ['sessions', '--log', log.url, '--policy', wrapper.policyFile];
  const r = await runNode(vigilMain, [...base, '--since', '1h', '--json'], withToken);
  t.equal(r.code, 0, r.stderr);
  const lines = r.stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as SessionLine);
  const s = lines.find((l) => l.session === session);
  t.ok(s, 'the session is listed');
  t.same(s!.emitters, ['mcp-wrapper']);
  t.same(s!.tools, ['echo', 'get-sum']);
  t.ok(s!.requests >= 4, 'initialize, tools/list and two calls');
  t.equal(s!.failed, 0);
  t.equal(s!.clock, 'received');
  t.ok(s!.principals.length > 0, 'the principal type');
  t.same(s!.servers, ['[sealed command]'], "the wrapper's stream.open names the server, sealed");
  t.match(s!.ended, /^(exit \d+|signal SIG[A-Z]+)$/, 'the wrapped process exit ends the session');
  t.equal(
    s!.records,
    found.filter((x) => x.record['session'] === session).length,
    'every record of the session counted',
  );

  const emitterClock = await runNode(
    vigilMain,
    [...base, '--since', '1h', '--clock', 'emitter', '--json'],
    withToken,
  );
  t.equal(emitterClock.code, 0, emitterClock.stderr);
  t.match(emitterClock.stdout, new RegExp(`"session":"${session}"`));
  t.match(emitterClock.stdout, /"clock":"emitter"/);

  const [byTool, byOtherTool] = await Promise.all([
    runNode(
      vigilMain,
      [...base, '--since', '1h', '--tool', 'get-sum', '--principal', 'process', '--json'],
      withToken,
    ),
    runNode(vigilMain, [...base, '--since', '1h', '--tool', 'no-such-tool', '--json'], withToken),
  ]);
  t.match(
    byTool.stdout,
    new RegExp(`"session":"${session}"`),
    'found by the tool it called and its principal',
  );
  t.equal(byOtherTool.stdout, '', 'no session called that tool');

  const future = new Date(Date.now() + 3_600_000).toISOString();
  const none = await runNode(vigilMain, [...base, '--since', future], withToken);
  t.equal(none.code, 0, none.stderr);
  t.match(none.stdout, /^0 session\(s\), window on the log's clock/);

  const until = await runNode(
    vigilMain,
    [...base, '--since', '7d', '--until', '2000-01-01T00:00:00Z'],
    withToken,
  );
  t.match(until.stdout, /^0 session\(s\)/, 'until before since: nothing');

  const table = await runNode(vigilMain, [...base, '--since', '10m'], withToken);
  t.equal(table.code, 0, table.stderr);
  t.match(table.stdout, /SESSION +FIRST \(LOG\) +LAST \(LOG\) +FIRST \(EMITTER\) +LAST \(EMITTER\) +EMITTER/);
  t.match(
    table.stdout,
    new RegExp(
      `${session} .*mcp-wrapper .*echo,get-sum +\\[sealed command\\] +(exit \\d+|signal SIG[A-Z]+) +yes`,
    ),
  );

  const badWindow = await runNode(vigilMain, [...base, '--since', 'yesterday'], withToken);
  t.equal(badWindow.code, 2);
  t.match(badWindow.stderr, /neither a duration/);
  const noToken = await runNode(vigilMain, base, env);
  t.equal(noToken.code, 2);
  t.match(noToken.stderr, /reader token/);
});

interface Item {
  type: string;
  method?: string;
  tool?: string;
  request?: {
    index: string;
    verified: boolean;
    message?: Record<string, unknown>;
    notOpened: string[];
    principal?: unknown;
  };
  response?: { index: string; verified: boolean; message?: Record<string, unknown>; notOpened: string[] };
  definitions?: { index: string; sealed: boolean; definition?: { name: string } };
  latencyMs?: number;
}

t.test('transcript joins requests and responses, opened and checked, with tool definitions', async (t) => {
  const r = await runNode(
    vigilMain,
    ['transcript', session, '--log', log.url, '--policy', wrapper.policyFile, '--json'],
    withToken,
  );
  t.equal(r.code, 0, r.stderr);
  const items = r.stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Item);
  const calls = items.filter((i) => i.type === 'call');
  const list = calls.find((i) => i.method === 'tools/list')!;
  const echo = calls.find((i) => i.tool === 'echo')!;
  t.ok(list.response, 'tools/list answered');
  t.same(
    echo.request!.message!['params'],
    { name: 'echo', arguments: { message: MARKER } },
    'arguments opened',
  );
  t.match(JSON.stringify(echo.response!.message!['result']), MARKER, 'result opened');
  t.equal(echo.request!.verified, true);
  t.equal(echo.response!.verified, true);
  t.same(echo.request!.notOpened, []);
  // Who called: the wrapper's stdio principal, the OS user it ran as, opened.
  t.match(echo.request!.principal, { type: 'process', claims: { user: os.userInfo().username } });
  t.equal(echo.definitions!.index, list.response!.index, 'the tools/list result before the call');
  t.equal(echo.definitions!.definition!.name, 'echo');
  t.ok(BigInt(echo.request!.index) < BigInt(echo.response!.index));
  t.ok(typeof echo.latencyMs === 'number');
  t.match(r.stdout.trim().split('\n').at(-1)!, /"summary":\{"items":\d+,"failed":0,"toolChanges":\[\]\}/);

  const text = await runNode(
    vigilMain,
    ['transcript', session, '--log', log.url, '--policy', wrapper.policyFile],
    withToken,
  );
  t.equal(text.code, 0, text.stderr);
  t.match(text.stdout, /client->server tools\/call echo/);
  t.match(text.stdout, /principal: \{.*"process"/, 'who called');
  t.match(
    text.stdout,
    new RegExp(`tool definition in effect \\(tools/list result at entry ${list.response!.index}\\)`),
  );
  t.match(text.stdout, /verified/);
  t.match(text.stdout, /process mcp\.process\.exit\n.* verified {2}\{.*"code":0/, 'the exit code, opened');
  t.notMatch(text.stdout, /FAILED/);
});

t.test('transcript without opening shows [sealed]; without a token it says one is needed', async (t) => {
  const args = ['transcript', session, '--log', log.url, '--policy', wrapper.policyFile];
  const sealed = await runNode(vigilMain, [...args, '--no-open'], withToken);
  t.equal(sealed.code, 0, sealed.stderr);
  t.match(sealed.stdout, /params: \[sealed\]/);
  t.match(sealed.stdout, /result: \[sealed\]/);
  t.match(sealed.stdout, /tools\/list result at entry \d+ \[sealed\]/);
  t.notMatch(sealed.stdout, new RegExp(MARKER));
  const r = await runNode(vigilMain, args, env);
  t.equal(r.code, 2);
  t.match(r.stderr, /reader token/);
  t.notMatch(r.stdout + r.stderr, new RegExp(MARKER));
});

t.test('--help works for every command', async (t) => {
  const commands = [
    'keygen',
    'submit',
    'verify',
    'search',
    'evidence',
    'audit',
    'policy',
    'sessions',
    'transcript',
    'export',
    'bundle',
    'console',
    'mcp',
    'reconcile',
  ];
  // One process per command, all at once: each only prints its usage.
  const runs = await Promise.all([
    ...commands.map((c) => runNode(vigilMain, [c, '--help'], env)),
    runNode(vigilMain, ['mcp', 'wrap', '--help'], env),
  ]);
  commands.forEach((c, i) => {
    const r = runs[i]!;
    t.equal(r.code, 0, `${c} --help exits 0`);
    t.match(r.stdout, /usage:/, `${c} --help prints its usage on stdout`);
    t.match(r.stdout, new RegExp(`vigil ${c}`), `${c}'s own usage`);
  });
  const wrap = runs[commands.length]!;
  t.equal(wrap.code, 0);
  t.match(wrap.stdout, /vigil mcp wrap/);
});

t.test('reconcile accepts two files of vigil search --json output', async (t) => {
  const search = await runNode(
    vigilMain,
    [
      'search',
      '--log',
      log.url,
      '--policy',
      wrapper.policyFile,
      '--session',
      session,
      '--limit',
      '1000',
      '--json',
    ],
    withToken,
  );
  t.equal(search.code, 0, search.stderr);
  const a = path.join(dir, 'a.json');
  const b = path.join(dir, 'b.json');
  await fs.writeFile(a, search.stdout);
  await fs.writeFile(b, search.stdout);
  const r = await runNode(vigilMain, ['reconcile', a, b, '--json'], env);
  t.equal(r.code, 0, r.stderr);
  const report = JSON.parse(r.stdout) as { findings: unknown[]; requestsCompared: number };
  t.same(report.findings, []);
  t.ok(report.requestsCompared >= 4, 'the requests of the session were compared');

  // A file whose result failed verification is refused.
  const body = JSON.parse(search.stdout) as { results: { verified: boolean }[] };
  body.results[0]!.verified = false;
  await fs.writeFile(b, JSON.stringify(body));
  const refused = await runNode(vigilMain, ['reconcile', a, b], env);
  t.equal(refused.code, 2);
  t.match(refused.stderr, /failed verification/);

  // One side lacks the echo call: reconcile names it.
  const partial = JSON.parse(search.stdout) as { results: { entry: { record: Record<string, unknown> } }[] };
  partial.results = partial.results.filter((x) => x.entry.record['gen_ai.tool.name'] !== 'echo');
  await fs.writeFile(b, JSON.stringify(partial));
  const diff = await runNode(vigilMain, ['reconcile', a, b, '--json'], env);
  t.equal(diff.code, 1, diff.stderr);
  t.match(diff.stdout, /"tool": "echo"/);
});
