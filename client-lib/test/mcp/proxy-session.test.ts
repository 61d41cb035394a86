// Sessions over Streamable HTTP through the real proxy (MCP.md 1.3): the `initialize` that opens a
// session is filed under the `Mcp-Session-Id` its answer assigns, like every later message, and the
// session-ending DELETE is recorded with the status that answered it. Clients: SDK v1 and the v2
// client package; server: the reference server-everything, and a stateless SDK upstream.
import {
  Client as ClientV2,
  StreamableHTTPClientTransport as TransportV2,
} from '@modelcontextprotocol/client';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import t from 'tap';
import { createCapture } from '../../src/mcp/capture.js';
import { MemorySink } from '../../src/mcp/memory-sink.js';
import { openedOfKind, openRecord } from './helpers/opened.js';
import { startProxy } from '../../src/mcp/proxy.js';
import type { AuditMode, JsonObject } from '../../src/mcp/types.js';
import { startEverythingHttp } from './helpers/everything.js';
import { startExpressUpstream } from './helpers/express-upstream.js';

type Asserts = Pick<typeof t, 'ok' | 'notOk' | 'equal' | 'same' | 'match' | 'type'>;

const upstream = await startEverythingHttp();
t.teardown(() => upstream.stop());

async function proxied(mode: AuditMode, to = upstream.url) {
  const sink = new MemorySink();
  const capture = createCapture({ sink, transport: 'streamable-http', mode });
  const proxy = await startProxy({ upstream: to, port: 0, capture });
  return { sink, proxy };
}

const httpOf = (f: JsonObject | undefined): JsonObject => (f?.['http'] ?? {}) as JsonObject;

/** The checks shared by both clients: one session holds everything, DELETE and its answer included. */
function checkSession(t: Asserts, sink: MemorySink, sessionId: string, clientName: string): void {
  const messages = openedOfKind(sink, 'mcp.message');
  t.same(
    [...new Set(messages.map((f) => f['session']))],
    [sessionId],
    'every message, initialize included, is filed under the session',
  );
  const init = messages.filter((f) => f['mcp.method.name'] === 'initialize');
  t.match(init, [
    {
      direction: 'client_to_server',
      messageType: 'request',
      'mcp.session.id': sessionId,
      message: { params: { clientInfo: { name: clientName } } },
    },
    { direction: 'server_to_client', messageType: 'result', matched: true, 'mcp.session.id': sessionId },
  ]);
  t.notOk(httpOf(init[0])['mcpSessionId'], 'the initialize request itself carried no session header');
  const kinds = sink.records.map(openRecord).filter((f) => httpOf(f)['method'] === 'DELETE');
  t.match(kinds, [
    { kind: 'mcp.http.request', session: sessionId, http: { method: 'DELETE', mcpSessionId: sessionId } },
    { kind: 'mcp.http.response', session: sessionId, http: { method: 'DELETE', status: 200 } },
  ]);
  t.notOk(
    sink.records.some((r) => String(r.fields['session']).startsWith('exchange:')),
    'no record of this session is left under an exchange',
  );
  t.same(openedOfKind(sink, 'mcp.unanswered'), [], 'nothing unanswered');
}

for (const mode of ['sync', 'spool'] as const) {
  t.test(`${mode}: SDK v1 client, initialize and DELETE under the session`, async (t) => {
    const { sink, proxy } = await proxied(mode);
    t.teardown(() => proxy.close());
    const client = new Client({ name: 'session-v1', version: '0.0.1' });
    const transport = new StreamableHTTPClientTransport(new URL(proxy.url));
    await client.connect(transport);
    const sessionId = transport.sessionId as string;
    t.type(sessionId, 'string');
    t.ok((await client.listTools()).tools.length > 0);
    await transport.terminateSession();
    await client.close();
    checkSession(t, sink, sessionId, 'session-v1');
  });
}

t.test('SDK v2 client (legacy era), initialize and DELETE under the session', async (t) => {
  const { sink, proxy } = await proxied('sync');
  t.teardown(() => proxy.close());
  const client = new ClientV2({ name: 'session-v2', version: '0.0.1' });
  const transport = new TransportV2(new URL(proxy.url));
  await client.connect(transport);
  const sessionId = transport.sessionId as string;
  t.type(sessionId, 'string');
  t.ok((await client.listTools()).tools.length > 0);
  await transport.terminateSession();
  await client.close();
  checkSession(t, sink, sessionId, 'session-v2');
});

t.test('a DELETE the server refuses is recorded with its status', async (t) => {
  const { sink, proxy } = await proxied('spool');
  t.teardown(() => proxy.close());
  const res = await fetch(proxy.url, { method: 'DELETE', headers: { 'mcp-session-id': 'no-such-session' } });
  await res.text();
  t.ok(res.status >= 400, `refused with ${res.status}`);
  const answers = sink.records
    .map((r) => r.fields)
    .filter((f) => httpOf(f)['method'] === 'DELETE' && httpOf(f)['status'] !== undefined);
  t.match(answers, [{ session: 'no-such-session', http: { status: res.status } }], 'its answer, once');
  t.match(sink.records[0]?.fields, { kind: 'mcp.http.request', session: 'no-such-session' });
});

t.test(
  'sync: an initialize the log did not acknowledge gets no session; the upstream one is ended',
  async (t) => {
    // The outer proxy (sync, log down) sits in front of an inner proxy (spool) in front of the server:
    // the inner one records what actually reached the server.
    const inner = await proxied('spool');
    t.teardown(() => inner.proxy.close());
    const outer = await proxied('sync', inner.proxy.url);
    t.teardown(() => outer.proxy.close());
    outer.sink.logDown = new Error('ECONNREFUSED');
    const client = new Client({ name: 'refused', version: '0.0.1' });
    const transport = new StreamableHTTPClientTransport(new URL(outer.proxy.url));
    await t.rejects(client.connect(transport), /audit log unavailable/);
    t.equal(transport.sessionId, undefined, 'the client never learned a session');
    await client.close();
    // The inner proxy saw the initialize open a session, then the DELETE that ended it.
    const deadline = Date.now() + 10_000;
    while (openedOfKind(inner.sink, 'mcp.http.response').length === 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
    const [initRequest] = inner.sink
      .ofKind('mcp.message')
      .filter((f) => f['mcp.method.name'] === 'initialize' && f['direction'] === 'client_to_server');
    const opened = initRequest?.['mcp.session.id'];
    t.type(opened, 'string', 'the server opened a session');
    t.match(openedOfKind(inner.sink, 'mcp.http.response'), [
      { session: opened, http: { method: 'DELETE', status: 200 } },
    ]);
    t.match(
      openedOfKind(outer.sink, 'mcp.message'),
      [{ direction: 'server_to_client', synthesized: true, 'mcp.method.name': 'initialize' }],
      'only the refusal is recorded by the proxy whose log was down',
    );
  },
);

t.test('a stateless upstream: initialize and its answer share the exchange', async (t) => {
  const stateless = await startExpressUpstream();
  t.teardown(() => stateless.close());
  const { sink, proxy } = await proxied('sync', stateless.url);
  t.teardown(() => proxy.close());
  const client = new Client({ name: 'stateless', version: '0.0.1' });
  const transport = new StreamableHTTPClientTransport(new URL(proxy.url));
  await client.connect(transport);
  await client.close();
  const init = openedOfKind(sink, 'mcp.message').filter((f) => f['mcp.method.name'] === 'initialize');
  t.equal(init.length, 2);
  t.match(String(init[0]?.['session']), /^exchange:/);
  t.equal(init[1]?.['session'], init[0]?.['session']);
  t.equal(init[1]?.['matched'], true);
  t.notOk(init[0]?.['mcp.session.id']);
});
