// Request smuggling through the proxy: a GET (or DELETE, OPTIONS) carrying a body that holds a second
// HTTP request. Forwarded raw, without its own framing, the upstream reads that body as the next
// request on its keep-alive connection and runs a tools/call nobody recorded. The upstream is the
// SDK's own express app; `runs` and `seen` are the upstream's view of what ran and what arrived.
import net from 'node:net';
import t from 'tap';
import { openedOfKind } from './helpers/opened.js';
import { createCapture } from '../../src/mcp/capture.js';
import { MemorySink } from '../../src/mcp/memory-sink.js';
import { startProxy } from '../../src/mcp/proxy.js';
import type { AuditMode, JsonObject } from '../../src/mcp/types.js';
import { startExpressUpstream } from './helpers/express-upstream.js';

const upstream = await startExpressUpstream();
t.teardown(() => upstream.close());

const call = (id: number, note: string): string =>
  JSON.stringify({
    jsonrpc: '2.0',
    id,
    method: 'tools/call',
    params: { name: 'touch', arguments: { note } },
  });

/** The hidden request: a complete POST /mcp tools/call, as the upstream would parse it. */
const smuggled = (note: string): string => {
  const body = call(99, note);
  return (
    'POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n' +
    `Accept: application/json, text/event-stream\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`
  );
};

/** Sends raw bytes on a new connection and resolves with everything the proxy wrote back. */
function rawExchange(port: number, bytes: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', reject);
    socket.on('close', () => resolve(Buffer.concat(chunks).toString('latin1')));
    socket.end(bytes);
  });
}

/** A recorded tools/call of `touch` with this note, client to server. */
const recordedNotes = (sink: MemorySink): string[] =>
  openedOfKind(sink, 'mcp.message')
    .filter((f) => f['direction'] === 'client_to_server' && f['gen_ai.tool.name'] === 'touch')
    .map((f) =>
      String((((f['message'] as JsonObject)['params'] as JsonObject)['arguments'] as JsonObject)['note']),
    );

const legitCall = async (url: string, note: string): Promise<unknown> => {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
    body: call(1, note),
  });
  return res.json();
};

const frames = (method: string, path: string, note: string): [string, string][] => {
  const hidden = smuggled(note);
  const length = Buffer.byteLength(hidden);
  return [
    [
      'content-length',
      `${method} ${path} HTTP/1.1\r\nHost: proxy\r\nConnection: close\r\nContent-Length: ${length}\r\n\r\n${hidden}`,
    ],
    [
      'chunked',
      `${method} ${path} HTTP/1.1\r\nHost: proxy\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n` +
        `${length.toString(16)}\r\n${hidden}\r\n0\r\n\r\n`,
    ],
  ];
};

for (const mode of ['sync', 'spool'] as AuditMode[]) {
  for (const method of ['GET', 'DELETE', 'OPTIONS']) {
    t.test(`${mode}: a ${method} with a body hiding a POST tools/call`, async (t) => {
      const sink = new MemorySink();
      const capture = createCapture({ sink, transport: 'streamable-http', mode });
      const proxy = await startProxy({ upstream: upstream.url, port: 0, capture });
      t.teardown(() => proxy.close());
      const path = new URL(proxy.url).pathname;
      for (const [framing, bytes] of frames(method, path, `smuggled ${mode} ${method}`)) {
        const runsBefore = upstream.runs.length;
        const seenBefore = upstream.seen.length;
        const response = await rawExchange(proxy.port, bytes);
        t.match(response, /^HTTP\/1\.1 400 /, `${framing}: a body on ${method} is refused`);
        t.match(response, /BODY_NOT_ALLOWED/);
        // The upstream answers this one after anything it read earlier on the same connection.
        t.match(await legitCall(proxy.url, `legit ${mode} ${method} ${framing}`), {
          result: { content: [{ text: `touched legit ${mode} ${method} ${framing}` }] },
        });
        t.same(
          upstream.runs.slice(runsBefore),
          [`legit ${mode} ${method} ${framing}`],
          `${framing}: only the legitimate call ran upstream`,
        );
        t.same(upstream.seen.slice(seenBefore), [`POST ${path}`], `${framing}: the upstream saw one request`);
      }
      // Whatever ran upstream was recorded (the tool never ran unrecorded).
      const recorded = recordedNotes(sink);
      for (const note of upstream.runs.filter((n) => n.includes(`${mode} ${method}`))) {
        t.ok(recorded.includes(note), `recorded: ${note}`);
      }
    });
  }
}

t.test('bodiless GET and DELETE still pass through, each with its own framing', async (t) => {
  const sink = new MemorySink();
  const capture = createCapture({ sink, transport: 'streamable-http', mode: 'sync' });
  const proxy = await startProxy({ upstream: upstream.url, port: 0, capture });
  t.teardown(() => proxy.close());
  const seenBefore = upstream.seen.length;
  const get = await fetch(proxy.url, { headers: { accept: 'text/event-stream' } });
  t.equal(get.status, 405, "the upstream's answer to GET reaches the client");
  await get.arrayBuffer();
  const del = await fetch(proxy.url, { method: 'DELETE', headers: { 'content-length': '0' } });
  await del.arrayBuffer();
  t.same(upstream.seen.slice(seenBefore), ['GET /mcp', 'DELETE /mcp']);
  const requests = openedOfKind(sink, 'mcp.http.request');
  t.match(
    requests.map((f) => f['http']),
    [
      { method: 'GET', path: '/mcp' },
      { method: 'DELETE', path: '/mcp' },
    ],
    'every request forwarded without a message is recorded',
  );
});

t.test(
  'ambiguous framing (Content-Length and chunked, two lengths) is refused before any upstream',
  async (t) => {
    const sink = new MemorySink();
    const capture = createCapture({ sink, transport: 'streamable-http', mode: 'sync' });
    const proxy = await startProxy({ upstream: upstream.url, port: 0, capture });
    t.teardown(() => proxy.close());
    const hidden = smuggled('ambiguous');
    const length = Buffer.byteLength(hidden);
    const seenBefore = upstream.seen.length;
    for (const bytes of [
      `POST /mcp HTTP/1.1\r\nHost: proxy\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n` +
        `${length.toString(16)}\r\n${hidden}\r\n0\r\n\r\n`,
      `POST /mcp HTTP/1.1\r\nHost: proxy\r\nContent-Length: 2\r\nContent-Length: ${length + 2}\r\n\r\n{}${hidden}`,
    ]) {
      t.match(await rawExchange(proxy.port, bytes), /^HTTP\/1\.1 400 /);
    }
    t.same(upstream.seen.slice(seenBefore), [], 'nothing reached the upstream');
    t.notOk(upstream.runs.includes('ambiguous'));
  },
);
