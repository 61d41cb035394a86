// The witness store on both stores: compare-and-swap, never backwards, append-only tables.
import t from 'tap';
import { sql } from 'kysely';
import { forEachStore } from '@vigil/store';
import { migrateWitness, pendingWitnessMigrations } from '../../src/db/open.js';
import type { WitnessDatabase } from '../../src/db/schema.js';
import { createWitnessStore } from '../../src/db/store.js';
import { TestLog } from '../helpers.js';

forEachStore(t, async (t, testStore) => {
  const opened = await testStore.open<WitnessDatabase>();
  t.teardown(() => opened.close());
  t.same((await pendingWitnessMigrations(opened.db)).length, 1, 'one pending migration on a fresh store');
  await migrateWitness(opened.db);
  t.same(await pendingWitnessMigrations(opened.db), [], 'none after migrate');
  const store = createWitnessStore(opened.db);
  const log = new TestLog('example.com/log');
  await store.addLog({ origin: log.origin, vkey: log.vkey, url: 'http://127.0.0.1:1', pullIntervalMs: 250 });

  t.test('logs: add, duplicate, list, disable', async (t) => {
    await t.rejects(store.addLog({ origin: log.origin, vkey: log.vkey, url: null, pullIntervalMs: 5000 }), {
      code: 'LOG_EXISTS',
    });
    const logs = await store.listLogs();
    t.equal(logs.length, 1);
    t.equal(logs[0]?.url, 'http://127.0.0.1:1');
    t.equal(logs[0]?.pullIntervalMs, 250);
    t.equal(await store.disableLog('example.com/unknown'), false);
  });

  t.test('compare-and-swap moves only from the stored size', async (t) => {
    t.equal(await store.latest(log.origin), undefined, 'nothing cosigned yet');
    t.same(
      await store.getLogState(log.origin),
      { log: await store.getLog(log.origin), latest: undefined },
      'getLogState: the log at size 0',
    );
    t.equal(await store.getLogState('example.com/unknown'), undefined, 'getLogState: unknown origin');
    const next = (size: bigint) => ({
      size,
      root: new Uint8Array(32).fill(Number(size)),
      note: `note ${size}\n`,
    });
    t.equal(await store.compareAndSwap(log.origin, 1n, next(2n)), false, 'wrong old size');
    t.equal(await store.compareAndSwap(log.origin, 0n, next(2n)), true);
    t.equal((await store.latest(log.origin))?.size, 2n);
    t.same((await store.latest(log.origin))?.root, new Uint8Array(32).fill(2));
    // Ten writers from the same old size: exactly one wins, on either store.
    const results = await Promise.all(
      Array.from({ length: 10 }, (_, i) => store.compareAndSwap(log.origin, 2n, next(BigInt(3 + i)))),
    );
    t.equal(results.filter(Boolean).length, 1);
    const history = await opened.db.selectFrom('cosigned_checkpoints').select('tree_size').execute();
    t.equal(history.length, 2, 'every cosigned checkpoint is kept');
    const state = await store.getLogState(log.origin);
    t.same(state?.latest, await store.latest(log.origin), 'getLogState reads the same state as latest');
    t.ok((state?.latest?.size ?? 0n) > 2n);
    t.same(state?.log, await store.getLog(log.origin));
  });

  t.test(
    'concurrent compare-and-swaps of many origins share statements, each with its own outcome',
    async (t) => {
      const logs = Array.from({ length: 40 }, (_, i) => new TestLog(`example.com/group${i}`));
      for (const l of logs)
        await store.addLog({ origin: l.origin, vkey: l.vkey, url: null, pullIntervalMs: 1000 });
      const next = (size: bigint) => ({
        size,
        root: new Uint8Array(32).fill(Number(size)),
        note: `n ${size}\n`,
      });
      // Per origin: the right old size (wins), a second writer from the same size (loses), a wrong one.
      const outcomes = await Promise.all(
        logs.flatMap((l, i) => [
          store.compareAndSwap(l.origin, 0n, next(BigInt(i + 1))),
          store.compareAndSwap(l.origin, 0n, next(BigInt(i + 100))),
          store.compareAndSwap(l.origin, 1000n, next(BigInt(i + 200))),
        ]),
      );
      for (const [i, l] of logs.entries()) {
        t.same(outcomes.slice(3 * i, 3 * i + 3), [true, false, false], `${l.origin}: only the first moves`);
        t.equal((await store.latest(l.origin))?.size, BigInt(i + 1));
      }
      const history = await opened.db
        .selectFrom('cosigned_checkpoints')
        .select('origin')
        .where('origin', 'like', 'example.com/group%')
        .execute();
      t.equal(history.length, logs.length, 'one history row per move');
      // Concurrent state reads (grouped like the writes) each get their own origin's state.
      const states = await Promise.all([
        ...logs.map((l) => store.getLogState(l.origin)),
        store.getLogState('example.com/unknown'),
        store.getLogState(logs[3]!.origin),
      ]);
      for (const [i, l] of logs.entries()) {
        t.equal(states[i]?.log.origin, l.origin);
        t.equal(states[i]?.latest?.size, BigInt(i + 1), `${l.origin}: its own size`);
      }
      t.equal(states[logs.length], undefined, 'an unknown origin reads as undefined');
      t.equal(states[logs.length + 1]?.latest?.size, 4n, 'a repeated origin reads the same');
      // A statement that fails rejects every compare-and-swap in it and moves nothing.
      const bad = await Promise.allSettled([
        store.compareAndSwap(logs[0]!.origin, 1n, next(0n)),
        store.compareAndSwap(logs[1]!.origin, 2n, { ...next(5n), root: new Uint8Array(32) }),
      ]);
      t.equal((await store.latest(logs[0]!.origin))?.size, 1n, 'nothing moved backwards');
      t.equal(bad[0]!.status, 'rejected', 'moving backwards is refused by the database');
      // The other one either shared that statement (refused with it) or went in its own (moved).
      const other = bad[1]!;
      const moved = other.status === 'fulfilled' && other.value;
      t.equal((await store.latest(logs[1]!.origin))?.size, moved ? 5n : 2n, 'its state matches its answer');
      t.equal(await store.compareAndSwap(logs[2]!.origin, 3n, next(9n)), true, 'later statements go on');
    },
  );

  t.test('the database refuses to move backwards, delete or rewrite', async (t) => {
    await t.rejects(sql`update latest_checkpoints set tree_size = 1`.execute(opened.db), /may not move/);
    await t.rejects(sql`delete from latest_checkpoints`.execute(opened.db), /append-only/);
    await t.rejects(sql`delete from logs`.execute(opened.db), /append-only/);
    await t.rejects(sql`update cosigned_checkpoints set note = 'x'`.execute(opened.db), /append-only/);
    await t.rejects(sql`truncate cosigned_checkpoints cascade`.execute(opened.db), /append-only/);
    await store.addEvidence({
      origin: log.origin,
      kind: 'fork',
      source: 'push',
      oldSize: 2n,
      newSize: 2n,
      oldNote: 'a\n',
      newNote: 'b\n',
      proof: [new Uint8Array(32).fill(1)],
      prefixRoot: null,
    });
    await t.rejects(sql`update evidence set kind = 'x'`.execute(opened.db), /append-only/);
    await t.rejects(sql`delete from evidence`.execute(opened.db), /append-only/);
    const evidence = await store.listEvidence();
    t.equal(evidence.length, 1);
    t.same(evidence[0]?.proof, [new Uint8Array(32).fill(1)]);
  });

  t.test('disable keeps the state', async (t) => {
    t.equal(await store.disableLog(log.origin), true);
    t.equal((await store.getLog(log.origin))?.disabled, true);
    t.equal((await store.getLogState(log.origin))?.log.disabled, true);
    t.ok(((await store.latest(log.origin))?.size ?? 0n) > 2n);
  });
});
