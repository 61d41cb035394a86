// Mirrored headers (2026-07-28, SEP-2243) against the body: the rules table, then the real proxy in
// front of a v2 SDK server with a v2 client pinned to the modern era (its headers agree, nothing is
// flagged) and hand-made requests whose headers lie (recorded on the message's record).
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import {
  Client as ClientV2,
  StreamableHTTPClientTransport as TransportV2,
} from '@modelcontextprotocol/client';
import { createMcpHandler, McpServer } from '@modelcontextprotocol/server';
import t from 'tap';
import { createCapture } from '../../src/mcp/capture.js';
import { decodeHeaderValue, headerMismatches } from '../../src/mcp/header-check.js';
import { MemorySink } from '../../src/mcp/memory-sink.js';
import { parseMessage } from '../../src/mcp/message.js';
import { startProxy } from '../../src/mcp/proxy.js';
import type { HttpFacts, JsonObject } from '../../src/mcp/types.js';

const MODERN = '2026-07-28';
const call = (name: string) =>
  JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name } });
const b64 = (s: string) => `=?base64?${Buffer.from(s).toString('base64')}?=`;

t.test('the rules', async (t) => {
  const facts = (extra: Partial<HttpFacts>): HttpFacts => ({ method: 'POST', path: '/mcp', ...extra });
  for (const [desc, headers, body, want] of [
    [
      'modern call, headers agree',
      { mcpProtocolVersion: MODERN, mcpMethod: 'tools/call', mcpName: 'add' },
      call('add'),
      [],
    ],
    [
      'modern call, base64 name agrees',
      { mcpProtocolVersion: MODERN, mcpMethod: 'tools/call', mcpName: b64('ädd') },
      call('ädd'),
      [],
    ],
    [
      'modern call, method differs',
      { mcpProtocolVersion: MODERN, mcpMethod: 'tools/list', mcpName: 'add' },
      call('add'),
      ['Mcp-Method: differs'],
    ],
    [
      'modern call, name differs',
      { mcpProtocolVersion: MODERN, mcpMethod: 'tools/call', mcpName: 'rm' },
      call('add'),
      ['Mcp-Name: differs'],
    ],
    [
      'modern call, both missing',
      { mcpProtocolVersion: MODERN },
      call('add'),
      ['Mcp-Method: missing', 'Mcp-Name: missing'],
    ],
    [
      'modern call, bad base64 text',
      { mcpProtocolVersion: MODERN, mcpMethod: 'tools/call', mcpName: '=?base64?/w==?=' },
      call('add'),
      ['Mcp-Name: undecodable'],
    ],
    [
      'resources/read names the uri',
      { mcpProtocolVersion: MODERN, mcpMethod: 'resources/read', mcpName: 'file:///a' },
      JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'resources/read', params: { uri: 'file:///a' } }),
      [],
    ],
    [
      'a name on a method without one',
      { mcpProtocolVersion: MODERN, mcpMethod: 'tools/list', mcpName: 'x' },
      JSON.stringify({ jsonrpc: '2.0', id: 3, method: 'tools/list' }),
      ['Mcp-Name: differs'],
    ],
    [
      'a method header on an answer',
      { mcpMethod: 'tools/call' },
      JSON.stringify({ jsonrpc: '2.0', id: 3, result: {} }),
      ['Mcp-Method: differs'],
    ],
    ['legacy revision, no headers: nothing required', { mcpProtocolVersion: '2025-11-25' }, call('add'), []],
    [
      'legacy revision, a lying header is still flagged',
      { mcpProtocolVersion: '2025-11-25', mcpMethod: 'ping' },
      call('add'),
      ['Mcp-Method: differs'],
    ],
  ] as const) {
    t.same(headerMismatches(facts(headers), parseMessage(body)), want, desc);
  }
  t.equal(decodeHeaderValue('plain'), 'plain');
  t.equal(decodeHeaderValue(b64('日本')), '日本');
  t.equal(decodeHeaderValue('=?base64?/w==?='), undefined, 'not UTF-8');
});

// A v2 SDK server (stateless, modern-capable) behind node:http.
const handler = createMcpHandler(() => {
  const server = new McpServer({ name: 'header-check', version: '0.0.1' });
  server.registerTool('add', { description: 'answers 5' }, async () => ({
    content: [{ type: 'text', text: '5' }],
  }));
  return server;
});
const upstream = http.createServer((req, res) => {
  const headers = new Headers();
  for (const [k, v] of Object.entries(req.headers)) {
    if (v !== undefined) headers.set(k, Array.isArray(v) ? v.join(', ') : v);
  }
  const hasBody = req.method !== 'GET' && req.method !== 'HEAD';
  const request = new Request(`http://${req.headers.host ?? '127.0.0.1'}${req.url ?? '/'}`, {
    method: req.method ?? 'GET',
    headers,
    ...(hasBody ? { body: Readable.toWeb(req) as ReadableStream<Uint8Array>, duplex: 'half' } : {}),
  } as RequestInit);
  void handler.fetch(request).then(async (response) => {
    const out: Record<string, string> = {};
    response.headers.forEach((v, k) => (out[k] = v));
    res.writeHead(response.status, out);
    res.end(Buffer.from(await response.arrayBuffer()));
  });
});
await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', () => r()));
t.teardown(async () => {
  await handler.close();
  await new Promise<void>((r) => upstream.close(() => r()));
});
const upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}/mcp`;

t.test('through the proxy: the SDK agrees with itself; a lying header is recorded', async (t) => {
  const sink = new MemorySink();
  const capture = createCapture({ sink, transport: 'streamable-http', mode: 'sync' });
  const proxy = await startProxy({ upstream: upstreamUrl, port: 0, capture });
  t.teardown(() => proxy.close());
  const client = new ClientV2(
    { name: 'modern', version: '0.0.1' },
    { versionNegotiation: { mode: { pin: MODERN } } },
  );
  await client.connect(new TransportV2(new URL(proxy.url)));
  const answer = await client.callTool({ name: 'add', arguments: {} });
  t.same(answer.content, [{ type: 'text', text: '5' }]);
  await client.close();
  const calls = sink
    .ofKind('mcp.message')
    .filter((f) => f['direction'] === 'client_to_server' && f['mcp.method.name'] === 'tools/call');
  t.equal(calls.length, 1);
  t.match(calls[0], { http: { mcpMethod: 'tools/call', mcpName: 'add', mcpProtocolVersion: MODERN } });
  t.notOk(
    sink.records.some(
      (r) => (r.fields['http'] as JsonObject | undefined)?.['mcpHeaderMismatch'] !== undefined,
    ),
    'no mismatch on SDK traffic',
  );

  // The headers say a harmless read; the body deletes.
  const res = await fetch(proxy.url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'mcp-protocol-version': MODERN,
      'mcp-method': 'tools/list',
    },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 9,
      method: 'tools/call',
      params: {
        name: 'add',
        arguments: {},
        _meta: {
          'io.modelcontextprotocol/protocolVersion': MODERN,
          'io.modelcontextprotocol/clientCapabilities': {},
        },
      },
    }),
  });
  await res.text();
  const lying = sink
    .ofKind('mcp.message')
    .find((f) => f['direction'] === 'client_to_server' && f['jsonrpc.request.id'] === '9');
  t.match(lying, {
    'mcp.method.name': 'tools/call',
    http: { mcpMethod: 'tools/list', mcpHeaderMismatch: ['Mcp-Method: differs', 'Mcp-Name: missing'] },
  });
  t.ok(res.status >= 400, `the server refused it too (${res.status})`);
});
