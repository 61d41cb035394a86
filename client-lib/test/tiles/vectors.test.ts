// Vectors: client-lib/test/vectors/tiles.json (C2SP tlog-tiles; golang/mod sumdb/tlog tests,
// BSD-3-Clause; Tessera and Sunlight test data). Regenerate: see vectors/README.md.
import { readFileSync } from 'node:fs';
import t from 'tap';
import {
  consistencyProof,
  decodeEntryBundle,
  encodeEntryBundle,
  hashLeaf,
  inclusionProof,
  leafHashesFromTile,
  newTilesBetween,
  openNote,
  parseCheckpoint,
  parseTilePath,
  rootFromLeafHashes,
  rootFromNodes,
  tileNodeReader,
  tilePath,
  tilesForSize,
  verifyConsistency,
  verifyInclusion,
} from '../../src/index.js';

const v = JSON.parse(readFileSync(new URL('../../../test/vectors/tiles.json', import.meta.url), 'utf8'));
const notes = JSON.parse(readFileSync(new URL('../../../test/vectors/note.json', import.meta.url), 'utf8'));
const hx = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'hex'));
const toHex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

t.test('tile paths', async (t) => {
  for (const p of v.c2sp_tile_paths) {
    const tile = { level: p.level, index: BigInt(p.index), width: p.width };
    t.equal(tilePath(tile), p.path);
    t.same(parseTilePath(p.path), tile);
  }
  for (const p of v.c2sp_entry_bundle_paths) {
    const tile = { level: 'entries' as const, index: BigInt(p.index), width: p.width };
    t.equal(tilePath(tile), p.path);
    t.same(parseTilePath(p.path), tile);
  }
  // Go sumdb paths carry the height: not C2SP tile paths.
  for (const p of v.go_sumdb_tile_paths)
    t.throws(() => parseTilePath(p.path), { code: 'TILE_PATH_INVALID' }, p.path);
  for (const bad of [
    'tile/0/000.p/0',
    'tile/0/000.p/256',
    'tile/0/000.p/015',
    'tile/0/x000/005',
    'tile/0/5',
    'tile/0/0005',
    'tile/00/000',
    'tile/64/000',
    'tile/-1/000',
    'tile/0/001/002',
    'tile/0/x001',
    'tile/data/000',
    'tile/0/000/',
    '/tile/0/000',
    'tile/0/000.p/',
    'tile/entries/000.p/1x',
    'tile/0/x1000/000',
  ]) {
    t.throws(() => parseTilePath(bad), { code: 'TILE_PATH_INVALID' }, bad);
  }
  t.throws(() => tilePath({ level: 0, index: 0n, width: 0 }), { code: 'TILE_PATH_INVALID' });
  t.throws(() => tilePath({ level: 64, index: 0n, width: 1 }), { code: 'TILE_PATH_INVALID' });
});

t.test('geometry', async (t) => {
  for (const g of v.geometry) {
    const tiles = tilesForSize(BigInt(g.tree_size));
    for (const l of g.levels) {
      const at = tiles.filter((x) => x.level === l.level);
      t.equal(
        at.filter((x) => x.width === 256).length,
        l.full_tiles,
        `size ${g.tree_size} level ${l.level} full`,
      );
      const partial = at.filter((x) => x.width < 256);
      t.same(partial.map(tilePath), l.partial_path === null ? [] : [l.partial_path]);
    }
    t.equal(new Set(tiles.map((x) => x.level)).size, g.levels.length);
  }
  for (const n of v.new_tiles_when_growing_h8) {
    t.same(newTilesBetween(BigInt(n.from), BigInt(n.to)).map(tilePath), n.tiles, `${n.from} -> ${n.to}`);
  }
  t.same(newTilesBetween(70000n, 70000n), []);
  t.same(tilesForSize(0n), []);
});

t.test('entry bundles', async (t) => {
  const entries = [new Uint8Array(0), Uint8Array.of(1, 2, 3), new Uint8Array(65535).fill(9)];
  const b = encodeEntryBundle(entries);
  t.same(decodeEntryBundle(b), entries);
  t.same(decodeEntryBundle(b, 3), entries);
  t.throws(() => decodeEntryBundle(b, 2), { code: 'BUNDLE_MALFORMED' });
  t.throws(() => decodeEntryBundle(b.subarray(0, b.length - 1)), { code: 'BUNDLE_MALFORMED' }, 'truncated');
  t.throws(
    () => decodeEntryBundle(Uint8Array.of(...b.subarray(0, 5), 0)),
    { code: 'BUNDLE_MALFORMED' },
    'trailing byte',
  );
  t.throws(() => encodeEntryBundle([new Uint8Array(65536)]), { code: 'BUNDLE_MALFORMED' });
  t.throws(() => encodeEntryBundle(Array.from({ length: 257 }, () => new Uint8Array(0))), {
    code: 'BUNDLE_MALFORMED',
  });
});

t.test('tessera testdata tiles and bundles', async (t) => {
  const td = v.tile_contents.tessera_testdata;
  const leaves: Uint8Array[] = td.leaves_utf8.map((s: string) => new TextEncoder().encode(s));
  const tl = notes.checkpoints.tessera_testdata_log;
  for (let w = 1; w <= leaves.length; w++) {
    const tile = hx(td.files[`tile/0/000.p/${w}`]);
    const bundle = hx(td.files[`tile/entries/000.p/${w}`]);
    t.same(decodeEntryBundle(bundle, w), leaves.slice(0, w));
    t.same(toHex(encodeEntryBundle(leaves.slice(0, w))), td.files[`tile/entries/000.p/${w}`]);
    const hashes = leafHashesFromTile(tile, w);
    t.same(
      hashes.map(toHex),
      leaves.slice(0, w).map((l) => toHex(hashLeaf(l))),
    );
    const cp = parseCheckpoint(openNote(tl.checkpoints[w].note, [tl.vkey]).text);
    t.equal(toHex(rootFromLeafHashes(hashes)), toHex(cp.root), `root of size ${w} from tiles`);
    const reader = tileNodeReader(BigInt(w), (level, index, width) => {
      t.equal(level, 0);
      t.equal(index, 0n);
      t.equal(width, w);
      return tile;
    });
    t.equal(toHex(rootFromNodes(BigInt(w), reader)), toHex(cp.root));
  }
});

t.test('sunlight 300: root and proofs from tiles alone', async (t) => {
  const s = v.tile_contents.sunlight_mirror_300;
  const reads: string[] = [];
  const readTile = async (level: number, index: bigint, width: number): Promise<Uint8Array> => {
    const path = tilePath({ level, index, width });
    reads.push(path);
    const hex = s.files[path];
    if (hex === undefined) throw new Error(`no tile ${path}`);
    return hx(hex);
  };
  const reader = tileNodeReader(300n, readTile);
  const root = await rootFromNodes(300n, reader);
  t.equal(toHex(root), s.root_hex);
  // The root needs only the level-1 tile (the first 256 leaves) and the partial level-0 tile.
  t.same([...new Set(reads)].sort(), ['tile/0/001.p/44', 'tile/1/000.p/1']);
  const data = Array.from({ length: 300 }, (_, i) => new TextEncoder().encode(`record ${i}`));
  for (const i of [0, 1, 100, 255, 256, 299]) {
    const proof = await inclusionProof(BigInt(i), 300n, reader);
    verifyInclusion(hashLeaf(data[i]!), BigInt(i), 300n, proof, root);
  }
  t.ok(reads.includes('tile/0/000'), 'proofs into the first 256 leaves read the full level-0 tile');
  const old = rootFromLeafHashes(data.slice(0, 37).map((d) => hashLeaf(d)));
  verifyConsistency(37n, 300n, old, root, await consistencyProof(37n, 300n, reader));
  // Nodes that are not complete at size 300 cannot be read.
  t.throws(() => reader(1, 150n), { code: 'INDEX_OUT_OF_RANGE' });
  t.throws(() => reader(9, 0n), { code: 'INDEX_OUT_OF_RANGE' });
  // A tile of the wrong width is rejected.
  const wrong = tileNodeReader(300n, () => new Uint8Array(64));
  t.throws(() => wrong(0, 0n), { code: 'TILE_INVALID' });
});
