import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { CreateMessageRequestSchema } from '@modelcontextprotocol/sdk/types.js';
import t from 'tap';
import { openedOfKind } from './helpers/opened.js';
import { createCapture } from '../../src/mcp/capture.js';
import { MemorySink } from '../../src/mcp/memory-sink.js';
import { startProxy } from '../../src/mcp/proxy.js';
import type { AuditMode, JsonObject } from '../../src/mcp/types.js';
import { startEverythingHttp } from './helpers/everything.js';

const upstream = await startEverythingHttp();
t.teardown(() => upstream.stop());

async function proxied(mode: AuditMode, extra: { requireAuth?: boolean } = {}) {
  const sink = new MemorySink();
  const capture = createCapture({ sink, transport: 'streamable-http', mode });
  const proxy = await startProxy({ upstream: upstream.url, port: 0, capture, ...extra });
  return { sink, capture, proxy };
}

const byTool = (sink: MemorySink, tool: string, dir: string): JsonObject[] =>
  openedOfKind(sink, 'mcp.message').filter((f) => f['gen_ai.tool.name'] === tool && f['direction'] === dir);

for (const mode of ['sync', 'spool'] as const) {
  t.test(`${mode}: SDK client through the proxy to server-everything`, async (t) => {
    const { sink, proxy } = await proxied(mode);
    t.teardown(() => proxy.close());
    const client = new Client({ name: 'vigil-test', version: '0.0.1' }, { capabilities: { sampling: {} } });
    client.setRequestHandler(CreateMessageRequestSchema, async () => ({
      model: 'fake-model',
      role: 'assistant',
      content: { type: 'text', text: 'sampled reply' },
    }));
    const transport = new StreamableHTTPClientTransport(new URL(proxy.url), {
      requestInit: { headers: { authorization: 'Bearer test-token-123' } },
    });
    await client.connect(transport);
    const sessionId = transport.sessionId;
    t.type(sessionId, 'string');
    const tools = await client.listTools();
    t.ok(tools.tools.some((x) => x.name === 'echo'));
    const echo = await client.callTool({ name: 'echo', arguments: { message: 'hello proxy' } });
    t.same(echo.content, [{ type: 'text', text: 'Echo: hello proxy' }]);
    const progress: number[] = [];
    await client.callTool(
      { name: 'trigger-long-running-operation', arguments: { duration: 0.2, steps: 2 } },
      undefined,
      { onprogress: (p) => progress.push(p.progress) },
    );
    t.same(progress, [1, 2]);
    const sampled = await client.callTool({
      name: 'trigger-sampling-request',
      arguments: { prompt: 'hi', maxTokens: 10 },
    });
    t.match(JSON.stringify(sampled.content), /sampled reply/);
    await transport.terminateSession();
    await client.close();

    const [req] = byTool(sink, 'echo', 'client_to_server');
    const [resp] = byTool(sink, 'echo', 'server_to_client');
    t.match(req, {
      messageType: 'request',
      session: sessionId,
      'mcp.session.id': sessionId,
      'mcp.method.name': 'tools/call',
      message: { params: { name: 'echo', arguments: { message: 'hello proxy' } } },
      principal: { type: 'token' },
      http: { method: 'POST', path: '/mcp' },
    });
    t.notOk(JSON.stringify(sink.records).includes('test-token-123'), 'the token is never recorded');
    t.match(resp, { matched: true, message: { result: { content: echo.content } }, http: { status: 200 } });
    t.same(resp?.['correlation'], req?.['correlation']);
    const progressRecords = openedOfKind(sink, 'mcp.message').filter(
      (f) => f['mcp.method.name'] === 'notifications/progress',
    );
    t.equal(progressRecords.length, 2, 'each progress notification recorded once');
    const sampling = openedOfKind(sink, 'mcp.message').filter(
      (f) => f['mcp.method.name'] === 'sampling/createMessage',
    );
    t.same(
      sampling.map((f) => [f['direction'], f['messageType'], (f['correlation'] as JsonObject)['requester']]),
      [
        ['server_to_client', 'request', 'server'],
        ['client_to_server', 'result', 'server'],
      ],
      'the server-to-client request and its answer correlate in the server id space',
    );
    const init = openedOfKind(sink, 'mcp.message').filter((f) => f['mcp.method.name'] === 'initialize');
    t.equal(init.length, 2);
    t.equal(init[1]?.['matched'], true, 'initialize correlates across the session id assignment');
    t.same(openedOfKind(sink, 'mcp.unanswered'), [], 'nothing left unanswered after DELETE');
  });
}

t.test('sync: a request is refused with a JSON-RPC error when the log is down', async (t) => {
  const { sink, proxy } = await proxied('sync');
  t.teardown(() => proxy.close());
  const client = new Client({ name: 'vigil-test', version: '0.0.1' });
  const transport = new StreamableHTTPClientTransport(new URL(proxy.url));
  await client.connect(transport);
  sink.logDown = new Error('ECONNREFUSED');
  await t.rejects(client.callTool({ name: 'echo', arguments: { message: 'x' } }), /audit log unavailable/);
  sink.logDown = undefined;
  const ok = await client.callTool({ name: 'echo', arguments: { message: 'y' } });
  t.same(ok.content, [{ type: 'text', text: 'Echo: y' }]);
  const answers = byTool(sink, 'echo', 'server_to_client');
  t.same(
    answers.map((f) => f['synthesized'] === true),
    [true, false],
    'the refusal is recorded as synthesized; only the forwarded call got an upstream answer',
  );
  await transport.terminateSession();
  await client.close();
});

t.test('--require-auth answers 401 without a token; anonymous otherwise', async (t) => {
  const { proxy } = await proxied('sync', { requireAuth: true });
  t.teardown(() => proxy.close());
  const res = await fetch(proxy.url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
    body: '{"jsonrpc":"2.0","id":1,"method":"ping"}',
  });
  t.equal(res.status, 401);
  t.match(res.headers.get('www-authenticate'), /^Bearer/);
  const open = await proxied('spool');
  t.teardown(() => open.proxy.close());
  const client = new Client({ name: 'vigil-test', version: '0.0.1' });
  const transport = new StreamableHTTPClientTransport(new URL(open.proxy.url));
  await client.connect(transport);
  await transport.terminateSession();
  await client.close();
  t.match(openedOfKind(open.sink, 'mcp.message')[0], { principal: { type: 'anonymous' } });
});

t.test('resumption with Last-Event-ID: replayed events are not recorded twice', async (t) => {
  const { sink, proxy } = await proxied('sync');
  t.teardown(() => proxy.close());
  const base = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
  const init = await fetch(proxy.url, {
    method: 'POST',
    headers: base,
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 0,
      method: 'initialize',
      params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'raw', version: '0' } },
    }),
  });
  const sid = init.headers.get('mcp-session-id') as string;
  await init.text();
  const headers = { ...base, 'mcp-session-id': sid, 'mcp-protocol-version': '2025-11-25' };
  await (
    await fetch(proxy.url, {
      method: 'POST',
      headers,
      body: '{"jsonrpc":"2.0","method":"notifications/initialized"}',
    })
  ).text();
  const controller = new AbortController();
  const call = await fetch(proxy.url, {
    method: 'POST',
    headers,
    signal: controller.signal,
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 7,
      method: 'tools/call',
      params: {
        name: 'trigger-long-running-operation',
        arguments: { duration: 0.6, steps: 3 },
        _meta: { progressToken: 7 },
      },
    }),
  });
  t.match(call.headers.get('content-type'), /text\/event-stream/);
  // Read until the first progress event, remember its id, then disconnect.
  const reader = (call.body as ReadableStream<Uint8Array>).getReader();
  let text = '';
  let lastId: string | undefined;
  while (lastId === undefined) {
    const { value, done } = await reader.read();
    if (done) break;
    text += new TextDecoder().decode(value);
    const m = /id: ([^\n]+)\ndata: \{[^\n]*notifications\/progress/.exec(text);
    if (m !== null) lastId = m[1];
  }
  t.type(lastId, 'string', 'saw a progress event with an id');
  controller.abort();
  // The server replays only what it stored after that id, and keeps producing into the closed
  // stream: poll with resumption attempts (each a short read window) until the result is replayed.
  // Attempts that replay part of the events make the later attempts replay them again, which the
  // proxy must not record twice.
  let replay = '';
  const deadline = Date.now() + 15_000;
  while (!replay.includes('"id":7') && Date.now() < deadline) {
    const resumed = await fetch(proxy.url, {
      method: 'GET',
      headers: { ...headers, accept: 'text/event-stream', 'last-event-id': lastId as string },
    });
    const rr = (resumed.body as ReadableStream<Uint8Array>).getReader();
    const windowEnd = Date.now() + 300;
    replay = '';
    while (!replay.includes('"id":7') && Date.now() < windowEnd) {
      const next = await Promise.race([
        rr.read(),
        new Promise<undefined>((r) => setTimeout(() => r(undefined), Math.max(1, windowEnd - Date.now()))),
      ]);
      if (next === undefined || next.done) break;
      replay += new TextDecoder().decode(next.value);
    }
    await rr.cancel();
  }
  t.match(replay, /"id":7/, 'the result arrived on the resumed stream');
  await fetch(proxy.url, { method: 'DELETE', headers });
  const msgs = openedOfKind(sink, 'mcp.message').filter((f) => f['session'] === sid);
  const progress = msgs.filter((f) => f['mcp.method.name'] === 'notifications/progress');
  t.equal(progress.length, 3, 'three progress events, each once');
  const eventIds = progress.map((f) => (f['http'] as JsonObject)['eventId']);
  t.equal(new Set(eventIds).size, 3);
  const results = msgs.filter((f) => f['messageType'] === 'result' && f['jsonrpc.request.id'] === '7');
  t.equal(results.length, 1, 'the result recorded once');
  t.match(results[0], {
    matched: true,
    'gen_ai.tool.name': 'trigger-long-running-operation',
    http: { method: 'GET' },
  });
});
