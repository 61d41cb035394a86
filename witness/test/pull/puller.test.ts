// Pull mode against a real HTTP log (test/fake-log.ts: checkpoint + tiles built with client-lib):
// cosigns as the log grows (across tile boundaries), posts cosignatures back, survives the log going
// down, and records verifiable evidence when the log is rewritten, forked or rolled back.
import t from 'tap';
import {
  base64Decode,
  bytesEqual,
  cosignerVerifierKey,
  openNote,
  parseCheckpoint,
  verifyConsistency,
  verifyCosignature,
} from '@vigil/client';
import { forEachStore } from '@vigil/store';
import { backoffMs } from '../../src/pull/puller.js';
import { openTestWitness, TestLog, WITNESS_KEY } from '../helpers.js';
import { eventually, FakeLogServer } from '../fake-log.js';

const WITNESS_VKEY = cosignerVerifierKey(WITNESS_KEY.signerKey);

t.test('backoff grows exponentially with jitter and is capped', async (t) => {
  t.equal(
    backoffMs(1, 100, 10_000, () => 0),
    100,
  );
  t.equal(
    backoffMs(1, 100, 10_000, () => 1),
    200,
  );
  t.equal(
    backoffMs(3, 100, 10_000, () => 1),
    800,
  );
  t.equal(
    backoffMs(30, 100, 10_000, () => 1),
    10_000,
  );
  t.equal(
    backoffMs(30, 100, 10_000, () => 0),
    5_000,
  );
});

forEachStore(t, async (t, testStore) => {
  const honest = new TestLog('example.com/pulled');
  honest.append(5);
  const server = new FakeLogServer(honest, [WITNESS_VKEY]);
  await server.listen();
  t.teardown(() => server.close());

  const witness = await openTestWitness(testStore, {
    pull: true,
    pullTiming: { refreshMs: 50, repostMs: 0 },
  });
  t.teardown(() => witness.close());
  await witness.store.addLog({
    origin: honest.origin,
    vkey: honest.vkey,
    url: server.url,
    pullIntervalMs: 100,
  });

  const witnessedSize = async () => (await witness.store.latest(honest.origin))?.size;
  const evidenceOf = async (kind: string) =>
    (await witness.store.listEvidence(honest.origin)).find((e) => e.kind === kind);

  await t.test('cosigns the first checkpoint and posts the cosignature to the log', async (t) => {
    await eventually('size 5 witnessed', async () => ((await witnessedSize()) === 5n ? true : undefined));
    const witnessed = await eventually('cosignature on the log', async () => {
      const res = await fetch(`${server.url}/checkpoint/witnessed`);
      return res.ok ? res.text() : undefined;
    });
    t.ok(verifyCosignature(witnessed, WITNESS_VKEY) > 0n);
    t.equal(parseCheckpoint(openNote(witnessed, [honest.vkey]).text).size, 5n);
  });

  await t.test('follows growth across tile boundaries with proofs computed from tiles', async (t) => {
    honest.append(300);
    await eventually('size 305', async () => ((await witnessedSize()) === 305n ? true : undefined));
    honest.append(65_536 - 305 + 7);
    await eventually(
      'size 65543',
      async () => ((await witnessedSize()) === 65_543n ? true : undefined),
      30_000,
    );
    const witnessed = await eventually('cosigned 65543 on the log', async () => {
      const res = await fetch(`${server.url}/checkpoint/witnessed`);
      return res.ok ? res.text() : undefined;
    });
    t.match(witnessed, /\n65543\n/);
  });

  await t.test('re-posts its cosignature when the log lost it', async (t) => {
    server.cosignatures.clear();
    const again = await eventually('re-posted cosignature', async () => {
      const res = await fetch(`${server.url}/checkpoint/witnessed`);
      return res.ok ? true : undefined;
    });
    t.equal(again, true, 'the log has our cosignature again');
  });

  await t.test('a log that is down is retried, not forgotten', async (t) => {
    server.down = true;
    honest.append(3);
    const refused = server.refused;
    await eventually('three refused polls', async () => (server.refused >= refused + 3 ? true : undefined));
    t.equal(await witnessedSize(), 65_543n, 'nothing cosigned while the log is down');
    server.down = false;
    await eventually(
      'size 65546 after recovery',
      async () => ((await witnessedSize()) === 65_546n ? true : undefined),
      30_000,
    );
    t.equal(await witnessedSize(), 65_546n, 'cosigned after the log came back');
  });

  await t.test(
    'a rewritten log (same key, different entry) is refused and recorded as evidence',
    async (t) => {
      const rewritten = new TestLog(honest.origin);
      rewritten.leaves = honest.leaves.map((h) => h);
      rewritten.leaves[2] = new Uint8Array(32).fill(0xee);
      rewritten.append(4);
      const old = await witness.store.latest(honest.origin);
      server.log = rewritten;
      const evidence = await eventually('inconsistent evidence', () => evidenceOf('inconsistent'));
      t.equal(await witnessedSize(), old?.size, 'the witness did not move');
      // Offline check with only the log key: both notes verify, the proof rebuilds the new root from a
      // prefix root that differs from the root the log signed at the old size.
      const oldCheckpoint = parseCheckpoint(openNote(evidence.oldNote, [honest.vkey]).text);
      const newCheckpoint = parseCheckpoint(openNote(evidence.newNote, [honest.vkey]).text);
      t.ok(evidence.prefixRoot);
      verifyConsistency(
        oldCheckpoint.size,
        newCheckpoint.size,
        evidence.prefixRoot!,
        newCheckpoint.root,
        evidence.proof,
      );
      t.notOk(bytesEqual(evidence.prefixRoot!, oldCheckpoint.root), 'the log rewrote its first entries');
      t.throws(() =>
        verifyConsistency(
          oldCheckpoint.size,
          newCheckpoint.size,
          oldCheckpoint.root,
          newCheckpoint.root,
          evidence.proof,
        ),
      );
      const served = await witness.app.inject({
        method: 'GET',
        url: `/v1/evidence?origin=${encodeURIComponent(honest.origin)}`,
      });
      const item = served.json().evidence.find((e: { kind: string }) => e.kind === 'inconsistent');
      t.equal(item.conclusive, true);
      t.same(base64Decode(item.prefixRoot), evidence.prefixRoot);
      t.notOk(
        server.posts.some((p) => p.startsWith(rewritten.checkpoint().split('\n\n')[0]!)),
        'never cosigned the rewrite',
      );
    },
  );

  await t.test('a fork at the witnessed size is recorded', async (t) => {
    const size = Number(await witnessedSize());
    server.size = size;
    await eventually('fork evidence', () => evidenceOf('fork'));
    t.equal(await witnessedSize(), BigInt(size));
  });

  await t.test('a smaller checkpoint than the cosigned one is recorded as rollback', async (t) => {
    server.log = honest;
    server.size = 10;
    const evidence = await eventually('rollback evidence', () => evidenceOf('rollback'));
    t.equal(evidence.newSize, 10n);
    t.equal(await witnessedSize(), 65_546n, 'never moves backwards');
  });
});
