// The client's network address on every HTTP exchange through the real proxy (OTel `client.address`,
// `client.port`): the TCP peer, and `X-Forwarded-For` (first hop) only with `trustProxy`.
import http from 'node:http';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import t from 'tap';
import { createCapture } from '../../src/mcp/capture.js';
import { MemorySink } from '../../src/mcp/memory-sink.js';
import { startProxy } from '../../src/mcp/proxy.js';
import type { JsonObject } from '../../src/mcp/types.js';
import { freePort, startEverythingHttp } from './helpers/everything.js';

const upstream = await startEverythingHttp();
t.teardown(() => upstream.stop());

async function proxied(trustProxy: boolean) {
  const sink = new MemorySink();
  const capture = createCapture({ sink, transport: 'streamable-http', mode: 'sync' });
  const proxy = await startProxy({ upstream: upstream.url, port: 0, capture, trustProxy });
  return { sink, proxy };
}

const httpOf = (f: JsonObject): JsonObject => (f['http'] ?? {}) as JsonObject;

/** Runs an SDK client session that claims `forwardedFor`; returns every record's http facts. */
async function session(proxyUrl: string, sink: MemorySink, forwardedFor: string): Promise<JsonObject[]> {
  const client = new Client({ name: 'address', version: '0.0.1' });
  const transport = new StreamableHTTPClientTransport(new URL(proxyUrl), {
    requestInit: { headers: { 'x-forwarded-for': forwardedFor } },
  });
  await client.connect(transport);
  await client.listTools();
  await transport.terminateSession();
  await client.close();
  return sink.records.map((r) => httpOf(r.fields)).filter((h) => h['method'] !== undefined);
}

t.test('without --trust-proxy: the TCP peer, whatever X-Forwarded-For claims', async (t) => {
  const { sink, proxy } = await proxied(false);
  t.teardown(() => proxy.close());
  const facts = await session(proxy.url, sink, '203.0.113.7');
  t.ok(facts.length >= 6, `${facts.length} records with http facts`);
  for (const h of facts) {
    t.equal(h['client.address'], '127.0.0.1');
    t.type(h['client.port'], 'number');
    t.notOk('network.peer.address' in h);
  }
  t.notOk(JSON.stringify(sink.records).includes('203.0.113.7'), 'the claimed address is not recorded');
});

t.test('with --trust-proxy: the first X-Forwarded-For hop, the peer beside it', async (t) => {
  const { sink, proxy } = await proxied(true);
  t.teardown(() => proxy.close());
  const facts = await session(proxy.url, sink, '203.0.113.7, 198.51.100.2');
  t.ok(facts.length >= 6);
  for (const h of facts) {
    t.equal(h['client.address'], '203.0.113.7');
    t.notOk('client.port' in h, 'a forwarded address carries no port');
    t.equal(h['network.peer.address'], '127.0.0.1');
    t.type(h['network.peer.port'], 'number');
  }
});

t.test('with --trust-proxy: a first hop that is not an IP address is ignored', async (t) => {
  const { sink, proxy } = await proxied(true);
  t.teardown(() => proxy.close());
  for (const claim of ['unknown, 203.0.113.7', '<script>', '']) {
    sink.records.length = 0;
    const facts = await session(proxy.url, sink, claim);
    t.ok(facts.length > 0);
    t.ok(
      facts.every((h) => h['client.address'] === '127.0.0.1' && !('network.peer.address' in h)),
      `claim ${JSON.stringify(claim)}: the peer`,
    );
  }
});

t.test('client.port is the port the client connected from', async (t) => {
  const { sink, proxy } = await proxied(false);
  t.teardown(() => proxy.close());
  const localPort = await freePort();
  const status = await new Promise<number>((resolve, reject) => {
    const req = http.request(proxy.url, { method: 'GET', agent: false, localPort }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end();
  });
  t.ok(status >= 400, `a GET without a session is refused (${status})`);
  const facts = sink.records.map((r) => httpOf(r.fields));
  t.ok(facts.length >= 2, 'the request and its answer');
  for (const h of facts) t.match(h, { 'client.address': '127.0.0.1', 'client.port': localPort });
});
