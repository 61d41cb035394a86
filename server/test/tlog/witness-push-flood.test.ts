// Push witnessing under attack, against a real `vigil-witness` process. Anyone can send add-checkpoint
// for our origin: a flood of forged requests from another address must not make the log's own pushes
// fail. And a push that fails anyway (witness down, refusing) must be retried with backoff, so
// /checkpoint/witnessed catches up once the witness answers again.
import t, { type Test } from 'tap';
import { mkdtemp, rm } from 'node:fs/promises';
import { Agent, createServer, request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatCheckpoint, generateKey, sha256, signNote, utf8, verifyCosignature } from '@vigil/client';
import { forEachStore } from '../../src/db/testing.js';
import type { Database } from '../../src/db/schema.js';
import { buildApp } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { runAdminCommand } from '../../src/admin.js';
import { getCosignatures } from '../../src/db/repository.js';
import { WitnessPusher } from '../../src/tlog/witness-push.js';
import { WITNESS_MAIN, prepareLog, recordStream, spawnNode, stopChild } from '../helpers/process.js';

const WITNESS_NAME = 'witness.test/flooded';

/** init and serve a witness on its own embedded store; `addLog` trusts a log through the CLI. */
async function startWitness(
  t: Test,
): Promise<{ url: string; vkey: string; addLog(origin: string, vkey: string): Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'vigil-witness-'));
  const env = { VIGIL_DATA_DIR: dir, LOG_LEVEL: 'warn' };
  const init = spawnNode(WITNESS_MAIN, ['init', '--name', WITNESS_NAME], env);
  if ((await init.exited).code !== 0) throw new Error(`witness init failed: ${init.output()}`);
  const vkey = /^(witness\.test\/flooded\+\S+)$/m.exec(init.output())![1]!;
  const serve = spawnNode(WITNESS_MAIN, ['serve', '--port', '0', '--log-level', 'info'], env);
  // One teardown, in order: the witness stops its PostgreSQL before its directory goes.
  t.teardown(async () => {
    await stopChild(serve);
    await rm(dir, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 });
  });
  const m = await serve.waitFor(/Server listening at (http:\/\/127\.0\.0\.1:\d+)/);
  return {
    url: m[1]!,
    vkey,
    async addLog(origin, logVkey) {
      const add = spawnNode(WITNESS_MAIN, ['log', 'add', origin, logVkey], env);
      if ((await add.exited).code !== 0) throw new Error(`witness log add failed: ${add.output()}`);
    },
  };
}

/**
 * A loopback relay in front of the witness: forwards requests while `refusing` is false, else
 * answers 503 itself (the witness is down or overloaded). Counts what it refused.
 */
async function startRelay(target: string) {
  const relay = {
    refusing: false,
    refused: 0,
    url: '',
    close: async () => undefined as unknown,
  };
  const server = createServer((req, res) => {
    if (relay.refusing) {
      relay.refused += 1;
      req.resume();
      res.writeHead(503, { 'content-type': 'application/json' }).end('{"code":"DOWN","message":"down"}');
      return;
    }
    const upstream = httpRequest(`${target}${req.url ?? ''}`, { method: req.method, headers: req.headers });
    upstream.on('response', (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  relay.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  relay.close = () => {
    server.closeAllConnections();
    return new Promise((resolve) => server.close(resolve));
  };
  return relay;
}

/**
 * Sends `total` forged add-checkpoint requests for `origin` from 127.0.0.2 (another address than the
 * log's 127.0.0.1), `concurrency` at a time; resolves to the count of each status.
 */
async function flood(witnessUrl: string, origin: string, total: number, concurrency: number) {
  const impostor = generateKey(origin, sha256(utf8('impostor'))).signerKey;
  const text = formatCheckpoint({ origin, size: 1000n, root: sha256(utf8('forged')), extensions: [] });
  const body = `old 0\n\n${signNote(text, [impostor])}`;
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
  const statuses = new Map<number, number>();
  let sent = 0;
  const one = () =>
    new Promise<void>((resolve, reject) => {
      const req = httpRequest(`${witnessUrl}/add-checkpoint`, {
        method: 'POST',
        agent,
        localAddress: '127.0.0.2',
        headers: { 'content-type': 'text/plain; charset=utf-8' },
      });
      req.on('response', (res) => {
        res.resume();
        res.on('end', () => {
          statuses.set(res.statusCode!, (statuses.get(res.statusCode!) ?? 0) + 1);
          resolve();
        });
      });
      req.on('error', reject);
      req.end(body);
    });
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (sent < total) {
        sent += 1;
        await one();
      }
    }),
  );
  agent.destroy();
  return statuses;
}

const witness = await startWitness(t);

forEachStore(t, async (t, store) => {
  const origin = `test.example/flooded-${store.kind}`;
  const log = await prepareLog(store, origin);
  await witness.addLog(origin, log.vkey);
  const relay = await startRelay(witness.url);
  t.teardown(() => relay.close());
  const { db } = await store.open<Database>();
  await runAdminCommand(db, { command: 'witness add', args: [WITNESS_NAME, witness.vkey], url: relay.url });
  await runAdminCommand(db, { command: 'quorum', args: ['1'] });
  // The app's own pusher waits an hour between rounds: this test drives its own pusher.
  const config = loadConfig(
    {},
    { 'data-dir': store.dataDir, 'rate-address': '0', 'witness-interval': '3600000' },
  );
  const app = await buildApp(config, { db, logger: false });
  await app.ready();
  t.teardown(() => app.close());
  // The log begins with the operator's registry records (its own emitter.add and em1's), appended
  // at start: every size below is counted from the tree as it stands once they are committed.
  await app.vigil.sequencer.flush();
  const treeSize = async () => (await app.vigil.tlog.head())!.size;
  let size = await treeSize();
  let now = 1_000_000;
  const pusher = new WitnessPusher(app.vigil.tlog, app.log, 1000, {
    maxBackoffMs: 8000,
    clock: () => now,
    random: () => 1,
  });
  const stream = recordStream(log.emitterKey, '0b9f6a6e-3333-4333-8444-555566667777');
  const post = async (n: number) => {
    const res = await app.inject({
      method: 'POST',
      url: '/v1/entries',
      headers: { 'content-type': 'application/json' },
      payload: JSON.stringify({ entries: stream.next(n) }),
    });
    if (res.statusCode !== 200) throw new Error(`POST /v1/entries: ${res.statusCode} ${res.body}`);
    size += BigInt(n);
    const grown = await treeSize();
    if (grown !== size) throw new Error(`POST /v1/entries of ${n}: tree size ${grown}, expected ${size}`);
  };
  const witnessedSize = async () => {
    const res = await app.inject({ url: '/checkpoint/witnessed' });
    return res.statusCode === 200 ? res.body.split('\n')[1] : undefined;
  };

  await t.test('a failed push is retried after a bounded backoff until witnessed catches up', async (t) => {
    await post(2);
    relay.refusing = true;
    await pusher.pushOnce();
    t.equal(relay.refused, 1, 'the push was refused');
    t.equal(await witnessedSize(), undefined, 'nothing witnessed');
    relay.refusing = false;
    await pusher.pushOnce();
    t.equal(await witnessedSize(), undefined, 'no retry before the backoff (1 s) has passed');
    now += 1000;
    await pusher.pushOnce();
    t.equal(await witnessedSize(), String(size), 'the retry for the same size got it cosigned');
    t.same(
      (await getCosignatures(db, size)).map((c) => c.witness),
      [WITNESS_NAME],
    );
  });

  await t.test('backoff doubles per failure up to its cap, and success resets it', async (t) => {
    await post(1);
    relay.refusing = true;
    const waits: number[] = [];
    for (let i = 0; i < 6; i++) {
      const before = relay.refused;
      let waited = 0;
      while (relay.refused === before && waited <= 60_000) {
        await pusher.pushOnce();
        if (relay.refused === before) {
          now += 500;
          waited += 500;
        }
      }
      waits.push(waited);
    }
    t.same(waits, [0, 1000, 2000, 4000, 8000, 8000], 'retry waits (ms) with jitter fixed at its top');
    relay.refusing = false;
    now += 8000;
    await pusher.pushOnce();
    t.equal(await witnessedSize(), String(size));
    await post(1);
    await pusher.pushOnce();
    t.equal(await witnessedSize(), String(size), 'after a success the next size is pushed at once');
  });

  await t.test('a flood of forged add-checkpoint requests does not stop the push', async (t) => {
    const flooding = flood(witness.url, origin, 3000, 8);
    // The log keeps growing and pushing while the flood runs.
    for (let i = 0; i < 6; i++) {
      await post(1);
      await pusher.pushOnce();
      t.equal(await witnessedSize(), String(size), `size ${size} witnessed during the flood`);
    }
    const statuses = await flooding;
    t.equal(
      (statuses.get(403) ?? 0) + (statuses.get(429) ?? 0),
      3000,
      `forged: ${JSON.stringify([...statuses])}`,
    );
    t.ok((statuses.get(429) ?? 0) > 2500, 'the flooding address is refused');
    await post(1);
    await pusher.pushOnce();
    t.equal(await witnessedSize(), String(size), 'and after it');
    const cp = await app.inject({ url: '/checkpoint' });
    t.ok(verifyCosignature(cp.body, witness.vkey) > 0n);
  });
});
