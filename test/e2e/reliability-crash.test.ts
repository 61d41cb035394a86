// Crashes at each step of a sequencer cycle, in-process on the store under test (embedded PostgreSQL, or Postgres).
// For each fault hook (afterEntries, afterNodes, afterSign, beforeCommit, afterCommit) the test
// acknowledges some records, then makes the hook fail on the next batch:
//   - inside the transaction (the first four): the hook throws, which is what the database does with
//     the transaction of a process that dies there (rolled back); the request is not acknowledged;
//   - after the commit: the hook blocks, the database handle is closed under it (the process is gone
//     before it could answer), then the hook is released.
// Then the app and the store are closed and reopened (a restart) and the test checks: the sequencer
// starts (full verification of the stored tree), every acknowledged record is at its index exactly
// once, the unacknowledged batch is all there (after commit) or not at all (before), the stored tree
// matches the newest checkpoint, and every stored checkpoint is consistent with every other
// (consecutive pairs, each against the newest, and random pairs; proofs computed from the tiles).
// Finally the emitter retries the unacknowledged batch: it is sequenced exactly once.
import t, { type Test } from 'tap';
import { bytesEqual, generateKey, openNote, parseCheckpoint } from '@vigil/client';
import { useNodeCrypto } from '@vigil/client/node';
import { buildApp, forEachStore, loadConfig, type AppDeps, type OpenDatabase } from '@vigil/server';
import {
  ackedFrom,
  checkLogInvariants,
  initStoreLog,
  injectGet,
  RecordStream,
  type Acked,
  type PostAnswer,
  type Submission,
} from '../helpers/reliability-log.js';

useNodeCrypto();

const ORIGIN = 'crash.test/log';
const EMITTER = 'crash.test/emitter';
const HOOKS = ['afterEntries', 'afterNodes', 'afterSign', 'beforeCommit', 'afterCommit'] as const;
type HookName = (typeof HOOKS)[number];

/** The columns this test reads directly. */
interface Tables {
  checkpoints: { tree_size: bigint; root_hash: Uint8Array; note: string };
  tree_heads: { tree_size: bigint; note: string };
  entries: { leaf_index: bigint; stream: string; seq: bigint };
}

class Crash extends Error {}

forEachStore(t, async (t, store) => {
  t.setTimeout(240_000);
  const key = generateKey(EMITTER);
  const vkey = await initStoreLog(store, ORIGIN, [{ name: EMITTER, vkey: key.verifierKey }]);
  const streams = [
    new RecordStream(EMITTER, key.signerKey, '0b7e4c1a-2f3d-4e5a-8b6c-7d8e9f0a1b2c'),
    new RecordStream(EMITTER, key.signerKey, '1c8f5d2b-3a4e-4f6b-9c7d-8e9fa0b1c2d3'),
  ];
  const acked: Acked[] = [];
  const notes: string[] = [];
  const config = loadConfig({}, { 'data-dir': store.dataDir });

  // The armed fault: which hook fires on the next batch, and how it fails.
  let armed: HookName | undefined;
  let reached: (() => void) | undefined;
  let release: Promise<void> | undefined;
  const fire = (name: HookName) => async () => {
    if (armed !== name) return;
    armed = undefined;
    if (name !== 'afterCommit') throw new Crash(`crash at ${name}`);
    reached?.();
    await release;
  };
  const hooks: NonNullable<AppDeps['hooks']> = Object.fromEntries(HOOKS.map((h) => [h, fire(h)]));

  const open = async () => {
    const handle: OpenDatabase<Tables> = await store.open<Tables>();
    const app = await buildApp(config, {
      db: handle.db as unknown as AppDeps['db'],
      hooks,
      logger: false,
    });
    await app.ready();
    return { handle, app };
  };
  type Running = Awaited<ReturnType<typeof open>>;
  const post = (r: Running, subs: Submission[]) =>
    r.app.inject({
      method: 'POST',
      url: '/v1/entries',
      headers: { 'content-type': 'application/json' },
      payload: JSON.stringify({ entries: subs }),
    });
  /** Posts and requires an acknowledgement; remembers what was acknowledged and the checkpoint. */
  const submit = async (r: Running, subs: Submission[]): Promise<Acked[]> => {
    const res = await post(r, subs);
    if (res.statusCode !== 200) throw new Error(`POST: ${res.statusCode} ${res.body}`);
    const answer = res.json() as PostAnswer;
    const a = ackedFrom(subs, answer);
    acked.push(...a);
    notes.push(answer.checkpoint);
    return a;
  };
  const batch = (a: number, b: number) => [...streams[0]!.next(a), ...streams[1]!.next(b)];

  /** The restart checks; returns the (stream, seq) keys of the entries stored. */
  const check = async (t: Test, r: Running, what: string): Promise<Set<string>> => {
    t.equal(
      r.app.vigil.sequencer.state,
      'active',
      `${what}: the sequencer starts (full check of the stored tree)`,
    );
    const db = r.handle.db;
    const stored = await db.selectFrom('checkpoints').select(['tree_size', 'root_hash', 'note']).execute();
    for (const c of stored) {
      const cp = parseCheckpoint(openNote(c.note, [vkey]).text);
      if (cp.size !== BigInt(c.tree_size) || !bytesEqual(cp.root, c.root_hash))
        t.fail(`${what}: stored checkpoint ${c.tree_size} does not match its note`);
    }
    const head = await db.selectFrom('tree_heads').select(['tree_size', 'note']).executeTakeFirstOrThrow();
    const newest = stored.reduce((m, c) => (BigInt(c.tree_size) > BigInt(m.tree_size) ? c : m));
    t.equal(head.note, newest.note, `${what}: the tree head is the newest checkpoint`);
    const rows = await db.selectFrom('entries').select(['leaf_index', 'stream', 'seq']).execute();
    t.equal(
      BigInt(rows.length),
      BigInt(head.tree_size),
      `${what}: as many entry rows as the checkpoint size`,
    );
    const state = await checkLogInvariants(
      injectGet(r.app),
      vkey,
      acked,
      stored.map((c) => c.note).concat(notes),
    );
    t.ok(
      state.pairsChecked > 0,
      `${what}: ${acked.length} acknowledged records present once, tree matches checkpoint ${state.checkpoint.size}, ` +
        `${stored.length} stored checkpoints, ${state.pairsChecked} pairs consistent`,
    );
    return new Set(rows.map((row) => `${row.stream} ${row.seq}`));
  };
  const keysOf = (subs: Submission[]) =>
    subs.map((s) => `${String(s.record.stream)} ${String(s.record.seq)}`);

  let r = await open();
  t.teardown(async () => {
    await r.app.close().catch(() => undefined);
  });
  for (const hook of HOOKS) {
    await t.test(`crash at ${hook}`, async (t) => {
      // Acknowledged work first; the second request fills past a tile boundary now and then.
      await submit(r, batch(40, 30));
      await submit(r, batch(90, 70));
      const lost = batch(25, 15);
      armed = hook;
      if (hook !== 'afterCommit') {
        const res = await post(r, lost);
        t.ok(res.statusCode >= 500, `${hook}: the failed batch is not acknowledged (${res.statusCode})`);
        t.equal(armed, undefined, `${hook}: the hook fired`);
        await r.app.close();
        await r.handle.close();
      } else {
        const hit = new Promise<void>((resolve) => (reached = resolve));
        let letGo!: () => void;
        release = new Promise<void>((resolve) => (letGo = resolve));
        const answer = post(r, lost);
        await hit;
        // The process is gone after the commit, before answering: its database connection closes.
        await r.handle.close();
        letGo();
        await answer; // whatever it says now came after the crash: not counted as acknowledged
        await r.app.close();
      }
      r = await open();
      const keys = await check(t, r, `after a crash at ${hook}`);
      const present = keysOf(lost).filter((k) => keys.has(k)).length;
      if (hook === 'afterCommit') t.equal(present, lost.length, `${hook}: the committed batch is all there`);
      else t.equal(present, 0, `${hook}: the rolled-back batch left nothing (all or nothing)`);
      // The emitter retries what it never saw acknowledged: exactly once in the log.
      const retried = await submit(r, lost);
      if (hook === 'afterCommit') {
        const size = BigInt(keys.size);
        t.ok(
          retried.every((a) => a.index < size),
          `${hook}: the retry gets the original indices (duplicates, no new entries)`,
        );
      }
      await check(t, r, `after the retry of the ${hook} batch`);
    });
  }
  t.ok(acked.length > 256, `the tree crossed a tile boundary (${acked.length} records)`);
});
