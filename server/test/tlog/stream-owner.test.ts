// A stream belongs to the emitter whose record opened it (DESIGN.md "Emitter administration"). Stream
// ids are public (every entry names its stream), so another registered emitter can sign a record for
// someone else's stream: it must be refused with STREAM_NOT_OWNED, recorded as an incident, and the
// owner's next record must still be accepted.
import t from 'tap';
import { generateKey, recordHash, signRecord } from '@vigil/client';
import { forEachStore } from '../../src/db/testing.js';
import { migrateToLatest, migrationsFolder } from '../../src/db/migrate.js';
import type { Database } from '../../src/db/schema.js';
import { buildApp } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { initLog } from '../../src/tlog/signer.js';
import { runAdminCommand } from '../../src/admin.js';

const ORIGIN = 'test.example/log';
const STREAM = '0a1b2c3d-1111-4222-8333-444455556666';
const RACE_STREAM = '0a1b2c3d-2222-4222-8333-444455556666';

type Rec = Record<string, unknown>;

function record(stream: string, seq: number, prev: Rec | undefined, extra: Rec = {}): Rec {
  return {
    v: 1,
    stream,
    seq,
    ...(prev ? { prev: recordHash(prev) } : {}),
    time: '2026-11-24T12:00:00.000Z',
    kind: seq === 0 ? 'stream.open' : 'mcp.message',
    ...extra,
  };
}

interface Answer {
  code?: string;
  entries?: { index: string }[];
  incidents?: { kind: string; emitter: string; stream: string; seq: string }[];
}

forEachStore(t, async (t, store) => {
  const { db } = await store.open<Database>();
  await migrateToLatest(db, migrationsFolder('log'));
  const logKey = generateKey(ORIGIN);
  await initLog(db, ORIGIN, logKey.signerKey);
  const owner = generateKey('owner');
  const intruder = generateKey('intruder');
  await runAdminCommand(db, { command: 'emitter add', args: ['owner', owner.verifierKey] });
  await runAdminCommand(db, { command: 'emitter add', args: ['intruder', intruder.verifierKey] });
  const config = loadConfig({}, { 'data-dir': store.dataDir, 'rate-address': '0' });

  // beforeCommit waits on `gate` while it is set: requests sent meanwhile queue up and go into the
  // next batch together, so an in-batch race is forced without sleeps.
  let gate: Promise<void> | undefined;
  let entered: (() => void) | undefined;
  const start = async () => {
    const app = await buildApp(config, {
      db,
      signerKey: logKey.signerKey,
      logger: false,
      hooks: {
        beforeCommit: async () => {
          entered?.();
          await gate;
        },
      },
    });
    await app.ready();
    return app;
  };
  let app = await start();
  t.teardown(() => app.close());
  const post = async (entries: unknown[]) => {
    const res = await app.inject({
      method: 'POST',
      url: '/v1/entries',
      headers: { 'content-type': 'application/json' },
      payload: JSON.stringify({ entries }),
    });
    return { status: res.statusCode, body: res.json() as Answer };
  };
  const by = (name: 'owner' | 'intruder', r: Rec) => ({
    emitter: name,
    record: r,
    sig: signRecord(r, (name === 'owner' ? owner : intruder).signerKey),
  });
  const incidents = async () =>
    ((await app.inject({ url: '/v1/incidents' })).json() as Answer).incidents ?? [];

  const r0 = record(STREAM, 0, undefined);
  const r1 = record(STREAM, 1, r0);
  t.equal((await post([by('owner', r0), by('owner', r1)])).status, 200);

  t.test("another emitter's record for the stream is refused and recorded", async (t) => {
    // The next seq, chained correctly to the owner's last record: only the signer differs.
    const hijack = await post([by('intruder', record(STREAM, 2, r1, { kind: 'forged' }))]);
    t.equal(hijack.status, 403);
    t.equal(hijack.body.code, 'STREAM_NOT_OWNED');
    // A taken seq with other bytes: refused for the same reason, not a conflict of the owner's.
    const taken = await post([by('intruder', record(STREAM, 1, r0, { kind: 'forged' }))]);
    t.equal(taken.status, 403);
    t.equal(taken.body.code, 'STREAM_NOT_OWNED');
    const found = (await incidents()).filter((i) => i.kind === 'stream_not_owned');
    t.same(
      found.map((i) => [i.emitter, i.stream, i.seq]),
      [
        ['intruder', STREAM, '1'],
        ['intruder', STREAM, '2'],
      ],
    );
  });

  t.test('the owner is never blocked', async (t) => {
    const r2 = record(STREAM, 2, r1);
    const ok = await post([by('owner', r2)]);
    t.equal(ok.status, 200);
    t.equal(ok.body.entries?.length, 1, 'sequenced as a new entry');
    // After a restart the owner comes from the store (the seq 0 entry), not from memory.
    await app.close();
    app = await start();
    const after = await post([by('intruder', record(STREAM, 3, r2))]);
    t.equal(after.body.code, 'STREAM_NOT_OWNED');
    t.equal((await post([by('owner', record(STREAM, 3, r2))])).status, 200);
  });

  t.test('a stream opened in the same batch is owned at once', async (t) => {
    let release!: () => void;
    gate = new Promise<void>((resolve) => (release = resolve));
    const inBatch = new Promise<void>((resolve) => (entered = resolve));
    // The first request holds the sequencer in beforeCommit; the next two then share one batch.
    const first = post([by('owner', record(STREAM, 4, record(STREAM, 3, record(STREAM, 2, r1))))]);
    await inBatch;
    // Each request is queued only after its signatures are checked: wait for each in turn, so the
    // batch holds the open first and the intruder's record second.
    const queued = async (n: number) => {
      for (let i = 0; i < 100_000 && app.vigil.sequencer.queueDepth < n; i++)
        await new Promise<void>((resolve) => setImmediate(resolve));
      t.equal(app.vigil.sequencer.queueDepth, n, `${n} queued`);
    };
    const open = record(RACE_STREAM, 0, undefined);
    const opened = post([by('owner', open)]);
    await queued(1);
    const hijack = post([by('intruder', record(RACE_STREAM, 1, open))]);
    await queued(2);
    entered = undefined;
    gate = undefined;
    release();
    t.equal((await first).status, 200);
    t.equal((await opened).status, 200);
    const refused = await hijack;
    t.equal(refused.status, 403);
    t.equal(refused.body.code, 'STREAM_NOT_OWNED');
    t.equal((await post([by('owner', record(RACE_STREAM, 1, open))])).status, 200);
  });
});
