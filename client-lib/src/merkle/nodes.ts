import { TlogError } from '../errors.js';

/** A complete subtree: the 2^level leaves starting at leaf index * 2^level. DESIGN.md "Contract details". */
export interface NodeId {
  level: number;
  index: bigint;
}

/**
 * One proof hash, given as the complete nodes whose combination is that hash: a single node for a
 * complete subtree, or (for a right-edge subtree of the tree) the perfect subtrees of its binary
 * decomposition, left to right, hashed together from the right.
 */
export type ProofElement = NodeId[];

/**
 * Reads the hash of a complete node. Returns a Promise when storage is asynchronous; the proof
 * functions then return a Promise too.
 */
export type GetNode = (level: number, index: bigint) => Uint8Array | Promise<Uint8Array>;

/** Throws SIZE_INVALID unless `size` is a bigint in [0, 2^64). */
export function checkSize(size: bigint, what = 'size'): void {
  if (typeof size !== 'bigint') throw new TlogError('SIZE_INVALID', `${what} is not a bigint`);
  if (size < 0n || size > 0xffffffffffffffffn)
    throw new TlogError('SIZE_INVALID', `${what} ${size} out of range`);
}

/** Number of bits needed for n (0 for 0). */
export function bitLength(n: bigint): number {
  return n === 0n ? 0 : n.toString(2).length;
}

/** Largest power of two strictly less than n (n >= 2). RFC 6962 section 2.1. */
export function splitPoint(n: bigint): bigint {
  return 1n << BigInt(bitLength(n - 1n) - 1);
}

/**
 * The perfect subtrees covering leaves [start, end), left to right, where start is a multiple
 * of the largest power of two <= end - start (true of every subtree in the RFC 6962 recursion).
 */
export function subtreeNodes(start: bigint, end: bigint): NodeId[] {
  const nodes: NodeId[] = [];
  let pos = start;
  let rest = end - start;
  while (rest > 0n) {
    const level = bitLength(rest) - 1;
    const width = 1n << BigInt(level);
    nodes.push({ level, index: pos >> BigInt(level) });
    pos += width;
    rest -= width;
  }
  return nodes;
}

/** Leaf ranges [start, end) of the audit path PATH(index, D[0:size]), leaf sibling first. RFC 6962 section 2.1.1. */
function inclusionRanges(index: bigint, size: bigint): [bigint, bigint][] {
  const ranges: [bigint, bigint][] = [];
  let start = 0n;
  let end = size;
  while (end - start > 1n) {
    const k = splitPoint(end - start);
    if (index < start + k) {
      ranges.push([start + k, end]);
      end = start + k;
    } else {
      ranges.push([start, start + k]);
      start += k;
    }
  }
  return ranges.reverse();
}

/** Leaf ranges of PROOF(oldSize, D[0:newSize]). RFC 6962 section 2.1.2. */
function consistencyRanges(oldSize: bigint, newSize: bigint): [bigint, bigint][] {
  const ranges: [bigint, bigint][] = [];
  let start = 0n;
  let end = newSize;
  let complete = true;
  while (oldSize !== end) {
    const k = splitPoint(end - start);
    if (oldSize <= start + k) {
      ranges.push([start + k, end]);
      end = start + k;
    } else {
      ranges.push([start, start + k]);
      start += k;
      complete = false;
    }
  }
  if (!complete) ranges.push([start, end]);
  return ranges.reverse();
}

/**
 * Which nodes make up the inclusion proof of leaf `index` in a tree of `size` leaves, leaf sibling
 * first. Requires 0 <= index < size. RFC 6962 section 2.1.1.
 */
export function inclusionProofNodes(index: bigint, size: bigint): ProofElement[] {
  checkSize(size);
  checkSize(index, 'index');
  if (index >= size) throw new TlogError('INDEX_OUT_OF_RANGE', `index ${index} not below size ${size}`);
  return inclusionRanges(index, size).map(([a, b]) => subtreeNodes(a, b));
}

/**
 * Which nodes make up the consistency proof from `oldSize` to `newSize`. Requires
 * 0 < oldSize <= newSize (an empty list when equal). RFC 6962 section 2.1.2.
 */
export function consistencyProofNodes(oldSize: bigint, newSize: bigint): ProofElement[] {
  checkSize(oldSize, 'old size');
  checkSize(newSize, 'new size');
  if (oldSize === 0n) throw new TlogError('SIZE_INVALID', 'consistency proof from size 0');
  if (oldSize > newSize)
    throw new TlogError('SIZE_INVALID', `old size ${oldSize} exceeds new size ${newSize}`);
  return consistencyRanges(oldSize, newSize).map(([a, b]) => subtreeNodes(a, b));
}
