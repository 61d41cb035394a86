// The emitter registry in the tree (DESIGN.md "Log server", Emitter administration): registrations and
// revocations are records of the operator emitter, committed before the first record they authorise;
// a key or revocation changed in the emitters table afterwards (a DBA's UPDATE) is refused, and the
// operator key file must be the one the tree registered.
import { randomUUID } from 'node:crypto';
import { stat, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { sql } from 'kysely';
import {
  generateKey,
  operatorNameFor,
  parseRegistryChange,
  recordHash,
  signRecord,
  verifyRecordSignature,
  type Entry,
} from '@vigil/client';
import { forEachStore } from '../../src/db/testing.js';
import { migrateToLatest, migrationsFolder } from '../../src/db/migrate.js';
import type { Database } from '../../src/db/schema.js';
import { buildApp } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { initLog } from '../../src/tlog/signer.js';
import { runAdminCommand } from '../../src/admin.js';

const ORIGIN = 'registry.test/log';
const OPERATOR = operatorNameFor(ORIGIN);

/** Records of one stream of one emitter. */
function streamOf(emitter: string, signerKey: string) {
  const stream = randomUUID();
  let prev: Record<string, unknown> | undefined;
  let seq = 0;
  return (extra: Record<string, unknown> = {}) => {
    const record = {
      v: 1,
      stream,
      seq: seq++,
      ...(prev ? { prev: recordHash(prev) } : {}),
      time: new Date().toISOString(),
      kind: 'app.event',
      ...extra,
    };
    prev = record;
    return { emitter, record, sig: signRecord(record, signerKey) };
  };
}

forEachStore(t, async (t, store) => {
  const { db } = await store.open<Database>();
  await migrateToLatest(db, migrationsFolder('log'));
  const logKey = generateKey(ORIGIN);
  await initLog(db, ORIGIN, logKey.signerKey);
  const em1 = generateKey('em1');
  await runAdminCommand(db, { command: 'emitter add', args: ['em1', em1.verifierKey] });
  const config = loadConfig({}, { 'data-dir': store.dataDir, 'rate-address': '0' });
  const start = async () => {
    const app = await buildApp(config, { db, signerKey: logKey.signerKey, logger: false });
    await app.ready();
    await app.vigil.sequencer.flush();
    return app;
  };
  let app = await start();
  t.teardown(() => app.close());
  const post = (entries: unknown[]) =>
    app.inject({
      method: 'POST',
      url: '/v1/entries',
      headers: { 'content-type': 'application/json' },
      payload: JSON.stringify({ entries }),
    });
  const entryAt = async (index: number | bigint): Promise<Entry> =>
    ((await app.inject({ url: `/v1/entries/${index}` })).json() as { entry: Entry }).entry;
  const size = async () => BigInt((await app.inject({ url: '/checkpoint' })).body.split('\n')[1]!);
  const operatorVkey = () => app.vigil.tlog.operator.vkey;

  await t.test('the operator registers itself and every emitter in the tree at start', async (t) => {
    const file = join(store.dataDir, 'operator.key');
    t.equal((await stat(file)).mode & 0o777, 0o600, 'a new operator key file, mode 0600');
    t.equal(await size(), 2n, 'two registry records');
    const changes = [];
    for (const i of [0, 1]) {
      const e = await entryAt(i);
      t.equal(e.emitter, OPERATOR);
      t.doesNotThrow(() => verifyRecordSignature(e.record, e.sig, operatorVkey()), 'signed by the operator');
      changes.push(parseRegistryChange(e.record));
    }
    t.same(changes, [
      { kind: 'emitter.add', name: OPERATOR, vkey: operatorVkey() },
      { kind: 'emitter.add', name: 'em1', vkey: em1.verifierKey },
    ]);
    const info = (await app.inject({ url: '/v1/log' })).json() as {
      operator: { name: string; vkey: string };
      emitters: { name: string }[];
    };
    t.same(info.operator, { name: OPERATOR, vkey: operatorVkey() });
    t.ok(
      info.emitters.some((e) => e.name === OPERATOR),
      'the operator is listed among the emitters',
    );
  });

  await t.test('an emitter added while the log runs is registered before its first record', async (t) => {
    const em3 = generateKey('em3');
    await runAdminCommand(db, { command: 'emitter add', args: ['em3', em3.verifierKey] });
    const before = await size();
    const res = await post([streamOf('em3', em3.signerKey)()]);
    t.equal(res.statusCode, 200, 'accepted', { body: res.body });
    const [item] = (res.json() as { entries: { index: string }[] }).entries;
    const registration = await entryAt(before);
    t.same(parseRegistryChange(registration.record), {
      kind: 'emitter.add',
      name: 'em3',
      vkey: em3.verifierKey,
    });
    t.equal(BigInt(item!.index), before + 1n, 'the record follows its registration');
  });

  await t.test('a key swapped in the emitters table is refused', async (t) => {
    const attacker = generateKey('em1');
    await sql`update emitters set vkey = ${attacker.verifierKey} where name = 'em1'`.execute(db);
    app.vigil.tlog.invalidate();
    const before = await size();
    const forged = await post([streamOf('em1', attacker.signerKey)()]);
    t.equal(forged.statusCode, 403);
    t.equal(forged.json().code, 'EMITTER_KEY_MISMATCH');
    t.match(forged.json().message, /entry 1\)/, 'names the registration');
    app.vigil.sequencer.syncRegistry();
    await app.vigil.sequencer.flush();
    t.equal(await size(), before, 'the swapped key is never registered');
    const incidents = (await app.inject({ url: '/v1/incidents' })).json() as {
      incidents: { kind: string; emitter: string; index: string }[];
    };
    t.ok(
      incidents.incidents.some(
        (i) => i.kind === 'emitter_key_mismatch' && i.emitter === 'em1' && i.index === '1',
      ),
      'recorded as an incident naming the registration',
    );
    await sql`update emitters set vkey = ${em1.verifierKey} where name = 'em1'`.execute(db);
    app.vigil.tlog.invalidate();
    t.equal((await post([streamOf('em1', em1.signerKey)()])).statusCode, 200, 'the real key again');
  });

  await t.test('a revocation is a record; undoing it in the table is refused', async (t) => {
    await runAdminCommand(db, { command: 'emitter revoke', args: ['em1'] });
    app.vigil.sequencer.syncRegistry();
    await app.vigil.sequencer.flush();
    const at = (await size()) - 1n;
    t.same(parseRegistryChange((await entryAt(at)).record), {
      kind: 'emitter.revoke',
      name: 'em1',
      vkey: em1.verifierKey,
    });
    await sql`update emitters set revoked_at = null where name = 'em1'`.execute(db);
    app.vigil.tlog.invalidate();
    const res = await post([streamOf('em1', em1.signerKey)()]);
    t.equal(res.statusCode, 403);
    t.equal(res.json().code, 'EMITTER_REVOKED');
    t.match(res.json().message, new RegExp(`revoked at entry ${at}$`));
    await sql`update emitters set revoked_at = now() where name = 'em1'`.execute(db);
  });

  await t.test('the operator writes only through the log', async (t) => {
    const res = await post([streamOf(OPERATOR, generateKey(OPERATOR).signerKey)()]);
    t.equal(res.statusCode, 403);
    t.equal(res.json().code, 'EMITTER_RESERVED');
    await t.rejects(
      runAdminCommand(db, { command: 'emitter add', args: [OPERATOR, generateKey(OPERATOR).verifierKey] }),
      /operator emitter/,
    );
  });

  await t.test('a restart reads the registry from the tree; the operator key file must match', async (t) => {
    const before = await size();
    await app.close();
    app = await start();
    t.equal(await size(), before, 'nothing registered again');
    t.equal((await post([streamOf('em1', em1.signerKey)()])).json().code, 'EMITTER_REVOKED');
    await app.close();
    const file = join(store.dataDir, 'operator.key');
    await writeFile(file, `${generateKey(OPERATOR).signerKey}\n`, { mode: 0o600 });
    await t.rejects(
      buildApp(config, { db, signerKey: logKey.signerKey, logger: false }),
      new RegExp(`the log registered operator key ${operatorVkey().replace(/[+/]/g, '\\$&')} at entry 0`),
    );
    await unlink(file);
    await t.rejects(
      buildApp(config, { db, signerKey: logKey.signerKey, logger: false }),
      /is missing; the log registered operator key .* at entry 0: restore the file/,
    );
  });
});
