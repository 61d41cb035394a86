// A lying log against a pull witness: a /checkpoint body that never ends, a tile body that never ends,
// a /checkpoint that stalls after its headers, and a 302 from /checkpoint to another loopback service.
// Each poll must fail fast with a bounded read (or a timeout), never reach the redirect target, and
// the witness must keep serving and keep cosigning an honest log polled at the same time.
import t from 'tap';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { cosignerVerifierKey, hexEncode, sha256, utf8, verifyCosignature } from '@vigil/client';
import { forEachStore } from '@vigil/store';
import { openTestWitness, testConfig, TestLog, WITNESS_KEY } from '../helpers.js';
import { eventually, FakeLogServer } from '../fake-log.js';

const WITNESS_VKEY = cosignerVerifierKey(WITNESS_KEY.signerKey);
/** What a lying response may stream at most (so the unfixed witness fails the test without an OOM). */
const STREAM_CAP = 64 * 1024 * 1024;
const TIMEOUT_MS = 1000;

/** An HTTP server on loopback whose handler is a plain function; counts requests by path. */
class Loopback {
  readonly server: Server;
  readonly requests: string[] = [];
  url = '';

  constructor(handler: (req: IncomingMessage, res: ServerResponse) => void) {
    this.server = createServer((req, res) => {
      this.requests.push(req.url ?? '');
      handler(req, res);
    });
  }

  async listen(): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise((resolve) => this.server.close(resolve));
  }
}

/**
 * Streams `A`s for as long as the client reads (up to STREAM_CAP), honouring backpressure. Returns the
 * record whose `bytes` counts what the socket accepted; a client that stops reading closes it.
 */
function streamForever(res: ServerResponse, type: string): { bytes: number } {
  const sent = { bytes: 0 };
  const chunk = Buffer.alloc(64 * 1024, 0x41);
  res.writeHead(200, { 'content-type': type });
  const pump = () => {
    while (sent.bytes < STREAM_CAP && !res.destroyed) {
      sent.bytes += chunk.length;
      if (!res.write(chunk)) {
        res.once('drain', pump);
        return;
      }
    }
  };
  pump();
  return sent;
}

forEachStore(t, async (t, testStore) => {
  const endless = new TestLog('liar.example/endless-checkpoint', 11);
  const tiles = new TestLog('liar.example/endless-tile', 12);
  const stall = new TestLog('liar.example/stall', 13);
  const redirect = new TestLog('liar.example/redirect', 14);
  endless.append(3);
  tiles.append(300);
  stall.append(3);
  redirect.append(3);
  let tileLogSize = 5;

  // The service a redirect points at: it would answer a valid checkpoint, so following the redirect
  // would even get it cosigned.
  const target = new Loopback((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' }).end(redirect.checkpoint());
  });
  await target.listen();
  t.teardown(() => target.close());

  const streams: { path: string; sent: { bytes: number } }[] = [];
  const liar = new Loopback((req, res) => {
    const path = req.url ?? '';
    if (path === '/endless/checkpoint') {
      streams.push({ path, sent: streamForever(res, 'text/plain; charset=utf-8') });
    } else if (path === '/tiles/checkpoint') {
      res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' }).end(tiles.checkpoint(tileLogSize));
    } else if (path.startsWith('/tiles/tile/')) {
      streams.push({ path, sent: streamForever(res, 'application/octet-stream') });
    } else if (path === '/stall/checkpoint') {
      res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' });
      res.write(stall.origin);
    } else if (path === '/redirect/checkpoint') {
      res.writeHead(302, { location: `${target.url}/checkpoint` }).end();
    } else {
      res.writeHead(404).end();
    }
  });
  await liar.listen();
  t.teardown(() => liar.close());

  const honest = new TestLog('honest.example/log', 15);
  honest.append(5);
  const honestServer = new FakeLogServer(honest, [WITNESS_VKEY]);
  await honestServer.listen();
  t.teardown(() => honestServer.close());

  const witness = await openTestWitness(
    testStore,
    { pull: true, pullTiming: { refreshMs: 50, repostMs: 0 } },
    testConfig({ WITNESS_PULL_TIMEOUT_MS: String(TIMEOUT_MS), WITNESS_PULL_MAX_BACKOFF_MS: '400' }),
  );
  t.teardown(() => witness.close());
  const add = (log: TestLog, url: string) =>
    witness.store.addLog({ origin: log.origin, vkey: log.vkey, url, pullIntervalMs: 100 });
  await add(honest, honestServer.url);
  await add(endless, `${liar.url}/endless`);
  await add(tiles, `${liar.url}/tiles`);
  await add(stall, `${liar.url}/stall`);
  await add(redirect, `${liar.url}/redirect`);
  // Measured once the store is open (an embedded store allocates its own memory when it opens).
  const rssBefore = process.memoryUsage().rss;
  const puller = witness.app.puller!;
  const pollError = async (log: TestLog): Promise<Error> => {
    const record = (await witness.store.getLog(log.origin))!;
    try {
      await puller.pollOnce(record);
    } catch (err) {
      return err as Error;
    }
    throw new Error(`poll of ${log.origin} did not fail`);
  };

  await t.test('an endless /checkpoint body is cut off after 16 KiB', async (t) => {
    const started = Date.now();
    const err = await pollError(endless);
    t.match(err, { code: 'RESPONSE_TOO_LARGE', message: /checkpoint .* limit of 16384/ });
    t.ok(Date.now() - started < TIMEOUT_MS, 'refused before the timeout, not by it');
    const served = streams.filter((s) => s.path === '/endless/checkpoint');
    t.ok(served.length > 0);
    await eventually('streams closed', () =>
      served.every((s) => s.sent.bytes < STREAM_CAP / 4) ? true : undefined,
    );
    const most = Math.max(...served.map((s) => s.sent.bytes));
    t.ok(most < STREAM_CAP / 4, `each body stopped after ${most} bytes, not ${STREAM_CAP}`);
    t.equal(await witness.store.latest(endless.origin), undefined);
  });

  await t.test('an endless tile body is cut off after one full tile', async (t) => {
    await eventually('size 5 of the tile log cosigned', async () =>
      (await witness.store.latest(tiles.origin))?.size === 5n ? true : undefined,
    );
    tileLogSize = 300;
    const err = await pollError(tiles);
    t.match(err, { code: 'RESPONSE_TOO_LARGE', message: /tile .* limit of 8192/ });
    const served = streams.filter((s) => s.path.startsWith('/tiles/tile/'));
    t.ok(served.length > 0, 'tiles were requested');
    const most = Math.max(...served.map((s) => s.sent.bytes));
    t.ok(most < STREAM_CAP / 4, `each tile body stopped after ${most} bytes, not ${STREAM_CAP}`);
    t.equal((await witness.store.latest(tiles.origin))?.size, 5n, 'nothing cosigned past 5');
  });

  await t.test('a /checkpoint that stalls after its headers times out', async (t) => {
    const started = Date.now();
    const err = await pollError(stall);
    const elapsed = Date.now() - started;
    t.match(String(err.name), /TimeoutError|AbortError/, String(err));
    t.ok(elapsed >= TIMEOUT_MS - 50 && elapsed < TIMEOUT_MS + 3000, `timed out after ${elapsed} ms`);
  });

  await t.test('a redirect from /checkpoint is not followed', async (t) => {
    const err = await pollError(redirect);
    t.match(String(err.cause ?? err), /redirect/i);
    t.ok(liar.requests.includes('/redirect/checkpoint'), 'the redirect was answered by the log');
    t.same(target.requests, [], 'no request reached the redirect target');
    t.equal(await witness.store.latest(redirect.origin), undefined, 'nothing cosigned');
  });

  await t.test('meanwhile the witness keeps serving and cosigning the honest log', async (t) => {
    // The background loops keep polling every liar (with backoff) while the honest log grows.
    honest.append(300);
    await eventually('honest size 305', async () =>
      (await witness.store.latest(honest.origin))?.size === 305n ? true : undefined,
    );
    const monitoring = await witness.app.inject({
      method: 'GET',
      url: `/${hexEncode(sha256(utf8(honest.origin)))}/checkpoint`,
    });
    t.equal(monitoring.statusCode, 200);
    t.ok(verifyCosignature(monitoring.body, WITNESS_VKEY) > 0n);
    const health = await fetch(`${await witness.app.listen({ port: 0, host: '127.0.0.1' })}/healthz`);
    t.equal(health.status, 200);
    await eventually('every liar polled again in the background', () =>
      ['/endless/checkpoint', '/stall/checkpoint', '/redirect/checkpoint'].every(
        (p) => liar.requests.filter((r) => r === p).length >= 3,
      )
        ? true
        : undefined,
    );
    t.same(target.requests, [], 'still no request reached the redirect target');
    const most = Math.max(...streams.map((s) => s.sent.bytes));
    t.ok(most < STREAM_CAP / 4, `no lying body was read past ${most} bytes`);
    const growth = process.memoryUsage().rss - rssBefore;
    t.ok(growth < 128 * 1024 * 1024, `rss grew by ${Math.round(growth / 1048576)} MiB`);
  });
});
