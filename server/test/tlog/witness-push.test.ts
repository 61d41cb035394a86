// Push witnesses against a real `vigil-witness` process: add-checkpoint, the 409 resend with the right
// old size and proof, stored cosignatures, /checkpoint, /checkpoint/witnessed and witnessed receipts.
import t, { type Test } from 'tap';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  formatEntry,
  generateKey,
  parsePolicy,
  verifyCosignature,
  verifyReceipt,
  type Entry,
} from '@vigil/client';
import { forEachStore } from '../../src/db/testing.js';
import type { Database } from '../../src/db/schema.js';
import { buildApp } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { runAdminCommand } from '../../src/admin.js';
import { getCosignatures } from '../../src/db/repository.js';
import {
  SERVER_MAIN,
  WITNESS_MAIN,
  prepareLog,
  recordStream,
  serverEnv,
  spawnNode,
  stopChild,
} from '../helpers/process.js';

const WITNESS_NAME = 'witness.test/w1';

/** init and serve a witness on its own embedded store; `addLog` trusts a log with the CLI while it runs. */
async function startWitness(
  t: Test,
): Promise<{ url: string; vkey: string; addLog(origin: string, vkey: string): Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'vigil-witness-'));
  const env = { VIGIL_DATA_DIR: dir, LOG_LEVEL: 'info' };
  const init = spawnNode(WITNESS_MAIN, ['init', '--name', WITNESS_NAME], env);
  const { code } = await init.exited;
  if (code !== 0) throw new Error(`witness init failed: ${init.output()}`);
  const vkey = /^(witness\.test\/w1\+\S+)$/m.exec(init.output())![1]!;
  const serve = spawnNode(WITNESS_MAIN, ['serve', '--port', '0'], env);
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

// One witness process for both stores; each store's log has its own origin.
const witness = await startWitness(t);

forEachStore(t, async (t, store) => {
  const origin = `test.example/log-${store.kind}`;
  const log = await prepareLog(store, origin);
  await witness.addLog(origin, log.vkey);
  // Configure it with the CLI, as an operator would (before this process opens the store, so the CLI
  // starts the embedded PostgreSQL for its own duration).
  const args = ['witness', 'add', WITNESS_NAME, witness.vkey, '--url', witness.url, '--quorum', '1'];
  const cli = spawnNode(SERVER_MAIN, args, serverEnv(store));
  t.equal((await cli.exited).code, 0, `vigil-server ${args.join(' ')}: ${cli.output()}`);
  const { db } = await store.open<Database>();
  t.match(await runAdminCommand(db, { command: 'witness list', args: [] }), witness.url);
  const config = loadConfig({}, { 'data-dir': store.dataDir, 'rate-address': '0' });
  const stream = recordStream(log.emitterKey, '0b9f6a6e-2222-4333-8444-555566667777');
  const open = async () => {
    const app = await buildApp(config, { db, logger: false });
    await app.ready();
    return app;
  };
  const post = async (app: Awaited<ReturnType<typeof open>>, n: number) => {
    const res = await app.inject({
      method: 'POST',
      url: '/v1/entries',
      headers: { 'content-type': 'application/json' },
      payload: JSON.stringify({ entries: stream.next(n) }),
    });
    if (res.statusCode !== 200) throw new Error(`POST /v1/entries: ${res.statusCode} ${res.body}`);
  };

  let app = await open();
  t.teardown(() => app.close());

  t.test('no witnessed checkpoint before the first push', async (t) => {
    // Entries 0 and 1 are the operator's registry records; these two make size 4.
    await post(app, 2);
    const res = await app.inject({ url: '/checkpoint/witnessed' });
    t.equal(res.statusCode, 404);
    t.equal(res.json().code, 'NO_WITNESSED_CHECKPOINT');
    const receipt = await app.inject({ url: '/v1/receipt/0?witnessed=1' });
    t.equal(receipt.statusCode, 404);
  });

  t.test('push: add-checkpoint, cosignature stored and served', async (t) => {
    await app.vigil.pusher.pushOnce();
    const cos = await getCosignatures(db, 4n);
    t.same(
      cos.map((c) => c.witness),
      [WITNESS_NAME],
      'cosignature for size 4 stored',
    );
    const cp = await app.inject({ url: '/checkpoint' });
    t.equal(cp.statusCode, 200);
    t.ok(verifyCosignature(cp.body, witness.vkey) > 0n, '/checkpoint carries the cosignature');
    const witnessed = await app.inject({ url: '/checkpoint/witnessed' });
    t.equal(witnessed.statusCode, 200);
    t.equal(witnessed.body, cp.body);
  });

  t.test('witnessed receipt verifies under a policy requiring the witness', async (t) => {
    const res = await app.inject({ url: '/v1/receipt/1?witnessed=1' });
    t.equal(res.statusCode, 200, res.body);
    const entry = (await app.inject({ url: '/v1/entries/1' })).json() as { entry: Entry };
    const bytes = formatEntry(entry.entry);
    const policy = parsePolicy(`log ${log.vkey}\nwitness w1 ${witness.vkey}\nquorum w1\n`);
    t.equal(verifyReceipt(res.body, bytes, policy).index, 1n);
    const w2 = generateKey('witness.test/w2').verifierKey;
    const other = parsePolicy(`log ${log.vkey}\nwitness w1 ${witness.vkey}\nwitness w2 ${w2}\nquorum w2\n`);
    t.throws(() => verifyReceipt(res.body, bytes, other), { code: 'QUORUM_NOT_MET' });
  });

  t.test('409: a restarted log resends with the witness size and a consistency proof', async (t) => {
    // A new app has a new pusher that does not know the witness is at size 4: it sends old 0.
    await app.close();
    app = await open();
    await post(app, 3);
    await app.vigil.pusher.pushOnce();
    const cos = await getCosignatures(db, 7n);
    t.same(
      cos.map((c) => c.witness),
      [WITNESS_NAME],
      'cosignature for size 7 stored after the 409',
    );
    const status = await fetch(`${witness.url}/v1/witness`);
    const body = (await status.json()) as { logs: { origin: string; size: string }[] };
    t.equal(body.logs.find((l) => l.origin === origin)?.size, '7', 'the witness moved to size 7');
    const witnessed = await app.inject({ url: '/checkpoint/witnessed' });
    t.ok(witnessed.body.startsWith(`${origin}\n7\n`), 'witnessed checkpoint is at size 7');
    // Nothing new: a second round sends nothing and stores nothing.
    await app.vigil.pusher.pushOnce();
    t.equal((await getCosignatures(db, 7n)).length, 1);
  });
});
