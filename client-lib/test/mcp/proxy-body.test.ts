// Sync mode's gate against bodies that are not one plain UTF-8 JSON-RPC request: a batch holding a
// tools/call, a gzip body, a UTF-16LE body, a UTF-8 body with a byte order mark. The upstream is the
// SDK's own express app, which acts on all of them. With the log down none may run; with the log up
// each is recorded as the request it is (found by its tool) and runs. Unknown codings are refused,
// and a gzip bomb never expands past the body limit.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { gzipSync } from 'node:zlib';
import t from 'tap';
import { openedOfKind } from './helpers/opened.js';
import { createCapture } from '../../src/mcp/capture.js';
import { MemorySink } from '../../src/mcp/memory-sink.js';
import { startProxy } from '../../src/mcp/proxy.js';
import type { JsonObject } from '../../src/mcp/types.js';
import { startExpressUpstream } from './helpers/express-upstream.js';

const upstream = await startExpressUpstream();
t.teardown(() => upstream.close());
const sink = new MemorySink();
const capture = createCapture({ sink, transport: 'streamable-http', mode: 'sync', syncTimeoutMs: 2000 });
const proxy = await startProxy({ upstream: upstream.url, port: 0, capture, maxBodyBytes: 1024 * 1024 });
t.teardown(() => proxy.close());

const call = (note: string): JsonObject => ({
  jsonrpc: '2.0',
  id: 7,
  method: 'tools/call',
  params: { name: 'touch', arguments: { note } },
});

/** The body variants: headers and bytes of a tools/call of `touch` with `note`. */
const variants: [string, (note: string) => { headers: Record<string, string>; body: Buffer }][] = [
  ['batch', (note) => ({ headers: {}, body: Buffer.from(JSON.stringify([call(note)])) })],
  [
    'gzip',
    (note) => ({
      headers: { 'content-encoding': 'gzip' },
      body: gzipSync(Buffer.from(JSON.stringify(call(note)))),
    }),
  ],
  [
    'utf-16le',
    (note) => ({
      headers: { 'content-type': 'application/json; charset=utf-16le' },
      body: Buffer.from(JSON.stringify(call(note)), 'utf16le'),
    }),
  ],
  [
    'utf-8 bom',
    (note) => ({
      headers: {},
      body: Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(JSON.stringify(call(note)))]),
    }),
  ],
];

const post = async (headers: Record<string, string>, body: Buffer): Promise<Response> =>
  fetch(proxy.url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      ...headers,
    },
    body,
  });

const recordedCalls = (note: string): JsonObject[] =>
  openedOfKind(sink, 'mcp.message').filter(
    (f) =>
      f['direction'] === 'client_to_server' &&
      f['gen_ai.tool.name'] === 'touch' &&
      JSON.stringify(f['message']).includes(JSON.stringify(note)),
  );

for (const [name, make] of variants) {
  t.test(`${name}: refused while the log is down, recorded as a tools/call once it is up`, async (t) => {
    const down = `${name} while down`;
    sink.logDown = new Error('ECONNREFUSED');
    const refused = make(down);
    const res = await post(refused.headers, refused.body);
    const answer = JSON.stringify(await res.json());
    sink.logDown = undefined;
    t.match(answer, /audit log unavailable/, 'the client gets the JSON-RPC refusal');
    t.notOk(upstream.runs.includes(down), 'the tool did not run');

    const up = `${name} while up`;
    const sent = make(up);
    const ok = await post(sent.headers, sent.body);
    t.equal(ok.status, 200);
    t.match(JSON.stringify(await ok.json()), `touched ${up}`, 'the tool ran once the call was recorded');
    t.ok(upstream.runs.includes(up));
    t.match(
      recordedCalls(up),
      [
        {
          messageType: 'request',
          'mcp.method.name': 'tools/call',
          message: { params: { arguments: { note: up } } },
        },
      ],
      'recorded as the request it is, found by its tool',
    );
    const { 'client.port': clientPort, ...facts } = (recordedCalls(up)[0]?.['http'] ?? {}) as JsonObject;
    t.type(clientPort, 'number', 'the client port');
    t.same(
      facts,
      {
        method: 'POST',
        path: '/mcp',
        'client.address': '127.0.0.1',
        contentType: sent.headers['content-type'] ?? 'application/json',
        ...(sent.headers['content-encoding'] !== undefined
          ? { contentEncoding: sent.headers['content-encoding'] }
          : {}),
      },
      'the record names the encoding and charset the body came in',
    );
  });
}

t.test('unknown content codings and charsets are refused with a JSON-RPC error, not forwarded', async (t) => {
  const seenBefore = upstream.seen.length;
  const body = Buffer.from(JSON.stringify(call('never')));
  const refusedHeaders: Record<string, string>[] = [
    { 'content-encoding': 'zstd' },
    { 'content-encoding': 'gzip, gzip, gzip' },
    { 'content-type': 'application/json; charset=x-vigil-unknown' },
  ];
  for (const headers of refusedHeaders) {
    const res = await post(headers, body);
    t.equal(res.status, 415, JSON.stringify(headers));
    t.match(await res.json(), {
      jsonrpc: '2.0',
      id: null,
      error: { code: -32600, data: { vigil: /_UNSUPPORTED$/ } },
    });
  }
  const broken = await post({ 'content-encoding': 'gzip' }, body);
  t.equal(broken.status, 400, 'a body that is not gzip is refused');
  t.match(await broken.json(), { error: { data: { vigil: 'BODY_MALFORMED' } } });
  t.same(upstream.seen.slice(seenBefore), [], 'nothing reached the upstream');
  t.notOk(upstream.runs.includes('never'));
});

t.test('a gzip bomb does not expand past the body limit', async (t) => {
  const seenBefore = upstream.seen.length;
  const bomb = gzipSync(Buffer.alloc(64 * 1024 * 1024, 0x20));
  t.ok(bomb.length < 1024 * 1024, `${bomb.length} compressed bytes fit the 1 MiB limit`);
  const heapBefore = process.memoryUsage().arrayBuffers;
  const res = await post({ 'content-encoding': 'gzip' }, bomb);
  t.equal(res.status, 413);
  t.match(await res.json(), { error: { data: { vigil: 'BODY_TOO_LARGE' } } });
  t.ok(
    process.memoryUsage().arrayBuffers - heapBefore < 32 * 1024 * 1024,
    'the proxy did not hold the expanded body',
  );
  t.same(upstream.seen.slice(seenBefore), []);
});

t.test('a body past the limit is answered 413 and never forwarded', async (t) => {
  const seenBefore = upstream.seen.length;
  const res = await post({}, Buffer.alloc(3 * 1024 * 1024, 0x20));
  t.equal(res.status, 413);
  t.match(await res.json(), { code: 'BODY_TOO_LARGE' });
  t.same(upstream.seen.slice(seenBefore), []);
});

t.test('answers are asked for without a content coding, so the record is what the server said', async (t) => {
  const headersSeen: string[] = [];
  const plain = http.createServer((req, res) => {
    headersSeen.push(String(req.headers['accept-encoding']));
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"jsonrpc":"2.0","id":1,"result":{"said":"plainly"}}');
    });
  });
  await new Promise<void>((resolve) => plain.listen(0, '127.0.0.1', () => resolve()));
  t.teardown(() => new Promise<void>((resolve) => plain.close(() => resolve())));
  const own = new MemorySink();
  const p = await startProxy({
    upstream: `http://127.0.0.1:${(plain.address() as AddressInfo).port}/mcp`,
    port: 0,
    capture: createCapture({ sink: own, transport: 'streamable-http', mode: 'spool' }),
  });
  t.teardown(() => p.close());
  const res = await fetch(p.url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'accept-encoding': 'gzip, br' },
    body: '{"jsonrpc":"2.0","id":1,"method":"ping"}',
  });
  t.match(await res.json(), { result: { said: 'plainly' } });
  t.same(headersSeen, ['identity']);
  t.match(openedOfKind(own, 'mcp.message')[1], {
    messageType: 'result',
    message: { result: { said: 'plainly' } },
  });
});
