// The fast code against the literal RFC 6962 reference in reference.ts, plus mutations.
import t, { type Test } from 'tap';
import {
  appendLeafHashes,
  compactRangeFromNodes,
  consistencyProof,
  emptyCompactRange,
  hashChildren,
  inclusionProof,
  rootFromInclusionProof,
  rootOfCompactRange,
  verifyConsistency,
  verifyInclusion,
  type NewNode,
} from '../../src/index.js';
import { refLeafHash, refMTH, refPATH, refPROOF } from './reference.js';

const N = 1000;
const data = Array.from({ length: N }, (_, i) => new TextEncoder().encode(`leaf ${i}`));
const leafHashes = data.map(refLeafHash);
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

// Complete nodes built level by level from the reference leaf hashes.
const levels: Uint8Array[][] = [leafHashes];
while (levels[levels.length - 1]!.length > 1) {
  const prev = levels[levels.length - 1]!;
  const next: Uint8Array[] = [];
  for (let i = 0; i + 1 < prev.length; i += 2) next.push(hashChildren(prev[i]!, prev[i + 1]!));
  levels.push(next);
}
const getNode = (level: number, index: bigint): Uint8Array => {
  const h = levels[level]?.[Number(index)];
  if (h === undefined) throw new Error(`no node ${level}/${index}`);
  return h;
};

const refRoots = new Map<number, Uint8Array>();
const refRoot = (n: number): Uint8Array => {
  let r = refRoots.get(n);
  if (r === undefined) {
    r = refMTH(data.slice(0, n));
    refRoots.set(n, r);
  }
  return r;
};

t.test('roots and compact ranges for every size 1..1000', async (t) => {
  let range = emptyCompactRange();
  const created: NewNode[] = [];
  let bad = 0;
  for (let n = 1; n <= N; n++) {
    range = appendLeafHashes(range, [leafHashes[n - 1]!], (x) => created.push(x));
    if (hex(rootOfCompactRange(range)) !== hex(refRoot(n))) bad++;
    if (
      n % 97 === 0 &&
      hex(rootOfCompactRange(compactRangeFromNodes(BigInt(n), getNode))) !== hex(refRoot(n))
    )
      bad++;
  }
  t.equal(bad, 0, 'every root equals the reference');
  // Every complete node of the 1000-leaf tree was reported exactly once, with the right hash.
  const want = levels.reduce((a, l) => a + l.length, 0);
  t.equal(created.length, want);
  t.ok(created.every((x) => hex(x.hash) === hex(getNode(x.level, x.index))));
  // Appending in batches gives the same range.
  const batched = appendLeafHashes(
    appendLeafHashes(emptyCompactRange(), leafHashes.slice(0, 333)),
    leafHashes.slice(333),
  );
  t.equal(hex(rootOfCompactRange(batched)), hex(refRoot(N)));
});

async function proofsMatch(t: Test, sizes: number[], indices: (n: number) => number[]): Promise<void> {
  let bad = 0;
  let count = 0;
  for (const n of sizes) {
    for (const m of indices(n)) {
      count++;
      const want = refPATH(m, data.slice(0, n)).map(hex);
      const got = inclusionProof(BigInt(m), BigInt(n), getNode);
      if (got.map(hex).join() !== want.join()) bad++;
      verifyInclusion(leafHashes[m]!, BigInt(m), BigInt(n), got, refRoot(n));
    }
  }
  t.equal(bad, 0, `${count} inclusion proofs equal the reference`);
}

t.test('inclusion proofs equal the reference', async (t) => {
  const all = (n: number): number[] => Array.from({ length: n }, (_, i) => i);
  await proofsMatch(
    t,
    Array.from({ length: 130 }, (_, i) => i + 1),
    all,
  );
  const sample = (n: number): number[] =>
    [0, 1, n >> 1, n - 2, n - 1, (n * 7) >> 3].filter((m) => m >= 0 && m < n);
  await proofsMatch(t, [131, 255, 256, 257, 300, 511, 512, 513, 777, 999, 1000], sample);
});

t.test('consistency proofs equal the reference', async (t) => {
  let bad = 0;
  let count = 0;
  const check = (m: number, n: number): void => {
    count++;
    const want = refPROOF(m, data.slice(0, n)).map(hex);
    const got = consistencyProof(BigInt(m), BigInt(n), getNode);
    if (got.map(hex).join() !== want.join()) bad++;
    verifyConsistency(BigInt(m), BigInt(n), refRoot(m), refRoot(n), got);
  };
  for (let n = 1; n <= 130; n++) for (let m = 1; m <= n; m++) check(m, n);
  for (const n of [131, 256, 257, 300, 513, 1000])
    for (const m of [1, 2, 3, 64, 127, 128, 129, 255, 256, n - 1, n]) if (m <= n) check(m, n);
  t.equal(bad, 0, `${count} consistency proofs equal the reference`);
});

t.test('async getNode gives the same proofs', async (t) => {
  const asyncGet = async (level: number, index: bigint): Promise<Uint8Array> => getNode(level, index);
  const p = await inclusionProof(5n, 300n, asyncGet);
  t.same(p.map(hex), refPATH(5, data.slice(0, 300)).map(hex));
  const c = await consistencyProof(7n, 300n, asyncGet);
  t.same(c.map(hex), refPROOF(7, data.slice(0, 300)).map(hex));
});

function flip(b: Uint8Array, bit: number): Uint8Array {
  const c = b.slice();
  c[bit >> 3]! ^= 1 << (bit & 7);
  return c;
}

t.test('inclusion mutations are rejected with the right code', async (t) => {
  for (const [m, n] of [
    [0, 1],
    [5, 8],
    [6, 7],
    [100, 300],
    [299, 300],
    [511, 1000],
  ] as const) {
    const idx = BigInt(m);
    const size = BigInt(n);
    const proof = inclusionProof(idx, size, getNode);
    const root = refRoot(n);
    const leaf = leafHashes[m]!;
    verifyInclusion(leaf, idx, size, proof, root);
    proof.forEach((_, i) => {
      const bad = proof.slice();
      bad[i] = flip(bad[i]!, (i * 37) % 256);
      t.throws(
        () => verifyInclusion(leaf, idx, size, bad, root),
        { code: 'PROOF_INVALID' },
        `flip hash ${i}`,
      );
    });
    if (proof.length > 0)
      t.throws(
        () => verifyInclusion(leaf, idx, size, proof.slice(1), root),
        { code: 'PROOF_INVALID' },
        'short',
      );
    t.throws(
      () => verifyInclusion(leaf, idx, size, [...proof, leaf], root),
      { code: 'PROOF_INVALID' },
      'long',
    );
    t.throws(
      () => verifyInclusion(flip(leaf, 3), idx, size, proof, root),
      { code: 'PROOF_INVALID' },
      'wrong leaf',
    );
    t.throws(
      () => verifyInclusion(leaf, idx, size, proof, flip(root, 9)),
      { code: 'PROOF_INVALID' },
      'wrong root',
    );
    if (m > 0)
      t.throws(() => verifyInclusion(leaf, idx - 1n, size, proof, root), { name: 'TlogError' }, 'index - 1');
    t.throws(() => verifyInclusion(leaf, idx + 1n, size, proof, root), { name: 'TlogError' }, 'index + 1');
    // A changed size is only detectable when it changes the proof's shape: the inclusion proof
    // alone does not authenticate the size (the checkpoint does).
    for (const s of [n + 1, n - 1, n * 2]) {
      if (s > m && refPATH(m, data.slice(0, s)).length !== proof.length) {
        t.throws(
          () => verifyInclusion(leaf, idx, BigInt(s), proof, root),
          { code: 'PROOF_INVALID' },
          `size ${s}`,
        );
      }
    }
    t.throws(() => verifyInclusion(leaf, size, size, proof, root), { code: 'INDEX_OUT_OF_RANGE' });
    t.throws(() => verifyInclusion(leaf.subarray(1), idx, size, proof, root), { code: 'HASH_INVALID' });
  }
  t.throws(() => inclusionProof(3n, 3n, getNode), { code: 'INDEX_OUT_OF_RANGE' });
  t.throws(() => verifyInclusion(leafHashes[0]!, 0n, 2n, [new Uint8Array(31)], refRoot(2)), {
    code: 'PROOF_INVALID',
  });
  t.throws(() => rootFromInclusionProof(leafHashes[0]!, 0n, 2n, []), {
    code: 'PROOF_INVALID',
    message: 'proof has 0 hashes, want 1',
  });
});

t.test('consistency mutations are rejected with the right code', async (t) => {
  for (const [m, n] of [
    [1, 2],
    [3, 7],
    [4, 8],
    [6, 8],
    [100, 300],
    [256, 1000],
    [999, 1000],
  ] as const) {
    const a = BigInt(m);
    const b = BigInt(n);
    const proof = consistencyProof(a, b, getNode);
    const r1 = refRoot(m);
    const r2 = refRoot(n);
    verifyConsistency(a, b, r1, r2, proof);
    proof.forEach((_, i) => {
      const bad = proof.slice();
      bad[i] = flip(bad[i]!, (i * 53) % 256);
      t.throws(() => verifyConsistency(a, b, r1, r2, bad), { code: 'PROOF_INVALID' }, `flip hash ${i}`);
    });
    t.throws(() => verifyConsistency(a, b, r1, r2, proof.slice(1)), { code: 'PROOF_INVALID' }, 'short');
    t.throws(() => verifyConsistency(a, b, r1, r2, [...proof, r1]), { code: 'PROOF_INVALID' }, 'long');
    t.throws(
      () => verifyConsistency(a, b, flip(r1, 1), r2, proof),
      { code: 'PROOF_INVALID' },
      'wrong old root',
    );
    t.throws(
      () => verifyConsistency(a, b, r1, flip(r2, 1), proof),
      { code: 'PROOF_INVALID' },
      'wrong new root',
    );
    for (const [s1, s2] of [
      [m + 1, n],
      [m - 1, n],
      [m, n + 1],
      [m, 2 * n],
    ] as const) {
      if (s1 >= 1 && s1 < s2 && s2 <= N && refPROOF(s1, data.slice(0, s2)).length !== proof.length) {
        t.throws(
          () => verifyConsistency(BigInt(s1), BigInt(s2), r1, r2, proof),
          { code: 'PROOF_INVALID' },
          `sizes ${s1}->${s2}`,
        );
      }
    }
    t.throws(
      () => verifyConsistency(a + 1n, b, r1, r2, proof),
      { name: 'TlogError' },
      'old size + 1 with the old root',
    );
  }
  t.throws(() => verifyConsistency(0n, 5n, refRoot(0), refRoot(5), []), { code: 'SIZE_INVALID' });
  t.throws(() => verifyConsistency(0n, 0n, refRoot(0), refRoot(0), []), { code: 'SIZE_INVALID' });
  t.throws(() => verifyConsistency(5n, 4n, refRoot(5), refRoot(4), []), { code: 'SIZE_INVALID' });
  t.throws(() => verifyConsistency(5n, 5n, refRoot(5), refRoot(4), []), { code: 'PROOF_INVALID' });
  t.throws(() => consistencyProof(0n, 4n, getNode), { code: 'SIZE_INVALID' });
});
