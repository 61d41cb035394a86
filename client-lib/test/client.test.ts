// LogClient's reader side (contract "Log HTTP API"): the reader token travels only as
// `Authorization: Bearer` on the reader endpoints (never in a URL, never in an error, never on a
// redirect), a 401 names the way to give one, and every read is bounded in bytes. Against the in-test
// log (test/helpers/fake-log.ts) and, for redirects and oversized answers, a bare HTTP server.
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import t from 'tap';
import { LogClient, LogRequestError, READER_REQUIRED_MESSAGE, openSealed, sealValue } from '../src/index.js';
import { useNodeCrypto } from '../src/node.js';
import { startFakeLog } from './helpers/fake-log.js';

useNodeCrypto();

const TOKEN = 'vigil_rt_' + 'Q'.repeat(43);
const salt = (n: number) => new Uint8Array(16).fill(n);

/** A server whose handler the test chooses; records every request's url and authorization. */
async function bareServer(
  t: { teardown(fn: () => unknown): void },
  handler: (req: http.IncomingMessage, res: http.ServerResponse) => void,
) {
  const seen: { url: string; authorization: string | undefined }[] = [];
  const server = http.createServer((req, res) => {
    seen.push({ url: req.url ?? '', authorization: req.headers.authorization });
    handler(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`, seen };
}

t.test('the token goes in the Authorization header of reader requests only, never in a URL', async (t) => {
  const log = await startFakeLog();
  t.teardown(() => log.close());
  log.readers.add(TOKEN);
  const a = sealValue({ secret: 'account 42' }, salt(1));
  log.sealed.set(a.ref.$sealed.sha256, a.bytes);
  log.appendRaw([
    new TextEncoder().encode(
      JSON.stringify({
        emitter: 'e',
        peer: 'p',
        received: new Date().toISOString(),
        record: { kind: 'k', v: 1, payload: a.ref },
        sig: 'x',
        v: 1,
      }),
    ),
  ]);
  const client = new LogClient(log.url, { readerToken: TOKEN });
  await client.checkpoint();
  await client.logInfo();
  await client.readEntryBundle(0n, 1);
  const plain = await client.entry(0n);
  t.equal(plain.sealed, undefined, 'a public entry read opens nothing');
  const opened = await client.entry(0n, { open: true });
  t.same(openSealed(a.ref, opened.sealed!.get(a.ref.$sealed.sha256)!), { secret: 'account 42' });
  const range = await client.sealedRange(0n, 1n);
  t.same([...range.sealed.keys()], [a.ref.$sealed.sha256]);
  const one = await client.sealed(a.ref.$sealed.sha256, a.ref.$sealed.size);
  t.ok('bytes' in one && Buffer.from(one.bytes).equals(Buffer.from(a.bytes)));
  const found = await client.search({}, { open: true });
  t.equal(found.results.length, 1);
  t.equal(found.sealed?.size, 1);

  for (const r of log.authorizations) t.notMatch(r.url, TOKEN.slice(9), `no token in ${r.url}`);
  const withToken = log.authorizations.filter((r) => r.authorization !== undefined).map((r) => r.url);
  t.same(
    withToken,
    [
      '/v1/entries/0?open=1',
      '/v1/sealed?start=0&end=1',
      `/v1/sealed/${a.ref.$sealed.sha256}`,
      '/v1/search?open=1',
    ],
    'only the reader endpoints carry it',
  );
  for (const r of log.authorizations)
    if (r.authorization !== undefined) t.equal(r.authorization, `Bearer ${TOKEN}`);
});

t.test('a 401 says how to give a token, and never shows the token', async (t) => {
  const log = await startFakeLog();
  t.teardown(() => log.close());
  log.readers.add('vigil_rt_someone-else');
  const hex = 'ab'.repeat(32);
  for (const [what, client, refused] of [
    ['no token', new LogClient(log.url), false],
    ['a revoked token', new LogClient(log.url, { readerToken: TOKEN }), true],
  ] as const) {
    for (const read of [
      () => client.sealed(hex),
      () => client.sealedRange(0n, 1n),
      () => client.search({ emitter: 'x' }),
    ]) {
      const err = (await read().then(
        () => undefined,
        (e: unknown) => e,
      )) as LogRequestError;
      t.ok(err instanceof LogRequestError, what);
      t.equal(err.status, 401);
      t.equal(err.code, 'READER_REQUIRED');
      t.match(err.message, READER_REQUIRED_MESSAGE);
      t.equal(err.message.includes('refused'), refused, `${what}: says whether a token was refused`);
      t.notMatch(err.message, TOKEN.slice(9));
      t.notMatch(JSON.stringify(err.body), TOKEN.slice(9));
    }
  }
  t.equal(READER_REQUIRED_MESSAGE, 'this log needs a reader token (--reader-token or VIGIL_READER_TOKEN)');
});

t.test('a reader request does not follow a redirect (the token stays with the log)', async (t) => {
  const elsewhere = await bareServer(t, (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end('{"sealed":{},"erased":{}}');
  });
  const log = await bareServer(t, (_req, res) => {
    res.writeHead(302, { location: `${elsewhere.url}v1/sealed?start=0&end=1` });
    res.end();
  });
  const client = new LogClient(log.url, { readerToken: TOKEN });
  await t.rejects(client.sealedRange(0n, 1n), { code: 'NETWORK_ERROR' });
  t.equal(log.seen[0]?.authorization, `Bearer ${TOKEN}`);
  t.same(elsewhere.seen, [], 'the other host saw nothing');
});

t.test('reads are bounded in bytes', async (t) => {
  const big = 'x'.repeat(200_000);
  const server = await bareServer(t, (req, res) => {
    if (req.url?.startsWith('/v1/sealed/')) {
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      res.end(big);
    } else if (req.url?.startsWith('/v1/sealed')) {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ sealed: {}, erased: {}, pad: big }));
    } else if (req.url === '/v1/log') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{"origin":"o","vkey":"k","pad":"');
      // streams without end: the read must stop at the bound
      const push = (): void => {
        if (res.destroyed) return;
        if (res.write('y'.repeat(65536))) setImmediate(push);
        else res.once('drain', push);
      };
      push();
    } else {
      res.writeHead(404);
      res.end();
    }
  });
  const client = new LogClient(server.url, { readerToken: TOKEN, maxResponseBytes: 1024 * 1024 });
  await t.rejects(client.sealed('cd'.repeat(32), 1000), { code: 'RESPONSE_TOO_LARGE' });
  await t.rejects(client.sealedRange(0n, 1n, { maxBytes: 10_000 }), { code: 'RESPONSE_TOO_LARGE' });
  await t.rejects(client.logInfo(), { code: 'RESPONSE_TOO_LARGE' });
});

t.test('malformed sealed answers are refused', async (t) => {
  let body = '';
  const server = await bareServer(t, (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(body);
  });
  const client = new LogClient(server.url, { readerToken: TOKEN });
  const hex = 'ef'.repeat(32);
  for (const [desc, b] of [
    ['S not base64', { sealed: { [hex]: 'not base64!' } }],
    ['S non-canonical base64', { sealed: { [hex]: 'QR==' } }],
    ['name not hex', { sealed: { ['EF'.repeat(32)]: 'QQ==' } }],
    ['erasure index not decimal', { erased: { [hex]: '07' } }],
    ['erased not an object', { erased: [hex] }],
  ] as const) {
    body = JSON.stringify(b);
    await t.rejects(client.sealedRange(0n, 1n), { code: 'RESPONSE_MALFORMED' }, desc);
  }
  body = JSON.stringify({ sealed: { [hex]: 'QQ==' }, erased: { ['01'.repeat(32)]: '7' } });
  const ok = await client.sealedRange(0n, 1n);
  t.same([...ok.sealed.get(hex)!], [65]);
  t.equal(ok.erased.get('01'.repeat(32)), 7n);
  t.throws(() => new LogClient(server.url, { readerToken: 'two words' }), { code: 'READER_TOKEN_INVALID' });
  await t.rejects(client.sealedRange(0n, 1001n), RangeError);
});
