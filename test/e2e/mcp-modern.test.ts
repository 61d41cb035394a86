// End to end, 2026-07-28 era (MCP.md 1.4, 1.10, 3.5): a v2 SDK client pinned to 2026-07-28 drives a
// v2 SDK server (test/helpers/v2-server.ts) through `vigil mcp wrap` (stdio) and `vigil mcp proxy`
// (Streamable HTTP) against a real log, and through `auditTransport` in process. Checked: no
// initialize, `server/discover`, the protocol version from the per-request `_meta`, `Mcp-Method` /
// `Mcp-Name` / `MCP-Protocol-Version` on HTTP, requests and answers correlated without a session,
// and the multi-round-trip `input_required` rounds of `deploy` (new id, request state echoed).
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { StdioClientTransport } from '@modelcontextprotocol/client/stdio';
import {
  auditTransport,
  createCapture,
  isSealedRef,
  MemorySink,
  openSealed,
  replaceSealed,
  type SunkRecord,
} from '@vigil/client';
import t from 'tap';
import { startLog, vigilMain } from '../helpers/log.js';
import { registerEmitter, searchLog, searchUntil, spawnNode, type Asserts } from '../helpers/mcp.js';

const v2Server = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'helpers', 'v2-server.js');
const MODERN = '2026-07-28';

const log = await startLog();
t.teardown(() => log.stop());
const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'vigil-mcp-modern-'));
t.teardown(() => fs.rm(dir, { recursive: true, force: true }));
const reg = await registerEmitter(log, dir, 'mcp-modern');
const logArgs = (mode: string, spool: string): string[] => [
  '--log',
  log.url,
  '--key',
  reg.keyFile,
  '--policy',
  reg.policyFile,
  '--mode',
  mode,
  '--spool-dir',
  path.join(dir, spool),
];

type Rec = Record<string, unknown>;
const msg = (r: Rec): Rec => (r['message'] ?? {}) as Rec;
const params = (r: Rec): Rec => (msg(r)['params'] ?? {}) as Rec;
const result = (r: Rec): Rec => (msg(r)['result'] ?? {}) as Rec;

/**
 * A captured record as a reader sees it: every sealed commitment replaced by the value its S (carried
 * beside the record in `blobs`) opens to, checked by openSealed. A commitment without its S throws.
 */
function opened(record: SunkRecord): Rec {
  const blobs = record.options.blobs ?? {};
  return replaceSealed(record.fields, (ref) => {
    const bytes = blobs[ref.$sealed.sha256];
    if (bytes === undefined) throw new Error(`no S beside the record for ${ref.$sealed.sha256}`);
    return { value: openSealed(ref, bytes) };
  }) as Rec;
}

/** A v2 client pinned to the modern era that accepts every elicitation. */
function modernClient(): Client {
  const client = new Client(
    { name: 'vigil-v2-e2e', version: '0.0.1' },
    { capabilities: { elicitation: { form: {} } }, versionNegotiation: { mode: { pin: MODERN } } },
  );
  client.setRequestHandler('elicitation/create', async () => ({
    action: 'accept',
    content: { confirm: true },
  }));
  return client;
}

/** The calls every modern test makes; returns what the client saw. */
async function exercise(client: Client): Promise<{ tools: string[]; add: unknown; deploy: unknown }> {
  const tools = (await client.listTools()).tools.map((x) => x.name);
  const add = await client.callTool({ name: 'add', arguments: { a: 2, b: 3 } });
  await client.callTool({ name: 'slow', arguments: {} }, { onprogress: () => {} });
  const deploy = await client.callTool({ name: 'deploy', arguments: { env: 'prod' } });
  return { tools, add, deploy };
}

/**
 * The modern-era facts, whatever carried the messages: `messages` are every mcp.message record of
 * the run. Correlation is checked within each record's own `session` (stdio stream or HTTP exchange).
 */
function checkModern(t: Asserts, messages: Rec[], seen: Awaited<ReturnType<typeof exercise>>): void {
  t.notOk(
    messages.some((r) => r['mcp.method.name'] === 'initialize'),
    'no initialize in the modern era',
  );
  const calls = messages.filter((r) => r['mcp.method.name'] === 'tools/call');
  for (const r of calls) t.equal(r['mcp.protocol.version'], MODERN, 'version from the request _meta');
  const answerOf = (request: Rec): Rec | undefined =>
    messages.find(
      (r) =>
        r['direction'] === 'server_to_client' &&
        (r['messageType'] === 'result' || r['messageType'] === 'error') &&
        r['session'] === request['session'] &&
        JSON.stringify(r['correlation']) === JSON.stringify(request['correlation']),
    );
  const requestsOf = (tool: string): Rec[] =>
    calls.filter((r) => r['direction'] === 'client_to_server' && r['gen_ai.tool.name'] === tool);

  const [add] = requestsOf('add');
  t.same(params(add!)['arguments'], { a: 2, b: 3 });
  const addAnswer = answerOf(add!);
  t.match(addAnswer, { matched: true, 'gen_ai.tool.name': 'add' }, 'the add answer correlates');
  t.match(result(addAnswer!), seen.add as Rec, 'the recorded result is what the client got');

  const list = messages.find(
    (r) => r['mcp.method.name'] === 'tools/list' && r['direction'] === 'server_to_client',
  );
  t.same(
    ((result(list!)['tools'] ?? []) as Rec[]).map((x) => x['name']),
    seen.tools,
  );

  // MRTR: round one answers input_required with an elicitation and a state; the retry is a new
  // request (new id) carrying the answer and the state byte for byte, and completes.
  const rounds = requestsOf('deploy');
  t.equal(rounds.length, 2, 'two rounds of deploy');
  const [first, retry] = rounds as [Rec, Rec];
  t.not(
    JSON.stringify(msg(first)['id']),
    JSON.stringify(msg(retry)['id']),
    'the retry has a new JSON-RPC id',
  );
  const firstAnswer = answerOf(first);
  t.match(result(firstAnswer!), {
    resultType: 'input_required',
    inputRequests: { confirm: { method: 'elicitation/create' } },
    requestState: 'state-prod',
  });
  t.match(params(retry), {
    name: 'deploy',
    arguments: { env: 'prod' },
    inputResponses: { confirm: { action: 'accept', content: { confirm: true } } },
    requestState: 'state-prod',
  });
  t.match(result(answerOf(retry)!), seen.deploy as Rec, 'the final round is what the client got');
  // Both rounds are one call: the retry and its answer name the first round (its session and id),
  // whatever session (stdio stream, HTTP exchange) each round came in.
  const firstCall = { session: first['session'], id: msg(first)['id'] };
  t.notOk((first['correlation'] as Rec)['call'], 'the first round starts the call');
  t.same((retry['correlation'] as Rec)['call'], firstCall, 'the retry names the first round');
  t.same((answerOf(retry)!['correlation'] as Rec)['call'], firstCall, 'so does its answer');
  for (const r of messages.filter((x) => x['mcp.method.name'] === 'server/discover'))
    t.equal(r['mcp.handshake'], 'discover', 'server/discover is classified as the handshake');
  t.match(JSON.stringify(seen.deploy), /deployed to prod/);

  const progress = messages.filter((r) => r['mcp.method.name'] === 'notifications/progress');
  t.same(
    progress.map((r) => params(r)['progress']),
    [1, 2],
    'the slow call progress notifications',
  );
  t.notOk(
    messages.some((r) => r['direction'] === 'server_to_client' && r['messageType'] === 'request'),
    'the server sent no requests',
  );
}

t.test('wrap (stdio): v2 client -> vigil mcp wrap -> v2 server, 2026-07-28', async (t) => {
  const client = modernClient();
  const transport = new StdioClientTransport({
    command: process.execPath,
    args: [vigilMain, 'mcp', 'wrap', ...logArgs('sync', 'wrap'), '--', process.execPath, v2Server, 'stdio'],
    stderr: 'pipe',
  });
  await client.connect(transport);
  const seen = await exercise(client);
  await client.close();

  const deploys = await searchUntil(log, reg.policyFile, { tool: 'deploy' }, (f) => f.length >= 2);
  const session = deploys[0]!.record['session'] as string;
  const records = (
    await searchUntil(log, reg.policyFile, { session }, (f) =>
      f.some((x) => x.record['kind'] === 'mcp.process.exit'),
    )
  ).map((x) => x.record);
  const messages = records.filter((r) => r['kind'] === 'mcp.message');
  t.ok(messages.length > 0);
  t.ok(
    messages.every((r) => r['transport'] === 'stdio' && r['mcp.session.id'] === undefined),
    'stdio: the wrapper run is the session; no Mcp-Session-Id',
  );
  checkModern(t, messages, seen);
  // The pinned client probes with server/discover (on a sibling process for the SDK's stdio
  // transport, so possibly in another wrapper run): it is in the log, answered with 2026-07-28.
  const discover = await searchLog(log, reg.policyFile, { method: 'server/discover' });
  t.ok(discover.length > 0, 'server/discover was recorded');
  const probeSession = discover[0]!.record['session'] as string;
  const probe = (await searchLog(log, reg.policyFile, { session: probeSession })).map((x) => x.record);
  const answer = probe.find(
    (r) => r['mcp.method.name'] === 'server/discover' && r['direction'] === 'server_to_client',
  );
  t.match(answer, { matched: true, message: { result: { supportedVersions: [MODERN] } } });
});

t.test('proxy (HTTP): v2 client -> vigil mcp proxy -> v2 server, 2026-07-28', async (t) => {
  const upstream = spawnNode(v2Server, ['http']);
  t.teardown(() => upstream.stop());
  const upstreamUrl = (await upstream.waitFor(/listening on (\S+)/))[1]!;
  const proxy = spawnNode(vigilMain, [
    'mcp',
    'proxy',
    '--upstream',
    upstreamUrl,
    '--listen',
    '127.0.0.1:0',
    ...logArgs('sync', 'proxy'),
  ]);
  t.teardown(() => proxy.stop());
  const proxyUrl = (await proxy.waitFor(/listening on (\S+) ->/))[1]!;

  const client = modernClient();
  const transport = new StreamableHTTPClientTransport(new URL(proxyUrl));
  await client.connect(transport);
  t.equal(transport.sessionId, undefined, 'no session in the modern era');
  const seen = await exercise(client);
  await client.close();

  // Each POST is its own exchange: find the exchanges through the tool column, then each one whole.
  const found = await searchUntil(
    log,
    reg.policyFile,
    { emitter: reg.name },
    (f) =>
      f.filter(
        (x) =>
          x.record['transport'] === 'streamable-http' &&
          x.record['gen_ai.tool.name'] === 'deploy' &&
          x.record['direction'] === 'server_to_client',
      ).length >= 2,
  );
  const messages = found
    .map((x) => x.record)
    .filter((r) => r['kind'] === 'mcp.message' && r['transport'] === 'streamable-http');
  t.ok(
    messages.every((r) => r['mcp.session.id'] === undefined),
    'no Mcp-Session-Id recorded',
  );
  checkModern(t, messages, seen);
  const add = messages.find((r) => r['gen_ai.tool.name'] === 'add' && r['direction'] === 'client_to_server');
  t.match(add, {
    http: {
      method: 'POST',
      mcpMethod: 'tools/call',
      mcpName: 'add',
      mcpProtocolVersion: MODERN,
    },
  });
  const exchange = messages.filter((r) => r['session'] === add!['session']);
  t.same(
    exchange.map((r) => [r['direction'], r['messageType']]),
    [
      ['client_to_server', 'request'],
      ['server_to_client', 'result'],
    ],
    'one exchange: the request and its answer',
  );
  const discover = messages.filter((r) => r['mcp.method.name'] === 'server/discover');
  t.match(discover, [
    { direction: 'client_to_server', http: { mcpMethod: 'server/discover' } },
    { direction: 'server_to_client', matched: true, message: { result: { supportedVersions: [MODERN] } } },
  ]);
});

t.test('auditTransport: the v2 client records its own view of the modern era', async (t) => {
  const sink = new MemorySink();
  const capture = createCapture({ sink, transport: 'sdk', mode: 'sync' });
  const client = modernClient();
  const inner = new StdioClientTransport({
    command: process.execPath,
    args: [v2Server, 'stdio'],
    stderr: 'pipe',
  });
  await client.connect(auditTransport(inner, { capture, side: 'client', session: 'v2-client' }));
  const seen = await exercise(client);
  await client.close();
  await capture.close('test_end');
  const sealed = sink.records.filter((r) => r.fields['kind'] === 'mcp.message');
  const messages = sealed.map(opened);
  t.ok(
    messages.every((r) => r['transport'] === 'sdk'),
    'recorded by the SDK seam',
  );
  checkModern(t, messages, seen);
  // What the sink holds is sealed by default: the add call's arguments and its result are
  // commitments (checkModern compared the opened values with what the client got).
  const addRequest = sealed.find(
    (r) => r.fields['gen_ai.tool.name'] === 'add' && r.fields['direction'] === 'client_to_server',
  );
  const addAnswer = sealed.find(
    (r) => r.fields['gen_ai.tool.name'] === 'add' && r.fields['direction'] === 'server_to_client',
  );
  t.ok(isSealedRef(msg(addRequest!.fields)['params']), 'the request params are sealed');
  t.ok(isSealedRef(msg(addAnswer!.fields)['result']), 'the result is sealed');
  t.notOk(
    sealed.some((r) => JSON.stringify(r.fields).includes('deployed to prod')),
    'no result text in clear',
  );
  t.same(sink.ofKind('mcp.unanswered'), [], 'every request was answered');
});
