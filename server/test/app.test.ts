import t from 'tap';
import {
  base64Decode,
  generateKey,
  hashLeaf,
  parsePolicy,
  recordHash,
  rootFromNodes,
  signRecord,
  tileNodeReader,
  verifyReceipt,
  parseCheckpoint,
  openNote,
  type Entry,
} from '@vigil/client';
import { forEachStore } from '../src/db/testing.js';
import { migrateToLatest, migrationsFolder } from '../src/db/migrate.js';
import type { Database } from '../src/db/schema.js';
import { buildApp } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { initLog } from '../src/tlog/signer.js';
import { runAdminCommand } from '../src/admin.js';

const ORIGIN = 'test.example/log';
const STREAM = '6f1c2a9e-1111-4222-8333-444455556666';

function record(seq: number, prev: Record<string, unknown> | undefined, extra: Record<string, unknown> = {}) {
  return {
    v: 1,
    stream: STREAM,
    seq,
    ...(prev ? { prev: recordHash(prev) } : {}),
    time: '2026-11-24T12:00:00.000Z',
    kind: seq === 0 ? 'stream.open' : 'mcp.message',
    ...extra,
  };
}

forEachStore(t, async (t, store) => {
  const { db } = await store.open<Database>();
  await migrateToLatest(db, migrationsFolder('log'));
  const logKey = generateKey(ORIGIN);
  await initLog(db, ORIGIN, logKey.signerKey);
  const em = generateKey('em1');
  const revoked = generateKey('em2');
  await runAdminCommand(db, { command: 'emitter add', args: ['em1', em.verifierKey] });
  await runAdminCommand(db, { command: 'emitter add', args: ['em2', revoked.verifierKey] });
  await runAdminCommand(db, { command: 'emitter revoke', args: ['em2'] });
  const config = loadConfig({}, { 'data-dir': store.dataDir, 'max-body-bytes': '200000' });
  const app = await buildApp(config, { db, signerKey: logKey.signerKey, logger: false });
  await app.ready();
  t.teardown(() => app.close());
  const policy = parsePolicy(`log ${logKey.verifierKey}\nquorum none\n`);
  const post = (body: unknown, url = '/v1/entries') =>
    app.inject({
      method: 'POST',
      url,
      headers: { 'content-type': 'application/json' },
      payload: JSON.stringify(body),
    });

  const r0 = record(0, undefined);
  const r1 = record(1, r0, {
    message: { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'echo' } },
  });
  const sub = (r: Record<string, unknown>, emitter = 'em1', key = em.signerKey) => ({
    emitter,
    record: r,
    sig: signRecord(r, key),
  });

  t.test('sequences records and returns receipts that verify offline', async (t) => {
    const res = await post({ entries: [sub(r0), sub(r1)] });
    t.equal(res.statusCode, 200, res.body);
    const body = res.json() as {
      entries: { index: string; receipt: string; leafHash: string; entry: string }[];
      checkpoint: string;
    };
    // Entries 0 and 1: the operator's registration of itself and of em1, appended at start.
    t.same(
      body.entries.map((e) => e.index),
      ['2', '3'],
    );
    for (const e of body.entries) {
      const got = await app.inject({ url: `/v1/entries/${e.index}` });
      t.equal(got.statusCode, 200);
      const entry = (got.json() as { entry: Entry }).entry;
      const { formatEntry } = await import('@vigil/client');
      const bytes = formatEntry(entry);
      t.same([...hashLeaf(bytes)], [...base64Decode(e.leafHash)]);
      t.same([...base64Decode(e.entry)], [...bytes], 'the result carries the entry bytes');
      const v = verifyReceipt(e.receipt, bytes, policy);
      t.equal(v.index, BigInt(e.index));
    }
    // Identical resubmission: the original receipt's index.
    const again = await post({ entries: [sub(r1)] });
    t.equal(again.statusCode, 200);
    const dup = (again.json() as { entries: { index: string; entry: string; leafHash: string }[] })
      .entries[0]!;
    t.equal(dup.index, '3');
    t.same(
      [...hashLeaf(base64Decode(dup.entry))],
      [...base64Decode(dup.leafHash)],
      'duplicate: stored entry',
    );
    t.same(dup.leafHash, body.entries[1]!.leafHash);
  });

  t.test('the tree rebuilds from tiles alone', async (t) => {
    const cp = await app.inject({ url: '/checkpoint' });
    t.equal(cp.headers['content-type'], 'text/plain; charset=utf-8');
    const checkpoint = parseCheckpoint(openNote(cp.body, [logKey.verifierKey]).text);
    const readTile = async (level: number, index: bigint, width: number) => {
      const path = `/tile/${level}/${String(index).padStart(3, '0')}${width < 256 ? `.p/${width}` : ''}`;
      const r = await app.inject({ url: path });
      if (r.statusCode !== 200) throw new Error(`${path}: ${r.statusCode}`);
      return new Uint8Array(r.rawPayload);
    };
    const root = await rootFromNodes(checkpoint.size, tileNodeReader(checkpoint.size, readTile));
    t.same([...root], [...checkpoint.root]);
    const bundle = await app.inject({ url: '/tile/entries/000.p/4' });
    t.equal(bundle.statusCode, 200);
    t.equal(bundle.headers['content-type'], 'application/octet-stream');
    t.equal((await app.inject({ url: '/tile/0/000.p/5' })).statusCode, 404);
  });

  t.test('stream continuity and conflicts', async (t) => {
    const gap = await post({ entries: [sub(record(5, r1))] });
    t.equal(gap.statusCode, 409);
    t.equal(gap.json().code, 'SEQ_CONFLICT');
    t.equal(gap.json().expected, '2');
    const badPrev = await post({ entries: [sub(record(2, r0))] });
    t.equal(badPrev.statusCode, 409);
    const fork = record(1, r0, { kind: 'other' });
    const conflict = await post({ entries: [sub(fork)] });
    t.equal(conflict.statusCode, 409);
    const incidents = await app.inject({ url: '/v1/incidents' });
    t.equal((incidents.json() as { incidents: unknown[] }).incidents.length, 1);
  });

  t.test('bad input gets a 4xx with a code, and the log keeps serving', async (t) => {
    const cases: [string, () => Promise<{ statusCode: number; json(): { code: string } }>, number, string][] =
      [
        [
          'malformed json',
          () =>
            app.inject({
              method: 'POST',
              url: '/v1/entries',
              headers: { 'content-type': 'application/json' },
              payload: '{"entries":',
            }),
          400,
          'REQUEST_MALFORMED',
        ],
        [
          'wrong content type',
          () =>
            app.inject({
              method: 'POST',
              url: '/v1/entries',
              headers: { 'content-type': 'text/plain' },
              payload: 'x',
            }),
          415,
          'CONTENT_TYPE_UNSUPPORTED',
        ],
        [
          'body over the limit',
          () => post({ entries: [sub({ ...record(2, r1), pad: 'x'.repeat(300_000) })] }),
          413,
          'BODY_TOO_LARGE',
        ],
        [
          'more than 1000 entries',
          () =>
            post({ entries: Array.from({ length: 1001 }, () => ({ emitter: 'em1', record: {}, sig: 'x' })) }),
          400,
          'TOO_MANY_ENTRIES',
        ],
        ['unknown emitter', () => post({ entries: [sub(record(2, r1), 'nobody')] }), 403, 'EMITTER_UNKNOWN'],
        [
          'revoked emitter',
          () => post({ entries: [sub(record(2, r1), 'em2', revoked.signerKey)] }),
          403,
          'EMITTER_REVOKED',
        ],
        [
          'bad signature',
          () => post({ entries: [{ ...sub(record(2, r1)), sig: signRecord(r0, em.signerKey) }] }),
          403,
          'SIGNATURE_INVALID',
        ],
        [
          'non-canonical number',
          () =>
            app.inject({
              method: 'POST',
              url: '/v1/entries',
              headers: { 'content-type': 'application/json' },
              payload: `{"entries":[{"emitter":"em1","record":{"v":1,"n":1e400},"sig":"x"}]}`,
            }),
          400,
          'RECORD_INVALID',
        ],
        [
          'entry over 65535 bytes',
          () => post({ entries: [sub({ ...record(2, r1), pad: 'x'.repeat(70_000) })] }),
          400,
          'ENTRY_TOO_LARGE',
        ],
        [
          'blob hash mismatch',
          () => {
            const r = record(2, r1, { out: { $blob: { sha256: 'a'.repeat(64), size: 3 } } });
            return post({ entries: [{ ...sub(r), blobs: { ['a'.repeat(64)]: 'YWJj' } }] });
          },
          400,
          'BLOB_INVALID',
        ],
        [
          'sealed bytes not supplied',
          () =>
            post({ entries: [sub(record(2, r1, { w: { $sealed: { sha256: 'b'.repeat(64), size: 3 } } }))] }),
          400,
          'SEALED_INVALID',
        ],
        [
          'sealed bytes of another hash',
          () => {
            const r = record(2, r1, { w: { $sealed: { sha256: 'b'.repeat(64), size: 3 } } });
            return post({ entries: [{ ...sub(r), blobs: { ['b'.repeat(64)]: 'YWJj' } }] });
          },
          400,
          'SEALED_INVALID',
        ],
        ['index past the tree', () => app.inject({ url: '/v1/entries/99' }), 404, 'INDEX_OUT_OF_RANGE'],
        [
          'size never published',
          () => app.inject({ url: '/v1/proof/inclusion?index=0&size=1' }),
          404,
          'SIZE_NOT_PUBLISHED',
        ],
        ['non-canonical index', () => app.inject({ url: '/v1/entries/01' }), 400, 'REQUEST_MALFORMED'],
      ];
    for (const [name, run, status, code] of cases) {
      const res = await run();
      t.equal(res.statusCode, status, `${name}: status`);
      t.equal(res.json().code, code, `${name}: code`);
    }
    t.equal((await app.inject({ url: '/healthz' })).statusCode, 200);
  });

  t.test('blobs are stored and served', async (t) => {
    const bytes = new TextEncoder().encode('hello blob');
    const { createHash } = await import('node:crypto');
    const hex = createHash('sha256').update(bytes).digest('hex');
    const r = record(2, r1, { out: { $blob: { sha256: hex, size: bytes.length } } });
    const res = await post(
      { entries: [{ ...sub(r), blobs: { [hex]: Buffer.from(bytes).toString('base64') } }] },
      '/v1/entries?wait=false',
    );
    t.equal(res.statusCode, 202, res.body);
    const blob = await app.inject({ url: `/v1/blobs/${hex}` });
    t.equal(blob.statusCode, 200);
    t.equal(blob.body, 'hello blob');
    // Sealed bytes S travel beside the record like blobs and are checked against the commitment.
    const sealed = new TextEncoder().encode('{"salt":"AAECAwQFBgcICQoLDA0ODw==","value":"yes"}');
    const sealedHex = createHash('sha256').update(sealed).digest('hex');
    const r3 = record(3, r, { wire: { $sealed: { sha256: sealedHex, size: sealed.length } } });
    const res3 = await post(
      { entries: [{ ...sub(r3), blobs: { [sealedHex]: Buffer.from(sealed).toString('base64') } }] },
      '/v1/entries?wait=false',
    );
    t.equal(res3.statusCode, 202, res3.body);
    const served = await app.inject({ url: `/v1/blobs/${sealedHex}` });
    t.equal(served.statusCode, 404, 'S is never served as a blob');
    t.notOk(served.body.includes('AAECAwQFBgcICQoLDA0ODw'), 'nor any part of it');
    const proof = await app.inject({ url: '/v1/proof/consistency?from=4&to=6' });
    t.equal(proof.statusCode, 200, proof.body);
    t.ok((await app.inject({ url: '/metrics' })).body.includes('vigil_tree_size 6'));
  });
});
