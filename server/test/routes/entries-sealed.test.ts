// POST /v1/entries with sealed values (contract "Records and submissions"): S travels in the entry's
// `blobs` map; bytes for a `$sealed` commitment go to the reader-only sealed table with their entry,
// bytes for a `$blob` to the public blobs table; every mismatch is 400 SEALED_INVALID and stores nothing.
import { randomBytes, randomUUID } from 'node:crypto';
import t from 'tap';
import {
  base64Encode,
  generateKey,
  hashLeaf,
  parseEntry,
  recordHash,
  sealValue,
  signRecord,
  utf8,
} from '@vigil/client';
import { forEachStore } from '../../src/db/testing.js';
import { migrateToLatest, migrationsFolder } from '../../src/db/migrate.js';
import type { Database } from '../../src/db/schema.js';
import { buildApp } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { initLog } from '../../src/tlog/signer.js';
import { runAdminCommand } from '../../src/admin.js';
import { insertOperatorAction } from '../../src/db/repository.js';

const ORIGIN = 'entries-sealed.test/log';

forEachStore(t, async (t, store) => {
  const { db } = await store.open<Database>();
  await migrateToLatest(db, migrationsFolder('log'));
  const logKey = generateKey(ORIGIN);
  await initLog(db, ORIGIN, logKey.signerKey);
  const em = generateKey('em1');
  await runAdminCommand(db, { command: 'emitter add', args: ['em1', em.verifierKey] });
  const config = loadConfig({}, { 'data-dir': store.dataDir, 'rate-address': '0' });
  const app = await buildApp(config, { db, signerKey: logKey.signerKey, logger: false });
  await app.ready();
  t.teardown(() => app.close());

  const stream = randomUUID();
  let prev: Record<string, unknown> | undefined;
  let seq = 0;
  /** The next record of the stream (not consumed until `accept`). */
  const next = (extra: Record<string, unknown>) => ({
    v: 1,
    stream,
    seq,
    ...(prev ? { prev: recordHash(prev) } : {}),
    time: new Date().toISOString(),
    kind: 'mcp.message',
    session: 'sess-1',
    ...extra,
  });
  const post = async (record: Record<string, unknown>, blobs: Record<string, string>) => {
    const res = await app.inject({
      method: 'POST',
      url: '/v1/entries',
      headers: { 'content-type': 'application/json' },
      payload: JSON.stringify({
        entries: [{ emitter: 'em1', record, sig: signRecord(record, em.signerKey), blobs }],
      }),
    });
    if (res.statusCode === 200) {
      prev = record;
      seq++;
    }
    return res;
  };
  const b64 = (bytes: Uint8Array) => base64Encode(bytes);
  const sealedRows = () => db.selectFrom('sealed').selectAll().orderBy('sha256').execute();

  await t.test('S goes to the sealed table with its entry, blob bytes to blobs', async (t) => {
    const s = sealValue({ arguments: { path: '/etc/passwd' } }, randomBytes(16));
    const blob = utf8('public bytes');
    const { createHash } = await import('node:crypto');
    const blobHex = createHash('sha256').update(blob).digest('hex');
    const record = next({
      message: { jsonrpc: '2.0', id: 1, method: 'tools/call', params: s.ref },
      out: { $blob: { sha256: blobHex, size: blob.length } },
    });
    const res = await post(record, { [s.ref.$sealed.sha256]: b64(s.bytes), [blobHex]: b64(blob) });
    t.equal(res.statusCode, 200, res.body);
    const index = BigInt((res.json() as { entries: { index: string }[] }).entries[0]!.index);
    const rows = await sealedRows();
    t.equal(rows.length, 1);
    t.equal(rows[0]!.sha256, s.ref.$sealed.sha256);
    t.equal(rows[0]!.leaf_index, index, 'with its entry');
    t.equal(rows[0]!.emitter, 'em1');
    t.equal(rows[0]!.stream, stream);
    t.equal(rows[0]!.session, 'sess-1', 'session from the search columns');
    t.equal(Buffer.from(rows[0]!.bytes).toString(), Buffer.from(s.bytes).toString());
    const blobs = await db.selectFrom('blobs').select('sha256').execute();
    t.same(
      blobs.map((b) => b.sha256),
      [blobHex],
      'only the $blob is public',
    );
    t.equal((await app.inject({ url: `/v1/blobs/${blobHex}` })).statusCode, 200);
    t.equal((await app.inject({ url: `/v1/blobs/${s.ref.$sealed.sha256}` })).statusCode, 404, 'S is no blob');
    const entry = await app.inject({ url: `/v1/entries/${index}` });
    t.notOk(entry.body.includes('passwd'), 'the entry holds the commitment only');
  });

  await t.test('format=raw answers the exact entry bytes the tree commits to', async (t) => {
    const s = sealValue({ secret: 'raw-marker' }, randomBytes(16));
    const record = next({ message: { jsonrpc: '2.0', id: 7, method: 'tools/call', params: s.ref } });
    const res = await post(record, { [s.ref.$sealed.sha256]: b64(s.bytes) });
    t.equal(res.statusCode, 200, res.body);
    const index = (res.json() as { entries: { index: string }[] }).entries[0]!.index;
    const json = await app.inject({ method: 'GET', url: `/v1/entries/${index}` });
    const raw = await app.inject({ method: 'GET', url: `/v1/entries/${index}?format=raw` });
    t.equal(raw.statusCode, 200);
    t.match(raw.headers['content-type'], /^application\/octet-stream/);
    const bytes = new Uint8Array(raw.rawPayload);
    t.equal(base64Encode(hashLeaf(bytes)), (json.json() as { leafHash: string }).leafHash, 'the leaf');
    t.same(parseEntry(bytes).record, record, 'the record as submitted');
    t.notMatch(raw.body, /raw-marker/, 'sealed values stay sealed');
    const both = await app.inject({ method: 'GET', url: `/v1/entries/${index}?format=raw&open=1` });
    t.equal(both.statusCode, 400);
    const bad = await app.inject({ method: 'GET', url: `/v1/entries/${index}?format=xml` });
    t.equal(bad.statusCode, 400);
    t.equal((bad.json() as { code: string }).code, 'REQUEST_MALFORMED');
    const beyond = await app.inject({ method: 'GET', url: `/v1/entries/999999?format=raw` });
    t.equal(beyond.statusCode, 404);
    t.equal((beyond.json() as { code: string }).code, 'INDEX_OUT_OF_RANGE');
  });

  await t.test('every mismatch is SEALED_INVALID and stores nothing', async (t) => {
    const s = sealValue('secret', randomBytes(16));
    const hex = s.ref.$sealed.sha256;
    const other = sealValue('other', randomBytes(16));
    const notSealed = utf8('{"value":"x"}');
    const { createHash } = await import('node:crypto');
    const notSealedHex = createHash('sha256').update(notSealed).digest('hex');
    const cases: [string, Record<string, unknown>, Record<string, string>][] = [
      ['ref without bytes', { w: s.ref }, {}],
      ['bytes without a ref', { w: 1 }, { [hex]: b64(s.bytes) }],
      ['wrong size', { w: { $sealed: { sha256: hex, size: s.bytes.length + 1 } } }, { [hex]: b64(s.bytes) }],
      ['wrong hash', { w: s.ref }, { [hex]: b64(other.bytes) }],
      ['not canonical base64', { w: s.ref }, { [hex]: b64(s.bytes).replace(/=*$/, '') + '=' }],
      [
        'malformed commitment',
        { w: { $sealed: { sha256: hex, size: s.bytes.length, x: 1 } } },
        { [hex]: b64(s.bytes) },
      ],
      [
        'bytes that are no sealed value',
        { w: { $sealed: { sha256: notSealedHex, size: notSealed.length } } },
        { [notSealedHex]: b64(notSealed) },
      ],
      ['one hash as $blob and $sealed', { w: s.ref, x: { $blob: s.ref.$sealed } }, { [hex]: b64(s.bytes) }],
    ];
    const before = (await sealedRows()).length;
    for (const [name, extra, blobs] of cases) {
      const res = await post(next(extra), blobs);
      t.equal(res.statusCode, 400, `${name}: status`);
      t.equal(res.json().code, 'SEALED_INVALID', `${name}: code`);
      t.notOk(res.body.includes('secret'), `${name}: S is not echoed`);
    }
    t.equal((await sealedRows()).length, before, 'nothing stored');
    t.equal((await db.selectFrom('blobs').select('sha256').execute()).length, 1, 'no blob stored');
  });

  await t.test('a commitment already erased is not stored again', async (t) => {
    const s = sealValue('erased before', randomBytes(16));
    const action = await insertOperatorAction(db, 'log.erasure', {
      reason: 'test',
      by: 'op',
      target: { sealed: true },
      count: 1,
      commitments: [s.ref.$sealed.sha256],
    });
    await db.insertInto('erasures').values({ sha256: s.ref.$sealed.sha256, action_id: action }).execute();
    const res = await post(next({ w: s.ref }), { [s.ref.$sealed.sha256]: b64(s.bytes) });
    t.equal(res.statusCode, 200, 'the record is accepted');
    const row = await db
      .selectFrom('sealed')
      .select('sha256')
      .where('sha256', '=', s.ref.$sealed.sha256)
      .executeTakeFirst();
    t.equal(row, undefined, 'S is not stored');
  });

  await t.test('a sealed tool name is opened into sealed_columns', async (t) => {
    const tool = sealValue('read_file', randomBytes(16));
    const uri = sealValue('file:///secret.txt', randomBytes(16));
    const res = await post(next({ 'gen_ai.tool.name': tool.ref, 'mcp.method.name': 'tools/call' }), {
      [tool.ref.$sealed.sha256]: b64(tool.bytes),
    });
    t.equal(res.statusCode, 200, res.body);
    const index = BigInt((res.json() as { entries: { index: string }[] }).entries[0]!.index);
    const res2 = await post(next({ 'mcp.resource.uri': uri.ref }), {
      [uri.ref.$sealed.sha256]: b64(uri.bytes),
    });
    t.equal(res2.statusCode, 200, res2.body);
    const rows = await db.selectFrom('sealed_columns').selectAll().orderBy('leaf_index').execute();
    t.same(
      rows.map((r) => [r.leaf_index, r.sha256, r.tool, r.resource_uri]),
      [
        [index, tool.ref.$sealed.sha256, 'read_file', null],
        [index + 1n, uri.ref.$sealed.sha256, null, 'file:///secret.txt'],
      ],
    );
    const entry = await db
      .selectFrom('entries')
      .select('tool')
      .where('leaf_index', '=', index)
      .executeTakeFirstOrThrow();
    t.equal(entry.tool, null, 'the public entries row does not hold the opened name');
  });
});
