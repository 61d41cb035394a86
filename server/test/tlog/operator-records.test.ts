// Records of the log's operator emitter beyond the registry (DESIGN.md "Readers and sealed payloads"):
// appendOperatorRecords chains them on the operator's stream, signed by the operator key, in the group
// commit; pending operator_actions rows become records once, their record_index set in the same
// transaction, so a restart does not append them again.
import t from 'tap';
import { sql } from 'kysely';
import {
  generateKey,
  hexEncode,
  operatorNameFor,
  recordHash,
  sha256,
  utf8,
  verifyRecordSignature,
  type Entry,
} from '@vigil/client';
import { forEachStore } from '../../src/db/testing.js';
import { migrateToLatest, migrationsFolder } from '../../src/db/migrate.js';
import type { Database } from '../../src/db/schema.js';
import { buildApp } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { initLog } from '../../src/tlog/signer.js';
import { insertOperatorAction } from '../../src/db/repository.js';

const ORIGIN = 'operator-records.test/log';
const OPERATOR = operatorNameFor(ORIGIN);

forEachStore(t, async (t, store) => {
  const { db } = await store.open<Database>();
  await migrateToLatest(db, migrationsFolder('log'));
  const logKey = generateKey(ORIGIN);
  await initLog(db, ORIGIN, logKey.signerKey);
  const config = loadConfig({}, { 'data-dir': store.dataDir, 'rate-address': '0' });
  const start = async () => {
    const a = await buildApp(config, { db, signerKey: logKey.signerKey, logger: false });
    await a.ready();
    await a.vigil.sequencer.flush();
    return a;
  };
  let app = await start();
  t.teardown(() => app.close());
  const entryAt = async (index: bigint): Promise<Entry> => {
    const res = await app.inject({ url: `/v1/entries/${index}` });
    t.equal(res.statusCode, 200, `entry ${index}`);
    return (res.json() as { entry: Entry }).entry;
  };
  const size = async () => BigInt((await app.inject({ url: '/checkpoint' })).body.split('\n')[1]!);

  await t.test('records are chained on the operator stream and signed by the operator key', async (t) => {
    t.equal(await size(), 0n, 'a log without emitters or actions appends nothing at start');
    const blob = utf8('["' + 'a'.repeat(64) + '"]');
    const hex = hexEncode(sha256(blob));
    const [first, second] = await Promise.all([
      app.vigil.sequencer.appendOperatorRecords([
        { fields: { kind: 'test.one', n: 1 } },
        {
          fields: { kind: 'test.two', list: { $blob: { sha256: hex, size: blob.length } } },
          blobs: { [hex]: blob },
        },
      ]),
      app.vigil.sequencer.appendOperatorRecords([{ fields: { kind: 'test.three', text: 'x' } }]),
    ]);
    t.same(first, [1n, 2n], 'after the operator registered itself at 0');
    t.same(second, [3n]);
    const entries = [];
    for (let i = 0n; i < 4n; i++) entries.push(await entryAt(i));
    const operatorVkey = app.vigil.tlog.operator.vkey;
    t.same(
      entries.map((e) => e.record.kind),
      ['emitter.add', 'test.one', 'test.two', 'test.three'],
    );
    for (const [i, e] of entries.entries()) {
      t.equal(e.emitter, OPERATOR);
      t.doesNotThrow(
        () => verifyRecordSignature(e.record, e.sig, operatorVkey),
        `entry ${i} signed by the operator`,
      );
      t.equal(e.record.seq, i, 'consecutive seq');
      t.equal(e.record.stream, entries[0]!.record.stream, 'one stream');
      if (i > 0) t.equal(e.record.prev, recordHash(entries[i - 1]!.record), 'chained to the previous record');
    }
    t.equal(entries[1]!.record.n, 1, 'fields are kept');
    const res = await app.inject({ url: `/v1/blobs/${hex}` });
    t.equal(res.statusCode, 200, 'the blob is public');
    t.equal(res.body, '["' + 'a'.repeat(64) + '"]');
  });

  await t.test('invalid operator records are refused and append nothing', async (t) => {
    const before = await size();
    const bad = [
      { fields: {} },
      { fields: { kind: 'emitter.add', name: 'x', vkey: 'y' } },
      { fields: { kind: 'test', seq: 5 } },
      { fields: { kind: 'test', time: 'now' } },
      {
        fields: { kind: 'test', b: { $blob: { sha256: '0'.repeat(64), size: 1 } } },
        blobs: { ['0'.repeat(64)]: utf8('x') },
      },
      { fields: { kind: 'test', big: 'x'.repeat(70_000) } },
    ];
    for (const item of bad) {
      await t.rejects(app.vigil.sequencer.appendOperatorRecords([item]), { code: 'OPERATOR_RECORD_INVALID' });
    }
    t.equal(await size(), before);
  });

  await t.test('a pending operator action is appended once and its record index stored', async (t) => {
    const before = await size();
    const id = await insertOperatorAction(db, 'reader.add', { name: 'alice' });
    app.vigil.sequencer.syncOperatorActions();
    await app.vigil.sequencer.flush();
    t.equal(await size(), before + 1n);
    const e = await entryAt(before);
    t.equal(e.emitter, OPERATOR);
    t.equal(e.record.kind, 'reader.add');
    t.equal(e.record.name, 'alice');
    t.doesNotThrow(() => verifyRecordSignature(e.record, e.sig, app.vigil.tlog.operator.vkey));
    const row = await db
      .selectFrom('operator_actions')
      .select('record_index')
      .where('id', '=', id)
      .executeTakeFirstOrThrow();
    t.equal(row.record_index, before, 'record_index is the record');
    app.vigil.sequencer.syncOperatorActions();
    await app.vigil.sequencer.flush();
    t.equal(await size(), before + 1n, 'a second sync appends nothing');
  });

  await t.test(
    'an action naming a blob that is not stored stays pending; once stored it is appended',
    async (t) => {
      const before = await size();
      const bytes = utf8('["' + 'b'.repeat(64) + '"]');
      const hex = hexEncode(sha256(bytes));
      const id = await insertOperatorAction(db, 'test.blob', {
        list: { $blob: { sha256: hex, size: bytes.length } },
      });
      app.vigil.sequencer.syncOperatorActions();
      await app.vigil.sequencer.flush();
      t.equal(await size(), before, 'not appended');
      await db
        .insertInto('blobs')
        .values({ sha256: hex, size: BigInt(bytes.length), bytes })
        .execute();
      app.vigil.sequencer.syncOperatorActions();
      await app.vigil.sequencer.flush();
      t.equal(await size(), before + 1n, 'appended once its blob is stored');
      const row = await db
        .selectFrom('operator_actions')
        .select('record_index')
        .where('id', '=', id)
        .executeTakeFirstOrThrow();
      t.equal(row.record_index, before);
    },
  );

  await t.test('pending actions survive a restart and are not appended twice', async (t) => {
    await app.close();
    const before = (await db.selectFrom('tree_heads').select('tree_size').executeTakeFirstOrThrow())
      .tree_size;
    // Written while the log is down (the CLI against a stopped service), in id order.
    await insertOperatorAction(db, 'reader.revoke', { name: 'alice' });
    await insertOperatorAction(db, 'reader.add', { name: 'bob' });
    app = await start();
    t.equal(await size(), before + 2n, 'both appended at start');
    t.same(
      [(await entryAt(before)).record.kind, (await entryAt(before + 1n)).record.kind],
      ['reader.revoke', 'reader.add'],
      'in id order',
    );
    const pending = await sql<{
      n: string;
    }>`select count(*)::text as n from operator_actions where record_index is null`.execute(db);
    t.equal(pending.rows[0]!.n, '0', 'none pending');
    await app.close();
    app = await start();
    t.equal(await size(), before + 2n, 'a restart appends nothing again');
    const last = await entryAt(before + 2n - 1n);
    const next = await app.vigil.sequencer.appendOperatorRecords([{ fields: { kind: 'test.after' } }]);
    t.same(next, [before + 2n]);
    const e = await entryAt(before + 2n);
    t.equal(e.record.prev, recordHash(last.record), 'the stream continues across the restart');
  });

  await t.test('a failed commit rejects the operator records and leaves actions pending', async (t) => {
    await app.close();
    let fail = true;
    app = await buildApp(config, {
      db,
      signerKey: logKey.signerKey,
      logger: false,
      hooks: {
        beforeCommit: () => {
          if (fail) throw new Error('injected failure');
        },
      },
    });
    await app.ready();
    await app.vigil.sequencer.flush();
    const before = await size();
    fail = true;
    await t.rejects(
      app.vigil.sequencer.appendOperatorRecords([{ fields: { kind: 'test.failed' } }]),
      /injected/,
    );
    const id = await insertOperatorAction(db, 'reader.add', { name: 'carol' });
    app.vigil.sequencer.syncOperatorActions();
    await app.vigil.sequencer.flush();
    t.equal(await size(), before, 'nothing appended');
    fail = false;
    app.vigil.sequencer.syncOperatorActions();
    await app.vigil.sequencer.flush();
    t.equal(await size(), before + 1n, 'the action is appended by the next sync');
    const row = await db
      .selectFrom('operator_actions')
      .select('record_index')
      .where('id', '=', id)
      .executeTakeFirstOrThrow();
    t.equal(row.record_index, before);
  });
});
