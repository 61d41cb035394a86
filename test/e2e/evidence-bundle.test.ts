// End to end: an evidence bundle of a real MCP session (server-everything behind `vigil mcp wrap`,
// recorded by a real log) is written by `vigil export` as a child process, the log is stopped, and
// `vigil bundle verify` checks it offline against the reviewer's policy: it lists the tool call and
// exits 0; one flipped byte of one entry, or a sealed value that does not match its commitment, makes
// it exit 1 naming the entry; a bundle checked against another policy is refused (POLICY_MISMATCH).
// (The log runs without witnesses: its policy's quorum is none.)
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { base64Decode, base64Encode, generateKey, parseBundle, parseEntry } from '@vigil/client';
import t from 'tap';
import { runNode, startLog, vigilMain } from '../helpers/log.js';
import { registerEmitter, wrappedEverythingSession } from '../helpers/mcp.js';

const log = await startLog();
let stopped = false;
t.teardown(() => (stopped ? undefined : log.stop()));
const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'vigil-evidence-bundle-'));
t.teardown(() => fs.rm(dir, { recursive: true, force: true }));
const wrapper = await registerEmitter(log, dir, 'mcp-wrapper');
const token = await log.readerToken();
const MARKER = 'bundle-marker-51c9';

// One session through the wrapper.
const { found, session } = await wrappedEverythingSession(
  log,
  wrapper,
  path.join(dir, 'spool'),
  'bundle-e2e',
  async (c) => {
    await c.listTools();
    await c.callTool({ name: 'echo', arguments: { message: MARKER } });
  },
);
const echoCall = found.find(
  (x) => x.record['messageType'] === 'request' && x.record['gen_ai.tool.name'] === 'echo',
)!;
const env = { NO_COLOR: '1', VIGIL_READER_TOKEN: '' };

const bundleFile = path.join(dir, 'session.json');
const exported = await runNode(
  vigilMain,
  ['export', '--session', session, '--log', log.url, '--policy', wrapper.policyFile, '--out', bundleFile],
  { NO_COLOR: '1', VIGIL_READER_TOKEN: token },
);
// A second bundle with --no-open: commitments only.
const sealedFile = path.join(dir, 'sealed.json');
const exportedSealed = await runNode(
  vigilMain,
  [
    'export',
    '--session',
    session,
    '--log',
    log.url,
    '--policy',
    wrapper.policyFile,
    '--no-open',
    '--out',
    sealedFile,
  ],
  { NO_COLOR: '1', VIGIL_READER_TOKEN: token },
);
// A window on the log's clock (filtered by the log's search): the session's records and the
// access.read records the first export caused (operator records, with their registration).
const windowFile = path.join(dir, 'window.json');
const exportedWindow = await runNode(
  vigilMain,
  [
    'export',
    '--since',
    '10m',
    '--log',
    log.url,
    '--policy',
    wrapper.policyFile,
    '--no-open',
    '--out',
    windowFile,
  ],
  { NO_COLOR: '1', VIGIL_READER_TOKEN: token },
);
const noFollow = await runNode(vigilMain, ['export', '--follow', '--log', log.url], env);
await log.stop();
stopped = true;

t.test(
  'vigil export writes a bundle of the session with its registry records and sealed values',
  async (t) => {
    t.equal(exported.code, 0, exported.stderr);
    t.match(exported.stderr, /wrote .*session\.json: \d+ entries/);
    const bundle = parseBundle(await fs.readFile(bundleFile, 'utf8'));
    const entries = bundle.entries.map((e) => ({
      index: BigInt(e.index),
      entry: parseEntry(base64Decode(e.entry)),
    }));
    const ofSession = entries.filter((e) => e.entry.record['session'] === session);
    t.ok(
      ofSession.some((e) => e.index === echoCall.index),
      'the echo call is in the bundle',
    );
    t.same(
      ofSession.map((e) => e.index),
      found.filter((f) => f.record['session'] === session).map((f) => f.index),
      'exactly the records of the session',
    );
    const registry = entries.filter((e) => e.entry.record['kind'] === 'emitter.add');
    t.same(
      registry.map((e) => e.entry.record['name']),
      [`${log.origin}/operator`, 'mcp-wrapper'],
      "the operator's self-registration, then the wrapper's",
    );
    t.ok(Object.keys(bundle.sealed).length > 0, 'sealed values included with a reader token');
    t.ok(
      Object.values(bundle.sealed).some((s) => Buffer.from(s, 'base64').toString().includes(MARKER)),
      'the echo argument is among them',
    );
    t.equal(exportedSealed.code, 0, exportedSealed.stderr);
    t.match(exportedSealed.stderr, /--no-open: the sealed values stay sealed/);
    t.same(parseBundle(await fs.readFile(sealedFile, 'utf8')).sealed, {});
    t.not(noFollow.code, 0, '--follow is handed to the streams-out command');
    t.equal(exportedWindow.code, 0, exportedWindow.stderr);
    const window = parseBundle(await fs.readFile(windowFile, 'utf8'));
    const kinds = window.entries.map((e) => parseEntry(base64Decode(e.entry)).record['kind']);
    t.ok(
      window.entries.some((e) => e.index === echoCall.index.toString()),
      'the window holds the echo call',
    );
    t.ok(kinds.includes('stream.open') && kinds.includes('stream.close'), 'and the stream records');
    t.ok(kinds.includes('access.read'), "and the log's record of the first export's reads");
    const v = await runNode(vigilMain, ['bundle', 'verify', windowFile, '--policy', wrapper.policyFile], env);
    t.equal(v.code, 0, v.stdout + v.stderr);
  },
);

t.test('bundle verify checks the bundle offline and lists the tool call', async (t) => {
  const r = await runNode(vigilMain, ['bundle', 'verify', bundleFile, '--policy', wrapper.policyFile], env);
  t.equal(r.code, 0, r.stdout + r.stderr);
  t.match(r.stdout, /OK: every check held/);
  t.match(r.stdout, new RegExp(`\\b${echoCall.index}\\b.*tools/call echo`), 'the tool call is listed');
  t.match(r.stdout, new RegExp(`sessions: 1`));
  t.match(r.stdout, /mcp-wrapper/);
  t.notMatch(r.stderr, /warning/, 'no warning with --policy');
  const own = await runNode(vigilMain, ['bundle', 'verify', bundleFile], env);
  t.equal(own.code, 0, own.stdout + own.stderr);
  t.match(own.stderr, /only that it is consistent with itself/, 'without --policy: a plain warning');
  const json = await runNode(
    vigilMain,
    ['bundle', 'verify', sealedFile, '--policy', wrapper.policyFile, '--json'],
    env,
  );
  t.equal(json.code, 0, json.stderr);
  const report = JSON.parse(json.stdout) as {
    ok: boolean;
    records: { index: string; sealed: { state: string }[] }[];
  };
  t.equal(report.ok, true);
  const echo = report.records.find((x) => x.index === echoCall.index.toString())!;
  t.ok(
    echo.sealed.length > 0 && echo.sealed.every((v) => v.state === 'sealed'),
    'without S: sealed, not failed',
  );
  t.notMatch(json.stdout, new RegExp(MARKER));
});

t.test('a flipped entry byte or a wrong sealed value fails, naming the entry', async (t) => {
  const text = await fs.readFile(bundleFile, 'utf8');
  const bundle = JSON.parse(text) as {
    entries: { index: string; entry: string }[];
    sealed: Record<string, string>;
  };
  const at = bundle.entries.findIndex((e) => e.index === echoCall.index.toString());
  const bytes = Buffer.from(bundle.entries[at]!.entry, 'base64');
  bytes[bytes.length - 3] = bytes[bytes.length - 3]! ^ 1;
  const flipped = structuredClone(bundle);
  flipped.entries[at]!.entry = base64Encode(bytes);
  const flippedFile = path.join(dir, 'flipped.json');
  await fs.writeFile(flippedFile, JSON.stringify(flipped));
  const r = await runNode(vigilMain, ['bundle', 'verify', flippedFile, '--policy', wrapper.policyFile], env);
  t.equal(r.code, 1, r.stdout);
  t.match(r.stdout, new RegExp(`PROOF_INVALID entry ${echoCall.index}:`));
  t.match(r.stdout, /FAILED/);

  // The S of the echo call's arguments, with another value under the same commitment. The result
  // echoes the marker too, so the value is looked up among the commitments of the call's own entry.
  const ownEntry = Buffer.from(bundle.entries[at]!.entry, 'base64').toString();
  const [hex, s] = Object.entries(bundle.sealed).find(
    ([h, v]) => ownEntry.includes(h) && Buffer.from(v, 'base64').toString().includes(MARKER),
  )!;
  const forged = structuredClone(bundle);
  forged.sealed[hex] = base64Encode(
    Buffer.from(Buffer.from(s, 'base64').toString().replace(MARKER, MARKER.toUpperCase())),
  );
  const forgedFile = path.join(dir, 'forged.json');
  await fs.writeFile(forgedFile, JSON.stringify(forged));
  const f = await runNode(vigilMain, ['bundle', 'verify', forgedFile, '--policy', wrapper.policyFile], env);
  t.equal(f.code, 1, f.stdout);
  t.match(f.stdout, new RegExp(`SEALED_MISMATCH entry ${echoCall.index}:`));
});

t.test('a bundle checked against another policy is refused', async (t) => {
  const other = path.join(dir, 'other.policy');
  await fs.writeFile(other, `log ${generateKey(log.origin).verifierKey}\nquorum none\n`);
  const r = await runNode(vigilMain, ['bundle', 'verify', bundleFile, '--policy', other], env);
  t.equal(r.code, 1);
  t.match(r.stdout, /POLICY_MISMATCH/);
  // The same policy with a comment and blank lines is the same policy.
  const commented = path.join(dir, 'commented.policy');
  await fs.writeFile(commented, `# pinned out of band\n\n${log.policy}`);
  const same = await runNode(vigilMain, ['bundle', 'verify', bundleFile, '--policy', commented], env);
  t.equal(same.code, 0, same.stdout);
});

t.test('export needs a reader token; export and bundle have --help', async (t) => {
  const r = await runNode(
    vigilMain,
    [
      'export',
      '--session',
      session,
      '--log',
      log.url,
      '--policy',
      wrapper.policyFile,
      '--out',
      path.join(dir, 'x.json'),
    ],
    env,
  );
  t.equal(r.code, 2);
  t.match(r.stderr, /needs a reader token/);
  for (const argv of [
    ['export', '--help'],
    ['bundle', '--help'],
  ]) {
    const r = await runNode(vigilMain, argv, env);
    t.equal(r.code, 0, argv.join(' '));
    t.match(r.stdout, new RegExp(`^usage: vigil ${argv[0]}`));
  }
});
