// Vectors: client-lib/test/vectors/merkle.json (transparency-dev/merkle testdata, Apache-2.0;
// Sunlight test data). Regenerate: see vectors/README.md.
import { readFileSync } from 'node:fs';
import t from 'tap';
import {
  emptyRoot,
  hashChildren,
  hashLeaf,
  inclusionProof,
  consistencyProof,
  rootFromLeafHashes,
  verifyConsistency,
  verifyInclusion,
  rootFromNodes,
} from '../../src/index.js';

const v = JSON.parse(readFileSync(new URL('../../../test/vectors/merkle.json', import.meta.url), 'utf8'));
const hx = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'hex'));
const toHex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

const leaves: Uint8Array[] = v.leaves_hex.map(hx);
const leafHashes = leaves.map((l) => hashLeaf(l));
const nodes: string[][] = v.node_hashes_by_level;
const getNode = (level: number, index: bigint): Uint8Array => hx(nodes[level]![Number(index)]!);

t.test('hashing', async (t) => {
  t.equal(toHex(emptyRoot()), 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
  t.same(leafHashes.map(toHex), v.leaf_hashes_hex);
  for (const r of v.roots)
    t.equal(toHex(rootFromLeafHashes(leafHashes.slice(0, r.tree_size))), r.root_hex, `root ${r.tree_size}`);
  for (let l = 1; l < nodes.length; l++) {
    for (let i = 0; i < nodes[l]!.length; i++) {
      t.equal(
        toHex(hashChildren(hx(nodes[l - 1]![2 * i]!), hx(nodes[l - 1]![2 * i + 1]!))),
        nodes[l]![i],
        `node ${l}/${i}`,
      );
    }
  }
  t.throws(() => hashChildren(new Uint8Array(31), new Uint8Array(32)), { code: 'HASH_INVALID' });
});

t.test('inclusion proofs (sizes 1..8)', async (t) => {
  for (const p of v.inclusion_proofs) {
    const idx = BigInt(p.leaf_index);
    const size = BigInt(p.tree_size);
    t.same(inclusionProof(idx, size, getNode).map(toHex), p.path, `prove ${p.leaf_index}/${p.tree_size}`);
    verifyInclusion(hx(p.leaf_hash), idx, size, p.path.map(hx), hx(p.root));
    t.equal(toHex(rootFromNodes(size, getNode)), p.root);
  }
});

t.test('consistency proofs (sizes 1..8)', async (t) => {
  for (const p of v.consistency_proofs) {
    const s1 = BigInt(p.size1);
    const s2 = BigInt(p.size2);
    t.same(consistencyProof(s1, s2, getNode).map(toHex), p.path, `prove ${p.size1}->${p.size2}`);
    verifyConsistency(s1, s2, hx(p.root1), hx(p.root2), p.path.map(hx));
  }
});

t.test('transparency-dev probes', async (t) => {
  for (const p of v.probes) {
    const run = (): void => {
      if (p.kind === 'inclusion') {
        verifyInclusion(
          hx(p.leaf_hash),
          BigInt(p.leaf_index),
          BigInt(p.tree_size),
          p.path.map(hx),
          hx(p.root),
        );
      } else {
        verifyConsistency(BigInt(p.size1), BigInt(p.size2), hx(p.root1), hx(p.root2), p.path.map(hx));
      }
    };
    const name = `${p.file}: ${p.desc}`;
    if (p.want_error) t.throws(run, { name: 'TlogError' }, name);
    else t.doesNotThrow(run, name);
  }
});

t.test('300-leaf tree (Sunlight)', async (t) => {
  const lt = v.larger_tree;
  const data = Array.from({ length: lt.tree_size }, (_, i) => new TextEncoder().encode(`record ${i}`));
  const hs = data.map((d) => hashLeaf(d));
  t.equal(toHex(rootFromLeafHashes(hs)), lt.root_hex);
  for (const p of lt.inclusion_proofs) {
    t.equal(toHex(hs[p.leaf_index]!), p.leaf_hash);
    verifyInclusion(hx(p.leaf_hash), BigInt(p.leaf_index), BigInt(p.tree_size), p.path.map(hx), hx(p.root));
  }
  for (const p of lt.consistency_proofs) {
    verifyConsistency(BigInt(p.size1), BigInt(p.size2), hx(p.root1), hx(p.root2), p.path.map(hx));
  }
});
