// The log serves through a login role that only has the migration's service grants (vigil_service),
// as docker-compose.yml and docs/OPERATIONS.md run it; that role cannot rewrite history or migrations.
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import t from 'tap';
import { createTestStore, storeSkipReason } from '../../src/db/testing.js';
import { base64Encode, sealValue } from '@vigil/client';
import {
  addReader,
  prepareLog,
  recordStream,
  startServer,
  stopChild,
  type Child,
} from '../helpers/process.js';

const skip = storeSkipReason('postgres');
t.test('serve as a login role with the service grants only', skip ? { skip } : {}, async (t) => {
  const store = await createTestStore('postgres');
  const role = `vigil_t_login_${randomBytes(4).toString('hex')}`;
  // Roles are cluster-wide: manage them from the server's own database, not the test database.
  const admin = new pg.Client({ connectionString: process.env.TEST_DATABASE_URL });
  const live: { child?: Child; service?: pg.Client } = {};
  t.teardown(async () => {
    if (live.child) await stopChild(live.child);
    await live.service?.end().catch(() => undefined);
    await store.cleanup();
    await admin.query(`drop role if exists ${role}`).catch(() => undefined);
    await admin.end();
  });
  const log = await prepareLog(store);
  const reader = await addReader(store);
  await admin.connect();
  await admin.query(`create role ${role} login password 'test-only' in role vigil_service`);
  const { rows } = await admin.query<{ rolsuper: boolean }>(
    'select rolsuper from pg_roles where rolname = $1',
    [role],
  );
  t.same(rows, [{ rolsuper: false }], 'the role is not a superuser');
  const url = new URL(store.databaseUrl!);
  url.username = role;
  url.password = 'test-only';

  const started = await startServer({ ...store, databaseUrl: url.toString() });
  live.child = started.child;
  const base = started.url;
  const stream = recordStream(log.emitterKey, '66666666-6666-4666-8666-666666666666');
  const res = await fetch(`${base}/v1/entries`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ entries: stream.next(3) }),
  });
  t.equal(res.status, 200, 'the service role sequences entries');
  // The log's own registry records (the operator, then this emitter) come before the three entries.
  const answer = (await res.json()) as { entries: { index: string }[] };
  t.equal(answer.entries.length, 3, 'three entries acknowledged');
  const size = BigInt(answer.entries[2]!.index) + 1n;
  t.ok(size >= 3n, 'the third entry is at index 2 or later');
  const checkpoint = await (await fetch(`${base}/checkpoint`)).text();
  t.ok(checkpoint.startsWith(`test.example/log\n${size}\n`), `the checkpoint covers them: size ${size}`);

  // Sealed values: stored by the sequencer, read by a reader after the access.read record.
  const sealed = sealValue('a secret', randomBytes(16));
  const hex = sealed.ref.$sealed.sha256;
  const [sub] = stream.next(1, { w: sealed.ref });
  const withSealed = await fetch(`${base}/v1/entries`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ entries: [{ ...sub, blobs: { [hex]: base64Encode(sealed.bytes) } }] }),
  });
  t.equal(withSealed.status, 200, 'the service role stores sealed values');
  const read = await fetch(`${base}/v1/sealed/${hex}`, { headers: { authorization: `Bearer ${reader}` } });
  t.equal(read.status, 200, 'and records the read of a reader');
  t.same(new Uint8Array(await read.arrayBuffer()), sealed.bytes);

  const service = new pg.Client({ connectionString: url.toString() });
  live.service = service;
  await service.connect();
  for (const statement of [
    'update entries set seq = 7',
    'delete from checkpoints',
    'truncate cosignatures',
    "insert into kysely_migration (name, timestamp) values ('x', 'y')",
    'create table scratch (x int)',
    'drop table entries',
    'update readers set revoked_at = null',
    "insert into readers (name, token_sha256) values ('mallory', 'x')",
    'delete from erasures',
  ]) {
    await t.rejects(service.query(statement), `the service role cannot: ${statement}`);
  }
});
