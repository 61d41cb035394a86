import { TlogError } from '../errors.js';
import { checkHash, hashChildren } from './hash.js';
import { checkSize } from './nodes.js';

function checkProof(proof: readonly Uint8Array[]): void {
  if (!Array.isArray(proof)) throw new TlogError('PROOF_INVALID', 'proof is not an array');
  for (let i = 0; i < proof.length; i++) {
    const p = proof[i];
    if (!(p instanceof Uint8Array) || p.length !== 32) {
      throw new TlogError(
        'PROOF_INVALID',
        `proof hash ${i} has ${p instanceof Uint8Array ? p.length : 'no'} bytes, want 32`,
      );
    }
  }
}

function bitLen(n: bigint): number {
  return n === 0n ? 0 : n.toString(2).length;
}

function popCount(n: bigint): number {
  let c = 0;
  for (const ch of n.toString(2)) if (ch === '1') c++;
  return c;
}

/** Expected inclusion proof length for index < size (transparency-dev/merkle decompInclProof). */
function inclusionProofSize(index: bigint, size: bigint): number {
  const inner = bitLen(index ^ (size - 1n));
  return inner + popCount(index >> BigInt(inner));
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * The root implied by an inclusion proof of `leafHash` at `index` in a tree of `size` leaves.
 * Requires index < size, a 32-byte leaf hash and exactly the expected number of 32-byte proof
 * hashes. RFC 9162 section 2.1.3.2 (steps 1-5).
 */
export function rootFromInclusionProof(
  leafHash: Uint8Array,
  index: bigint,
  size: bigint,
  proof: readonly Uint8Array[],
): Uint8Array {
  checkSize(size);
  checkSize(index, 'index');
  checkHash(leafHash, 'leaf hash');
  checkProof(proof);
  if (index >= size) throw new TlogError('INDEX_OUT_OF_RANGE', `index ${index} not below size ${size}`);
  const want = inclusionProofSize(index, size);
  if (proof.length !== want)
    throw new TlogError('PROOF_INVALID', `proof has ${proof.length} hashes, want ${want}`);
  let fn = index;
  let sn = size - 1n;
  let r = leafHash;
  for (const p of proof) {
    if (sn === 0n) throw new TlogError('PROOF_INVALID', 'proof is too long');
    if ((fn & 1n) === 1n || fn === sn) {
      r = hashChildren(p, r);
      if ((fn & 1n) === 0n) {
        while ((fn & 1n) === 0n && fn !== 0n) {
          fn >>= 1n;
          sn >>= 1n;
        }
      }
    } else {
      r = hashChildren(r, p);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  if (sn !== 0n) throw new TlogError('PROOF_INVALID', 'proof is too short');
  return r;
}

/**
 * Verifies that `leafHash` is at `index` in the tree of `size` leaves with root `root`. Throws
 * INDEX_OUT_OF_RANGE, HASH_INVALID or PROOF_INVALID. RFC 9162 section 2.1.3.2.
 */
export function verifyInclusion(
  leafHash: Uint8Array,
  index: bigint,
  size: bigint,
  proof: readonly Uint8Array[],
  root: Uint8Array,
): void {
  checkHash(root, 'root');
  const got = rootFromInclusionProof(leafHash, index, size, proof);
  if (!bytesEqual(got, root))
    throw new TlogError(
      'PROOF_INVALID',
      `inclusion proof for index ${index} does not lead to the root of size ${size}`,
    );
}

/** Expected consistency proof length for 0 < oldSize < newSize (transparency-dev/merkle). */
function consistencyProofSize(oldSize: bigint, newSize: bigint): number {
  const inner = bitLen((oldSize - 1n) ^ (newSize - 1n));
  const border = popCount((oldSize - 1n) >> BigInt(inner));
  let shift = 0;
  while (((oldSize >> BigInt(shift)) & 1n) === 0n) shift++;
  const start = oldSize === 1n << BigInt(shift) ? 0 : 1;
  return start + inner - shift + border;
}

/**
 * Verifies that the tree of `newSize` leaves with root `newRoot` extends the tree of `oldSize`
 * leaves with root `oldRoot`. Requires 0 < oldSize <= newSize (oldSize 0 is rejected, as
 * transparency-dev/merkle does; a witness handles old size 0 itself); equal sizes need an empty
 * proof and byte-equal roots (compared as given, like transparency-dev/merkle). Throws SIZE_INVALID, HASH_INVALID or PROOF_INVALID. RFC 9162 section 2.1.4.2.
 */
export function verifyConsistency(
  oldSize: bigint,
  newSize: bigint,
  oldRoot: Uint8Array,
  newRoot: Uint8Array,
  proof: readonly Uint8Array[],
): void {
  checkSize(oldSize, 'old size');
  checkSize(newSize, 'new size');
  checkProof(proof);
  if (oldSize > newSize)
    throw new TlogError('SIZE_INVALID', `old size ${oldSize} exceeds new size ${newSize}`);
  if (oldSize === 0n) throw new TlogError('SIZE_INVALID', 'consistency proof from size 0');
  if (oldSize === newSize) {
    if (proof.length !== 0) throw new TlogError('PROOF_INVALID', `proof has ${proof.length} hashes, want 0`);
    if (!bytesEqual(oldRoot, newRoot))
      throw new TlogError('PROOF_INVALID', `different roots for the same size ${oldSize}`);
    return;
  }
  checkHash(oldRoot, 'old root');
  checkHash(newRoot, 'new root');
  const want = consistencyProofSize(oldSize, newSize);
  if (proof.length !== want)
    throw new TlogError('PROOF_INVALID', `proof has ${proof.length} hashes, want ${want}`);
  // RFC 9162 section 2.1.4.2, step by step.
  const path = (oldSize & (oldSize - 1n)) === 0n ? [oldRoot, ...proof] : [...proof];
  let fn = oldSize - 1n;
  let sn = newSize - 1n;
  while ((fn & 1n) === 1n) {
    fn >>= 1n;
    sn >>= 1n;
  }
  let fr = path[0]!;
  let sr = path[0]!;
  for (let i = 1; i < path.length; i++) {
    const c = path[i]!;
    if (sn === 0n) throw new TlogError('PROOF_INVALID', 'proof is too long');
    if ((fn & 1n) === 1n || fn === sn) {
      fr = hashChildren(c, fr);
      sr = hashChildren(c, sr);
      if ((fn & 1n) === 0n) {
        while ((fn & 1n) === 0n && fn !== 0n) {
          fn >>= 1n;
          sn >>= 1n;
        }
      }
    } else {
      sr = hashChildren(sr, c);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  if (sn !== 0n) throw new TlogError('PROOF_INVALID', 'proof is too short');
  if (!bytesEqual(fr, oldRoot))
    throw new TlogError(
      'PROOF_INVALID',
      `consistency proof does not lead to the root of old size ${oldSize}`,
    );
  if (!bytesEqual(sr, newRoot))
    throw new TlogError(
      'PROOF_INVALID',
      `consistency proof does not lead to the root of new size ${newSize}`,
    );
}
