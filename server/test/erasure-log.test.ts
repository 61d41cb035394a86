// Erasure through the real log (DESIGN.md "Readers and sealed payloads", "Erasure"): sealed values
// arrive with their entries through POST /v1/entries, `erase` removes them, the log appends the
// log.erasure record (operator emitter, with its index), a reader then gets 410 ERASED naming that
// index, and the tree, receipts and signatures still verify. Retention does the same for old values.
import { randomBytes, randomUUID } from 'node:crypto';
import t from 'tap';
import { sql } from 'kysely';
import {
  base64Encode,
  formatEntry,
  generateKey,
  hexEncode,
  operatorNameFor,
  parsePolicy,
  recordHash,
  sealValue,
  sha256,
  signRecord,
  verifyReceipt,
  verifyRecordSignature,
  type Entry,
} from '@vigil/client';
import { forEachStore } from '../src/db/testing.js';
import { migrateToLatest, migrationsFolder } from '../src/db/migrate.js';
import type { Database } from '../src/db/schema.js';
import { buildApp } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { initLog } from '../src/tlog/signer.js';
import { runAdminCommand } from '../src/admin.js';
import { eventually } from './helpers/process.js';
import { markerHits } from './helpers/marker.js';

const ORIGIN = 'erasure-log.test/log';
const OPERATOR = operatorNameFor(ORIGIN);

forEachStore(t, async (t, store) => {
  const { db } = await store.open<Database>();
  await migrateToLatest(db, migrationsFolder('log'));
  const logKey = generateKey(ORIGIN);
  await initLog(db, ORIGIN, logKey.signerKey);
  const em = generateKey('em1');
  await runAdminCommand(db, { command: 'emitter add', args: ['em1', em.verifierKey] });
  const token = (await runAdminCommand(db, { command: 'reader add', args: ['auditor'] })).split('\n').at(-1)!;
  const config = loadConfig({}, { 'data-dir': store.dataDir, 'rate-address': '0' });
  const app = await buildApp(config, { db, signerKey: logKey.signerKey, logger: false });
  await app.ready();
  await app.vigil.sequencer.flush();
  t.teardown(() => app.close());
  const policy = parsePolicy(`log ${logKey.verifierKey}\nquorum none\n`);
  const operatorVkey = app.vigil.tlog.operator.vkey;
  const auth = { authorization: `Bearer ${token}` };

  const stream = randomUUID();
  let prev: Record<string, unknown> | undefined;
  let seq = 0;
  /** Submits one record per session, each with one sealed value holding a fresh marker. */
  const submit = async (sessions: string[]) => {
    const values = [];
    const entries = [];
    for (const session of sessions) {
      const marker = `MARKER${randomBytes(12).toString('hex')}`;
      const sealed = sealValue({ text: `secret ${marker}` }, randomBytes(16));
      const record = {
        v: 1,
        stream,
        seq: seq++,
        ...(prev ? { prev: recordHash(prev) } : {}),
        time: new Date().toISOString(),
        kind: 'mcp.message',
        session,
        message: { jsonrpc: '2.0', id: seq, result: sealed.ref },
      };
      prev = record;
      entries.push({
        emitter: 'em1',
        record,
        sig: signRecord(record, em.signerKey),
        blobs: { [sealed.ref.$sealed.sha256]: base64Encode(sealed.bytes) },
      });
      values.push({ hex: sealed.ref.$sealed.sha256, marker });
    }
    const res = await app.inject({
      method: 'POST',
      url: '/v1/entries',
      headers: { 'content-type': 'application/json' },
      payload: JSON.stringify({ entries }),
    });
    t.equal(res.statusCode, 200, res.body.slice(0, 500));
    const indices = (res.json() as { entries: { index: string }[] }).entries.map((e) => BigInt(e.index));
    return values.map((v, i) => ({ ...v, index: indices[i]! }));
  };
  const entryBundle = async (index: bigint) =>
    (await app.inject({ url: `/v1/entries/${index}` })).json() as { entry: Entry; receipt: string };
  const sealedAnswer = (hex: string) => app.inject({ url: `/v1/sealed/${hex}`, headers: auth });
  /** Waits until the log appended the action's record; checks it as an operator record. */
  const appendedRecord = async (actionId: bigint) => {
    const index = await eventually(
      async () => {
        const row = await db
          .selectFrom('operator_actions')
          .select('record_index')
          .where('id', '=', actionId)
          .executeTakeFirstOrThrow();
        return row.record_index ?? undefined;
      },
      30_000,
      `the record of action ${actionId}`,
    );
    const { entry, receipt } = await entryBundle(index);
    t.equal(entry.emitter, OPERATOR, 'signed by the operator emitter');
    t.doesNotThrow(
      () => verifyRecordSignature(entry.record, entry.sig, operatorVkey),
      'its signature verifies',
    );
    t.equal(verifyReceipt(receipt, formatEntry(entry), policy).index, index, 'its receipt verifies');
    return { index, record: entry.record };
  };
  const actionIdOf = (out: string) => BigInt(/log\.erasure action (\d+)/.exec(out)![1]!);

  await t.test(
    'erase --session: the record is appended and the values answer 410 with its index',
    async (t) => {
      const gone = await submit(['e2e', 'e2e', 'keep']);
      const [a, b, kept] = gone as [(typeof gone)[0], (typeof gone)[0], (typeof gone)[0]];
      t.equal((await sealedAnswer(a.hex)).statusCode, 200, 'stored and served to the reader before');
      t.ok((await markerHits(db, b.marker)).length > 0, 'the marker is in the database before');
      const checkpointBefore = (await app.inject('/checkpoint')).body;

      const out = await runAdminCommand(db, {
        command: 'erase',
        args: [],
        options: { session: 'e2e', reason: 'data subject request 9', by: 'dpo' },
      });
      t.match(out, /^erased 2 sealed values; log\.erasure action \d+/);
      // What the admin NOTIFY does in a running log.
      app.vigil.sequencer.syncOperatorActions();
      const { index, record } = await appendedRecord(actionIdOf(out));
      t.match(record, {
        kind: 'log.erasure',
        reason: 'data subject request 9',
        by: 'dpo',
        target: { session: 'e2e' },
        count: 2,
        commitments: [a.hex, b.hex].sort(),
      });

      for (const v of [a, b]) {
        const res = await sealedAnswer(v.hex);
        t.equal(res.statusCode, 410, `${v.hex} is gone`);
        t.match(res.json(), { code: 'ERASED', index: String(index) });
        t.same(await markerHits(db, v.marker), [], 'no table or column holds its marker');
      }
      t.equal((await sealedAnswer(kept.hex)).statusCode, 200, 'the value of another session stays');
      const opened = await app.inject({ url: `/v1/entries/${a.index}?open=1`, headers: auth });
      t.match(opened.json(), { erased: { [a.hex]: String(index) } }, 'an opened entry lists it as erased');

      // The tree commits to the commitments, not the values: old receipts and proofs still verify.
      const { entry, receipt } = await entryBundle(a.index);
      t.equal(verifyReceipt(receipt, formatEntry(entry), policy).index, a.index, 'the entry still verifies');
      const oldSize = BigInt(checkpointBefore.split('\n')[1]!);
      const proof = await app.inject(`/v1/proof/consistency?from=${oldSize}&to=${index + 1n}`);
      t.equal(proof.statusCode, 200, 'the tree after the erasure extends the one before');

      t.equal(
        await runAdminCommand(db, {
          command: 'erase',
          args: [],
          options: { session: 'e2e', reason: 'r', by: 'x' },
        }),
        'nothing to erase',
        'erasing again: nothing to erase',
      );
    },
  );

  await t.test('more than 500 commitments: the record refers to their list as a public blob', async (t) => {
    const values = await submit(Array.from({ length: 600 }, () => 'many'));
    const out = await runAdminCommand(db, {
      command: 'erase',
      args: [],
      options: { session: 'many', reason: 'bulk', by: 'dpo' },
    });
    t.match(out, /^erased 600 sealed values/);
    app.vigil.sequencer.syncOperatorActions();
    const { index, record } = await appendedRecord(actionIdOf(out));
    const list = JSON.stringify(values.map((v) => v.hex).sort());
    const ref = { sha256: hexEncode(sha256(Buffer.from(list))), size: list.length };
    t.same(record.commitments, { $blob: ref }, 'commitments is a $blob reference');
    t.equal(record.count, 600);
    const blob = await app.inject(`/v1/blobs/${ref.sha256}`);
    t.equal(blob.statusCode, 200);
    t.equal(blob.body, list, 'the blob is the canonical JSON list of the commitments');
    const res = await sealedAnswer(values[599]!.hex);
    t.match(res.json(), { code: 'ERASED', index: String(index) });
  });

  await t.test('retention erases old values through the log, skipping held ones', async (t) => {
    const [old, held, young] = (await submit(['ret-old', 'ret-held', 'ret-young'])) as {
      hex: string;
      marker: string;
    }[];
    // Age two of them (the log stored them with the time it received their entries).
    await sql`update sealed set received = now() - interval '2 hours' where sha256 in (${old!.hex}, ${held!.hex})`.execute(
      db,
    );
    await runAdminCommand(db, {
      command: 'hold add',
      args: [],
      options: { session: 'ret-held', reason: 'litigation' },
    });
    await runAdminCommand(db, { command: 'retention set', args: ['1h'] });
    const run = await app.retention.runOnce();
    t.match(run, { kind: 'erased', count: 1, commitments: [old!.hex] }, 'the run erased the old value only');
    if (run?.kind !== 'erased') return;
    const { index, record } = await appendedRecord(run.actionId);
    t.match(record, { kind: 'log.erasure', target: { retention: '1h' }, count: 1, commitments: [old!.hex] });
    t.match((await sealedAnswer(old!.hex)).json(), { code: 'ERASED', index: String(index) });
    t.equal((await sealedAnswer(held!.hex)).statusCode, 200, 'the held value stays');
    t.equal((await sealedAnswer(young!.hex)).statusCode, 200, 'the young value stays');
  });

  await t.test('hold and retention actions are records of the operator emitter', async (t) => {
    const pending = await db
      .selectFrom('operator_actions')
      .select(['id', 'kind'])
      .where('kind', 'in', ['hold.add', 'retention.set'])
      .orderBy('id')
      .execute();
    t.same(
      pending.map((p) => p.kind),
      ['hold.add', 'retention.set'],
    );
    app.vigil.sequencer.syncOperatorActions();
    const hold = await appendedRecord(pending[0]!.id);
    t.match(hold.record, { kind: 'hold.add', scope: 'session', target: 'ret-held', reason: 'litigation' });
    t.match(hold.record.hold, /^hold-[0-9a-f]{8}$/);
    const retention = await appendedRecord(pending[1]!.id);
    t.match(retention.record, { kind: 'retention.set', duration: '1h' });
  });
});
