// End to end, the attacks on `vigil mcp proxy` (the compiled CLI, sync mode, a real log): a GET whose
// body hides a POST tools/call (request smuggling onto the upstream's keep-alive connection), and
// bodies the sync gate once let through unlogged (a batch, gzip, UTF-16LE). The upstream is the SDK's
// own express app; its `runs` say what actually ran. Every call that ran is found in the log with
// `vigil search --tool touch`, its receipt verified; with the log down, none of them runs.
import * as fs from 'node:fs/promises';
import net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { gzipSync } from 'node:zlib';
import t from 'tap';
import { startExpressUpstream } from '../helpers/express-upstream.js';
import { startLog } from '../helpers/log.js';
import { registerEmitter, searchUntil, startProxy } from '../helpers/mcp.js';

const log = await startLog();
t.teardown(() => log.stop());
const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'vigil-mcp-proxy-attacks-'));
t.teardown(() => fs.rm(dir, { recursive: true, force: true }));
const reg = await registerEmitter(log, dir, 'mcp-proxy-attacks');
const upstream = await startExpressUpstream();
t.teardown(() => upstream.close());
const proxy = await startProxy(log, reg, upstream.url, path.join(dir, 'spool'), [
  '--mode',
  'sync',
  '--timeout',
  '2000',
]);
t.teardown(() => proxy.process.stop());
const proxyUrl = proxy.url;
const proxyPort = Number(new URL(proxyUrl).port);

const call = (note: string): string =>
  JSON.stringify({
    jsonrpc: '2.0',
    id: 5,
    method: 'tools/call',
    params: { name: 'touch', arguments: { note } },
  });

const post = async (headers: Record<string, string>, body: Buffer): Promise<string> => {
  const res = await fetch(proxyUrl, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      ...headers,
    },
    body,
  });
  return res.text();
};

/** Resolves once the log holds a client-to-server tools/call of `touch` for each note. */
const inLog = (notes: string[]) =>
  searchUntil(log, reg.policyFile, { tool: 'touch' }, (found) =>
    notes.every((note) =>
      found.some(
        (x) =>
          x.record['direction'] === 'client_to_server' &&
          x.record['messageType'] === 'request' &&
          JSON.stringify(x.record['message']).includes(JSON.stringify(note)),
      ),
    ),
  );

t.test('a GET whose body hides a POST tools/call: refused, nothing runs upstream', async (t) => {
  const body = call('smuggled');
  const hidden =
    'POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n' +
    `Accept: application/json, text/event-stream\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
  const response = await new Promise<string>((resolve, reject) => {
    const socket = net.connect(proxyPort, '127.0.0.1');
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', reject);
    socket.on('close', () => resolve(Buffer.concat(chunks).toString('latin1')));
    socket.end(
      `GET /mcp HTTP/1.1\r\nHost: proxy\r\nContent-Length: ${Buffer.byteLength(hidden)}\r\n\r\n${hidden}`,
    );
  });
  t.match(response, /^HTTP\/1\.1 400 [^]*BODY_NOT_ALLOWED/);
  t.match(await post({}, Buffer.from(call('after smuggling'))), /touched after smuggling/);
  t.same(upstream.runs, ['after smuggling'], 'only the legitimate call ran upstream');
  t.notOk(upstream.seen.includes('GET /mcp'), 'the GET itself was not forwarded');
  await inLog(['after smuggling']);
});

const variants: [string, Record<string, string>, (note: string) => Buffer][] = [
  ['batch', {}, (note) => Buffer.from(`[${call(note)}]`)],
  ['gzip', { 'content-encoding': 'gzip' }, (note) => gzipSync(Buffer.from(call(note)))],
  [
    'utf-16le',
    { 'content-type': 'application/json; charset=utf-16le' },
    (note) => Buffer.from(call(note), 'utf16le'),
  ],
];

t.test('sync: a batch, gzip and UTF-16LE tools/call wait for the log like any request', async (t) => {
  t.equal(await log.kill('SIGTERM'), 0, 'log stopped');
  for (const [name, headers, make] of variants) {
    const answer = await post(headers, make(`${name} while down`));
    t.match(answer, /audit log unavailable/, `${name}: refused while the log is down`);
  }
  t.notOk(
    upstream.runs.some((note) => note.endsWith('while down')),
    'nothing ran upstream while the log was down',
  );
  await log.restart();
  for (const [name, headers, make] of variants) {
    t.match(await post(headers, make(`${name} while up`)), `touched ${name} while up`, `${name}: ran`);
  }
  const found = await inLog(variants.map(([name]) => `${name} while up`));
  t.ok(found.length >= variants.length, 'each call is in the log as a tools/call of touch, receipt verified');
});
