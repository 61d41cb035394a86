import { createHash } from 'node:crypto';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import t from 'tap';
import { openedOfKind, openRecord } from './helpers/opened.js';
import { isSealedRef } from '../../src/sealed.js';
import { z } from 'zod';
import { auditTransport } from '../../src/mcp/audit-transport.js';
import { createCapture } from '../../src/mcp/capture.js';
import { MemorySink } from '../../src/mcp/memory-sink.js';
import { reconcile } from '../../src/mcp/reconcile.js';
import type { JsonObject } from '../../src/mcp/types.js';
import { everythingEntry } from './helpers/everything.js';

function inMemoryPair(secret = 'ok') {
  const server = new McpServer({ name: 'toy', version: '0.0.1' });
  server.registerTool(
    'add',
    { description: 'adds', inputSchema: { a: z.number(), b: z.number() } },
    async ({ a, b }) => ({
      content: [{ type: 'text', text: String(a + b) }],
    }),
  );
  server.registerTool('secret', { description: 'answers', inputSchema: {} }, async () => ({
    content: [{ type: 'text', text: secret }],
  }));
  const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
  return { server, clientSide, serverSide };
}

t.test('client and server sides record the same exchange; reconcile agrees', async (t) => {
  const { server, clientSide, serverSide } = inMemoryPair();
  const clientSink = new MemorySink();
  const serverSink = new MemorySink();
  const clientCapture = createCapture({ sink: clientSink, transport: 'sdk', mode: 'sync' });
  const serverCapture = createCapture({ sink: serverSink, transport: 'sdk', mode: 'sync' });
  await server.connect(auditTransport(serverSide, { capture: serverCapture, side: 'server' }));
  const client = new Client({ name: 'c', version: '0' });
  await client.connect(auditTransport(clientSide, { capture: clientCapture, side: 'client' }));
  const sum = await client.callTool({ name: 'add', arguments: { a: 2, b: 40 } });
  t.same(sum.content, [{ type: 'text', text: '42' }]);
  await client.close();
  const call = openedOfKind(clientSink, 'mcp.message').filter((f) => f['gen_ai.tool.name'] === 'add');
  t.match(call, [
    {
      direction: 'client_to_server',
      messageType: 'request',
      message: { params: { arguments: { a: 2, b: 40 } } },
    },
    {
      direction: 'server_to_client',
      messageType: 'result',
      matched: true,
      message: { result: { content: sum.content } },
    },
  ]);
  t.equal(
    openedOfKind(serverSink, 'mcp.message').filter((f) => f['gen_ai.tool.name'] === 'add').length,
    2,
    'the server side saw both too',
  );
  t.equal(
    clientSink.records.find((r) => r.fields['messageType'] === 'request')?.options.acknowledged,
    true,
    'client-side requests wait for the log in sync mode',
  );
  const report = reconcile(
    clientSink.records.map((r) => r.fields),
    serverSink.records.map((r) => r.fields),
  );
  t.same(report.findings, []);
  t.equal(report.requestsCompared, 2, 'initialize and tools/call');
});

t.test('reconcile finds a missing request and a differing answer', async (t) => {
  const base = (session: string, extra: JsonObject[]): JsonObject[] => [
    {
      kind: 'mcp.message',
      session,
      messageType: 'request',
      'mcp.method.name': 'tools/call',
      correlation: { requester: 'client', id: 1 },
      message: { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'x' } },
    },
    ...extra,
  ];
  const a = base('sa', [
    {
      kind: 'mcp.message',
      session: 'sa',
      messageType: 'result',
      correlation: { requester: 'client', id: 1 },
      message: { jsonrpc: '2.0', id: 1, result: { v: 1 } },
    },
    {
      kind: 'mcp.message',
      session: 'sa',
      messageType: 'request',
      'mcp.method.name': 'tools/call',
      correlation: { requester: 'client', id: 2 },
      message: { jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'hidden' } },
    },
  ]);
  const b = base('sb', [
    {
      kind: 'mcp.message',
      session: 'sb',
      messageType: 'result',
      correlation: { requester: 'client', id: 1 },
      message: { id: 1, result: { v: 2 }, jsonrpc: '2.0' },
    },
  ]);
  const report = reconcile(a, b);
  t.same(
    report.findings.map((f) => [f.problem, f.id]),
    [
      ['response_differs', 1],
      ['missing_in_b', 2],
    ],
  );
  t.same(report.sessions, [{ a: 'sa', b: 'sb', requests: 2 }]);
});

t.test('sync: the server side refuses a request the log did not acknowledge', async (t) => {
  const { server, clientSide, serverSide } = inMemoryPair();
  const serverSink = new MemorySink();
  const serverCapture = createCapture({ sink: serverSink, transport: 'sdk', mode: 'sync' });
  await server.connect(auditTransport(serverSide, { capture: serverCapture, side: 'server' }));
  const client = new Client({ name: 'c', version: '0' });
  await client.connect(clientSide);
  serverSink.logDown = new Error('down');
  await t.rejects(client.callTool({ name: 'secret', arguments: {} }), /audit log unavailable/);
  serverSink.logDown = undefined;
  await client.close();
});

t.test('client side over stdio against server-everything', async (t) => {
  const sink = new MemorySink();
  const capture = createCapture({ sink, transport: 'sdk', mode: 'spool' });
  const transport = new StdioClientTransport({
    command: process.execPath,
    args: [everythingEntry, 'stdio'],
    stderr: 'pipe',
  });
  const client = new Client({ name: 'c', version: '0' });
  await client.connect(auditTransport(transport, { capture, side: 'client', session: 'stdio-1' }));
  const echo = await client.callTool({ name: 'echo', arguments: { message: 'over stdio' } });
  await client.close();
  t.same(echo.content, [{ type: 'text', text: 'Echo: over stdio' }]);
  t.match(
    openedOfKind(sink, 'mcp.message').filter((f) => f['gen_ai.tool.name'] === 'echo'),
    [
      { session: 'stdio-1', messageType: 'request' },
      { messageType: 'result', matched: true },
    ],
  );
});

t.test(
  'server side: the SDK authInfo becomes the principal; the token itself is never recorded',
  async (t) => {
    const { server, clientSide, serverSide } = inMemoryPair();
    const sink = new MemorySink();
    const capture = createCapture({ sink, transport: 'sdk', mode: 'spool' });
    await server.connect(auditTransport(serverSide, { capture, side: 'server' }));
    await clientSide.start();
    const answered = new Promise<void>((resolve) => {
      clientSide.onmessage = (m) => {
        if ('id' in m && m.id === 7) resolve();
      };
    });
    const token = 'bearer-secret-0f9e8d7c6b5a';
    const authInfo = { token, clientId: 'agent-7', scopes: ['tools:call'] };
    await clientSide.send(
      {
        jsonrpc: '2.0',
        id: 1,
        method: 'initialize',
        params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'c', version: '0' } },
      },
      { authInfo },
    );
    await clientSide.send({ jsonrpc: '2.0', method: 'notifications/initialized' }, { authInfo });
    await clientSide.send(
      { jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name: 'add', arguments: { a: 1, b: 2 } } },
      { authInfo },
    );
    await answered;
    const sunk = sink.records.find(
      (r) => r.fields['direction'] === 'client_to_server' && r.fields['mcp.method.name'] === 'tools/call',
    );
    t.ok(sunk, 'the tools/call request was recorded');
    const principal = sunk!.fields['principal'] as JsonObject;
    t.same(Object.keys(principal).sort(), ['claims', 'type'], 'only the type is in clear');
    t.equal(principal['type'], 'token', 'a token without claims');
    t.ok(isSealedRef(principal['claims']), 'the claims are one sealed value');
    const call = openRecord(sunk!);
    const digest = createHash('sha256').update(token).digest('hex');
    t.notOk(JSON.stringify(sunk!.fields).includes(digest), 'the token digest is only in the sealed claims');
    t.same(call['principal'], {
      type: 'token',
      clientId: 'agent-7',
      scopes: ['tools:call'],
      tokenSha256: digest,
    });
    t.notOk(JSON.stringify(sink.records).includes(token), 'no record holds the token');
    await server.close();
  },
);
