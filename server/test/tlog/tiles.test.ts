// Memoised proof nodes (TileReader.nodeReader) across tile boundaries and sizes: every receipt of a
// 700-entry log verifies, and inclusion and consistency proofs for older published sizes (asked after
// later sizes filled the memo) verify against the roots the log signed then.
import t from 'tap';
import {
  base64Decode,
  hashLeaf,
  openNote,
  parseCheckpoint,
  parsePolicy,
  verifyConsistency,
  verifyInclusion,
  verifyReceipt,
} from '@vigil/client';
import { forEachStore } from '../../src/db/testing.js';
import type { Database } from '../../src/db/schema.js';
import { buildApp } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { prepareLog, recordStream } from '../helpers/process.js';
import { TileReader } from '../../src/tlog/tiles.js';

forEachStore(t, async (t, store) => {
  const log = await prepareLog(store);
  const { db } = await store.open<Database>();
  const app = await buildApp(loadConfig({}, { 'data-dir': store.dataDir, 'rate-address': '0' }), {
    db,
    logger: false,
  });
  await app.ready();
  t.teardown(() => app.close());
  const policy = parsePolicy(`log ${log.vkey}\nquorum none\n`);
  const stream = recordStream(log.emitterKey, '4f5a6b7c-6666-4777-8888-9999aaaabbbb');
  const roots = new Map<bigint, Uint8Array>();
  // Entries 0 and 1: the operator's registrations of itself and of em1, appended at start.
  await app.vigil.sequencer.flush();
  const leafHashes: Uint8Array[] = [];
  for (const index of [0, 1]) {
    const res = await app.inject({ url: `/v1/entries/${index}` });
    leafHashes.push(base64Decode((res.json() as { leafHash: string }).leafHash));
  }

  t.test('every receipt verifies while the tree grows past 256 and 512 leaves', async (t) => {
    let bad = 0;
    for (const n of [98, 100, 100, 100, 100, 100, 100]) {
      const res = await app.inject({
        method: 'POST',
        url: '/v1/entries',
        headers: { 'content-type': 'application/json' },
        payload: JSON.stringify({ entries: stream.next(n) }),
      });
      t.equal(res.statusCode, 200);
      const body = res.json() as { entries: { entry: string; receipt: string }[]; checkpoint: string };
      for (const e of body.entries) {
        const entry = base64Decode(e.entry);
        leafHashes.push(hashLeaf(entry));
        try {
          verifyReceipt(e.receipt, entry, policy);
        } catch {
          bad++;
        }
      }
      const cp = parseCheckpoint(openNote(body.checkpoint, [log.vkey]).text);
      roots.set(cp.size, cp.root);
    }
    t.equal(bad, 0, 'no receipt failed');
    t.equal(leafHashes.length, 700);
  });

  t.test('proofs for older sizes after newer ones', async (t) => {
    let checked = 0;
    for (const [size, root] of roots) {
      for (const index of [0n, 1n, 99n, 255n, 256n, 511n, 512n, size - 1n]) {
        if (index >= size) continue;
        const res = await app.inject({ url: `/v1/proof/inclusion?index=${index}&size=${size}` });
        t.equal(res.statusCode, 200);
        const proof = (res.json() as { proof: string[] }).proof.map((p) => base64Decode(p));
        verifyInclusion(leafHashes[Number(index)]!, index, size, proof, root);
        checked++;
      }
      for (const [oldSize, oldRoot] of roots) {
        if (oldSize >= size) continue;
        const res = await app.inject({ url: `/v1/proof/consistency?from=${oldSize}&to=${size}` });
        t.equal(res.statusCode, 200);
        const proof = (res.json() as { proof: string[] }).proof.map((p) => base64Decode(p));
        verifyConsistency(oldSize, size, oldRoot, root, proof);
        checked++;
      }
    }
    t.ok(checked > 50, `${checked} proofs verified`);
    // A wrong leaf fails: the checks above can fail.
    const res = await app.inject({ url: '/v1/proof/inclusion?index=300&size=700' });
    const proof = (res.json() as { proof: string[] }).proof.map((p) => base64Decode(p));
    t.throws(() => verifyInclusion(leafHashes[301]!, 300n, 700n, proof, roots.get(700n)!), {
      code: 'PROOF_INVALID',
    });
  });

  t.test('concurrent misses of one full tile or bundle make one query', async (t) => {
    let queries = 0;
    const counted = db.withPlugin({
      transformQuery: (args) => {
        queries++;
        return args.node;
      },
      transformResult: async (args) => args.result,
    });
    const reader = new TileReader(counted);
    const tiles = await Promise.all(Array.from({ length: 20 }, () => reader.readTile(0, 1n, 256)));
    t.equal(queries, 1, 'twenty reads of tile 0/001, one query');
    t.ok(
      tiles.every((b) => Buffer.compare(Buffer.from(b), Buffer.from(tiles[0]!)) === 0),
      'the same bytes',
    );
    t.same(tiles[0]!.subarray(0, 32), leafHashes[256], 'its first hash is leaf 256');
    queries = 0;
    const bundles = await Promise.all(Array.from({ length: 20 }, () => reader.readBundle(0n, 256)));
    t.equal(queries, 1, 'twenty reads of bundle 0, one query');
    t.equal(new Set(bundles).size, 1, 'one buffer for all');
    queries = 0;
    await reader.readTile(0, 1n, 256);
    await reader.readBundle(0n, 256);
    t.equal(queries, 0, 'then both come from the cache');
    // A failed read is not kept: the next one asks the store again.
    await t.rejects(reader.readBundle(9n, 256), { code: 'NOT_FOUND' });
    await t.rejects(reader.readBundle(9n, 256), { code: 'NOT_FOUND' });
    t.equal(queries, 2, 'a missing bundle is read each time');
  });
});
