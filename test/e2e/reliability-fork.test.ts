// Forks and replays.
//  1. A log that shows different checkpoints to two witnesses: two logs with the same key and origin
//     and different entries (a split view); witness A (a real witness app) cosigns one, witness B the
//     other. A client that holds both cosigned checkpoints detects the fork with the CheckpointStore
//     (same size: two roots; larger size: the consistency proof computed from the tiles fails);
//     a witness shown the other branch at its size refuses and keeps the two notes as evidence.
//  2. A checkpoint rolled back and shown to a client: the CheckpointStore throws (rollback).
//  3. On the real log (in process, embedded store): a replayed record (same stream, seq and bytes) gets its
//     original receipt and no new entry; a reordered record (seq out of order) is 409 SEQ_CONFLICT with
//     the expected seq; a different record at a taken seq is 409 and recorded as an incident.
import { randomUUID } from 'node:crypto';
import t from 'tap';
import {
  CheckpointConflictError,
  CheckpointStore,
  cosignerVerifierKey,
  generateKey,
  parsePolicy,
  verifyCosignature,
} from '@vigil/client';
import { useNodeCrypto } from '@vigil/client/node';
import {
  buildApp as buildLogApp,
  createTestStore,
  loadConfig as loadLogConfig,
  type AppDeps,
} from '@vigil/server';
import { buildApp, createWitnessStore, loadConfig, migrateWitness } from '@vigil/witness';
import { MemoryLog, Rng } from '../helpers/reliability-fuzz.js';
import {
  ackedFrom,
  checkLogInvariants,
  initStoreLog,
  injectGet,
  RecordStream,
  type PostAnswer,
} from '../helpers/reliability-log.js';

useNodeCrypto();

const ORIGIN = 'fork.test/log';

/** A real witness app in process (embedded store) that follows ORIGIN with `vkey`. */
async function startWitness(name: string, logVkey: string) {
  const testStore = await createTestStore('embedded');
  const opened = await testStore.open();
  await migrateWitness(opened.db as never);
  const store = createWitnessStore(opened.db as never);
  await store.addLog({ origin: ORIGIN, vkey: logVkey, url: null, pullIntervalMs: 5000 });
  const key = generateKey(name);
  const app = await buildApp(loadConfig({ LOG_LEVEL: 'silent' }), { store, signerKey: key.signerKey });
  await app.ready();
  return {
    name,
    vkey: cosignerVerifierKey(key.signerKey),
    store,
    /** Sends a checkpoint of `log` (from its witnessed size `old`); returns status and body. */
    async add(log: MemoryLog, old: number, size = log.size) {
      const res = await app.inject({
        method: 'POST',
        url: '/add-checkpoint',
        headers: { 'content-type': 'text/plain; charset=utf-8' },
        payload: log.addCheckpointBody(old, size),
      });
      return { status: res.statusCode, body: res.body };
    },
    async close() {
      await app.close();
      await opened.close();
      await testStore.cleanup();
    },
  };
}

/** A ReadTile over a MemoryLog's leaves (level 0 only: these trees are small). */
const tilesOf = (log: MemoryLog) => (level: number, index: bigint, width: number) => {
  if (level !== 0) throw new Error('only level-0 tiles in this test');
  const start = Number(index) * 256;
  return Uint8Array.from(Buffer.concat(log.leaves.slice(start, start + width)));
};

t.test('a split view shown to two witnesses is caught by a client holding both', async (t) => {
  // Same seed, same key and origin; the same first 3 leaves, then different ones.
  const log1 = new MemoryLog(ORIGIN, new Rng(7));
  const log2 = new MemoryLog(ORIGIN, new Rng(7));
  t.equal(log1.vkey, log2.vkey, 'one log key signs both branches');
  const shared = new Rng(1);
  log1.append(3, shared);
  log2.leaves.push(...log1.leaves);
  log1.append(2, new Rng(2));
  log2.append(5, new Rng(3));
  const a = await startWitness('fork.test/witness-a', log1.vkey);
  const b = await startWitness('fork.test/witness-b', log1.vkey);
  t.teardown(async () => {
    await a.close();
    await b.close();
  });
  const ra = await a.add(log1, 0, 5);
  const rb = await b.add(log2, 0, 5);
  t.equal(ra.status, 200, 'witness A cosigns branch 1 at size 5');
  t.equal(rb.status, 200, 'witness B cosigns branch 2 at size 5');
  const noteA = `${log1.note(5)}${ra.body}`;
  const noteB = `${log2.note(5)}${rb.body}`;
  verifyCosignature(noteA, a.vkey);
  verifyCosignature(noteB, b.vkey);
  const policy = parsePolicy(
    `log ${log1.vkey}\nwitness A ${a.vkey}\nwitness B ${b.vkey}\ngroup any-one any A B\nquorum any-one\n`,
  );

  // Same size, two roots.
  const client = new CheckpointStore(policy);
  await client.update(noteA, tilesOf(log1));
  const fork = await client.update(noteB, tilesOf(log2)).then(
    () => undefined,
    (err: unknown) => err,
  );
  t.ok(fork instanceof CheckpointConflictError, 'the client refuses the second branch');
  t.equal((fork as CheckpointConflictError).kind, 'fork', 'as a fork');
  t.equal((fork as CheckpointConflictError).code, 'PROOF_INVALID');
  t.equal((fork as CheckpointConflictError).previousNote, noteA, 'with both notes as evidence');
  t.equal((fork as CheckpointConflictError).presentedNote, noteB);

  // Larger size on the other branch: the consistency proof from the presented log's tiles fails.
  const rb8 = await b.add(log2, 5, 8);
  t.equal(rb8.status, 200, 'witness B cosigns branch 2 at size 8');
  const noteB8 = `${log2.note(8)}${rb8.body}`;
  const fork8 = await client.update(noteB8, tilesOf(log2)).then(
    () => undefined,
    (err: unknown) => err,
  );
  t.ok(fork8 instanceof CheckpointConflictError && fork8.kind === 'fork', 'size 8 of the other branch: fork');
  t.equal((await client.latest(ORIGIN))?.note, noteA, 'the client keeps the checkpoint it verified');

  // The quorum of both witnesses cannot be met by either branch.
  const both = parsePolicy(
    `log ${log1.vkey}\nwitness A ${a.vkey}\nwitness B ${b.vkey}\ngroup both all A B\nquorum both\n`,
  );
  for (const [name, note] of [
    ['branch 1', noteA],
    ['branch 2', noteB],
  ] as const) {
    const err = await new CheckpointStore(both).update(note, tilesOf(log1)).then(
      () => undefined,
      (e: unknown) => e as { code?: string },
    );
    t.ok(err !== undefined, `${name} alone does not meet a quorum of both witnesses (${err?.code})`);
  }

  // Witness A shown branch 2 at its own size: refuses, keeps evidence.
  const cross = await a.add(log2, 5, 5);
  t.equal(cross.status, 422, `witness A refuses branch 2 at size 5: 422 PROOF_INVALID`);
  const evidence = await a.store.listEvidence(ORIGIN);
  t.equal(evidence.length, 1, 'witness A stored the two notes as evidence');
  t.equal(evidence[0]?.kind, 'fork');
});

t.test('a rolled-back checkpoint shown to a client is refused', async (t) => {
  const log = new MemoryLog(ORIGIN, new Rng(11));
  log.append(10, new Rng(12));
  const policy = parsePolicy(`log ${log.vkey}\nquorum none\n`);
  const client = new CheckpointStore(policy);
  await client.update(log.note(4), tilesOf(log));
  await client.update(log.note(10), tilesOf(log));
  const err = await client.update(log.note(6), tilesOf(log)).then(
    () => undefined,
    (e: unknown) => e,
  );
  t.ok(err instanceof CheckpointConflictError, 'CheckpointStore throws');
  t.equal((err as CheckpointConflictError).kind, 'rollback');
  t.equal((err as CheckpointConflictError).code, 'SIZE_INVALID');
  t.equal((await client.latest(ORIGIN))?.checkpoint.size, 10n, 'the client keeps size 10');
});

t.test('replayed and reordered records on the real log', async (t) => {
  t.setTimeout(180_000);
  const store = await createTestStore('embedded');
  t.teardown(() => store.cleanup());
  const emitter = 'fork.test/emitter';
  const key = generateKey(emitter);
  const vkey = await initStoreLog(store, ORIGIN, [{ name: emitter, vkey: key.verifierKey }]);
  const handle = await store.open();
  const app = await buildLogApp(loadLogConfig({}, { 'data-dir': store.dataDir }), {
    db: handle.db as unknown as AppDeps['db'],
    logger: false,
  });
  await app.ready();
  t.teardown(() => app.close());
  const post = (entries: unknown[]) =>
    app.inject({
      method: 'POST',
      url: '/v1/entries',
      headers: { 'content-type': 'application/json' },
      payload: JSON.stringify({ entries }),
    });
  const stream = new RecordStream(emitter, key.signerKey, randomUUID());
  const first = stream.next(3);
  const res = await post(first);
  t.equal(res.statusCode, 200);
  const answer = res.json() as PostAnswer;
  const acked = ackedFrom(first, answer);

  const replay = await post([first[1]]);
  t.equal(replay.statusCode, 200, 'a replayed record is accepted idempotently');
  const r = replay.json() as PostAnswer;
  t.equal(r.entries[0]?.index, answer.entries[1]?.index, 'with its original index');
  t.equal(r.entries[0]?.leafHash, answer.entries[1]?.leafHash, 'and its original leaf hash');
  t.equal(r.checkpoint.split('\n')[1], answer.checkpoint.split('\n')[1], 'and no new entry (same size)');

  const [s3, s4] = stream.next(2);
  const reordered = await post([s4]);
  t.equal(reordered.statusCode, 409, 'seq 4 before seq 3: 409');
  t.equal(reordered.json().code, 'SEQ_CONFLICT');
  t.equal(reordered.json().expected, '3', 'with the expected seq');
  const swapped = await post([s4, s3]);
  t.equal(swapped.statusCode, 409, 'seq 4, 3 in one request: 409');

  const forged = new RecordStream(emitter, key.signerKey, first[0]!.record.stream as string).next(2)[1]!;
  const conflict = await post([{ ...forged, record: forged.record }]);
  t.equal(conflict.statusCode, 409, 'a different record at taken seq 1: 409');
  const incidents = (await app.inject({ url: '/v1/incidents' })).json() as { incidents: { kind: string }[] };
  t.same(
    incidents.incidents.map((i) => i.kind),
    ['conflicting_resubmission'],
    'recorded as an incident',
  );

  const ok = await post([s3, s4]);
  t.equal(ok.statusCode, 200, 'in order they are sequenced');
  acked.push(...ackedFrom([s3!, s4!], ok.json() as PostAnswer));
  const state = await checkLogInvariants(injectGet(app), vkey, acked, [answer.checkpoint]);
  // Five records plus the operator's two registry records (itself and the emitter).
  t.equal(state.checkpoint.size, 7n, 'seven entries: nothing duplicated by the replay');
});
