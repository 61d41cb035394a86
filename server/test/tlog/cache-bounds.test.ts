// Every in-memory cache of the read path stays within its bound however much is read (issue 7:
// server memory must stay flat while the log grows), and proofs built through the smallest caches
// still verify against the log's checkpoints.
import t from 'tap';
import {
  base64Decode,
  hashLeaf,
  openNote,
  parseCheckpoint,
  tilePath,
  verifyInclusion,
  type Checkpoint,
} from '@vigil/client';
import { forEachStore } from '../../src/db/testing.js';
import type { Database } from '../../src/db/schema.js';
import { buildApp } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { TileReader } from '../../src/tlog/tiles.js';
import { RateLimiter } from '../../src/tlog/rate-limit.js';
import { prepareLog, recordStream } from '../helpers/process.js';

/** Bytes of one cached tile: its 256 hashes and the 255 nodes above them. */
const TILE_TREE_BYTES = 511 * 32;

t.test('rate-limit buckets are bounded by key count', async (t) => {
  const limiter = new RateLimiter(10, 2, 50);
  for (let i = 0; i < 1000; i++) t.equal(limiter.take(`10.0.${i >> 8}.${i & 255}`), true);
  t.equal(limiter.size, 50);
});

forEachStore(t, async (t, store) => {
  const log = await prepareLog(store);
  const { db } = await store.open<Database>();
  const app = await buildApp(loadConfig({}, { 'data-dir': store.dataDir, 'rate-address': '0' }), {
    db,
    logger: false,
  });
  await app.ready();
  t.teardown(() => app.close());
  // Entries 0 and 1: the operator's registrations of itself and of em1, appended at start.
  await app.vigil.sequencer.flush();
  const leafHashes: Uint8Array[] = [];
  for (const index of [0, 1]) {
    const res = await app.inject({ url: `/v1/entries/${index}` });
    leafHashes.push(base64Decode((res.json() as { leafHash: string }).leafHash));
  }
  const stream = recordStream(log.emitterKey, '4f5a6b7c-7777-4777-8888-9999aaaabbbb');
  let cp: Checkpoint | undefined;
  for (const n of [298, 300, 100]) {
    const res = await app.inject({
      method: 'POST',
      url: '/v1/entries',
      headers: { 'content-type': 'application/json' },
      payload: JSON.stringify({ entries: stream.next(n) }),
    });
    t.equal(res.statusCode, 200);
    const body = res.json() as { entries: { entry: string }[]; checkpoint: string };
    for (const e of body.entries) leafHashes.push(hashLeaf(base64Decode(e.entry)));
    cp = parseCheckpoint(openNote(body.checkpoint, [log.vkey]).text);
  }
  const size = cp!.size;
  t.equal(size, 700n);

  t.test('tile, bundle and node caches stay within their bounds', async (t) => {
    const reader = new TileReader(db, { tileBytes: TILE_TREE_BYTES, bundleBytes: 1, nodes: 4 });
    for (let round = 0; round < 3; round++) {
      for (const index of [0n, 1n]) {
        const tile = await reader.readTile(0, index, 256);
        t.equal(tile.length, 256 * 32);
        const bundle = await reader.readBundle(index, 256);
        t.ok(bundle.length > 256 * 2);
      }
    }
    const s = reader.stats();
    t.equal(s.tiles.count, 1, 'one tile tree fits');
    t.equal(s.tiles.bytes, TILE_TREE_BYTES);
    t.equal(s.bundles.count, 0, 'a bundle larger than the bound is never kept');
    t.equal(s.bundles.bytes, 0);
    let bad = 0;
    for (let i = 0n; i < size; i += 7n) {
      const proof = await reader.inclusionProof(i, size);
      try {
        verifyInclusion(leafHashes[Number(i)]!, i, size, proof, cp!.root);
      } catch {
        bad++;
      }
    }
    t.equal(bad, 0, 'every proof through the small caches verifies');
    const after = reader.stats();
    t.ok(after.tiles.bytes <= TILE_TREE_BYTES, `tile bytes ${after.tiles.bytes}`);
    t.ok(after.nodes.count <= 4, `memoised nodes ${after.nodes.count}`);
    t.ok(after.nodes.count > 0, 'nodes outside full tiles are memoised');
  });

  t.test('only full tiles and bundles are served from the cache, with the stored bytes', async (t) => {
    const reader = new TileReader(db, { tileBytes: 4 * TILE_TREE_BYTES, bundleBytes: 4 * 1024 * 1024 });
    const full = tilePath({ level: 0, index: 1n, width: 256 });
    const bundle = tilePath({ level: 'entries', index: 0n, width: 256 });
    t.equal(reader.cachedFull(full), undefined);
    const tile = await reader.readTile(0, 1n, 256);
    t.same([...reader.cachedFull(full)!], [...tile]);
    t.same([...tile.subarray(0, 32)], [...leafHashes[256]!]);
    const b = await reader.readBundle(0n, 256);
    t.same([...reader.cachedFull(bundle)!], [...b]);
    const partial = await reader.readTile(0, 2n, 188);
    t.equal(partial.length, 188 * 32);
    t.equal(reader.cachedFull(tilePath({ level: 0, index: 2n, width: 188 })), undefined);
    await reader.readBundle(2n, 188);
    t.equal(reader.cachedFull(tilePath({ level: 'entries', index: 2n, width: 188 })), undefined);
    t.equal(reader.stats().tiles.count, 1);
    t.equal(reader.stats().bundles.count, 1);
  });

  t.test('the route serves cached full tiles with the same bytes and headers', async (t) => {
    const url = `/${tilePath({ level: 0, index: 0n, width: 256 })}`;
    const first = await app.inject({ url });
    const second = await app.inject({ url });
    t.equal(first.statusCode, 200);
    t.equal(second.statusCode, 200);
    t.same(second.rawPayload, first.rawPayload);
    t.same([...second.rawPayload.subarray(0, 32)], [...leafHashes[0]!]);
    for (const h of ['content-type', 'cache-control']) t.equal(second.headers[h], first.headers[h]);
    t.equal(second.headers['cache-control'], 'public, max-age=31536000, immutable');
    const bad = await app.inject({ url: '/tile/0/0' });
    t.equal(bad.statusCode, 400);
    t.equal((bad.json() as { code: string }).code, 'TILE_PATH_INVALID');
    const beyond = await app.inject({ url: '/tile/0/003' });
    t.equal(beyond.statusCode, 404);
  });
});
