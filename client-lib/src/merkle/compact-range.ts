import { TlogError } from '../errors.js';
import { checkHash, emptyRoot, hashChildren } from './hash.js';
import { checkSize, subtreeNodes, type GetNode } from './nodes.js';

/**
 * The state the sequencer keeps to extend the tree: the roots of the perfect subtrees of the
 * binary decomposition of `size`, left to right (largest first). Treat as immutable.
 */
export interface CompactRange {
  readonly size: bigint;
  readonly nodes: readonly Uint8Array[];
}

/** A complete node created while appending (level 0 nodes are the leaf hashes themselves). */
export interface NewNode {
  level: number;
  index: bigint;
  hash: Uint8Array;
}

/** Number of set bits of n. */
function popCount(n: bigint): number {
  let c = 0;
  for (const ch of n.toString(2)) if (ch === '1') c++;
  return c;
}

/** The compact range of the empty tree. */
export function emptyCompactRange(): CompactRange {
  return { size: 0n, nodes: [] };
}

function checkRange(range: CompactRange): void {
  checkSize(range.size);
  const want = popCount(range.size);
  if (range.nodes.length !== want) {
    throw new TlogError(
      'SIZE_INVALID',
      `compact range of size ${range.size} has ${range.nodes.length} nodes, want ${want}`,
    );
  }
}

/** Builds the compact range of a tree of `size` leaves from its complete nodes (Promise if getNode is async). */
export function compactRangeFromNodes(
  size: bigint,
  getNode: (level: number, index: bigint) => Uint8Array,
): CompactRange;
export function compactRangeFromNodes(
  size: bigint,
  getNode: (level: number, index: bigint) => Promise<Uint8Array>,
): Promise<CompactRange>;
export function compactRangeFromNodes(size: bigint, getNode: GetNode): CompactRange | Promise<CompactRange>;
export function compactRangeFromNodes(size: bigint, getNode: GetNode): CompactRange | Promise<CompactRange> {
  checkSize(size);
  const ids = subtreeNodes(0n, size);
  const hashes = ids.map((n) => getNode(n.level, n.index));
  const finish = (hs: Uint8Array[]): CompactRange => {
    hs.forEach((h, i) => checkHash(h, `node ${ids[i]!.level}/${ids[i]!.index}`));
    return { size, nodes: hs };
  };
  if (hashes.some((h) => h instanceof Promise)) return Promise.all(hashes).then(finish);
  return finish(hashes as Uint8Array[]);
}

/**
 * Appends leaf hashes to a compact range and returns the new range (the input is not modified).
 * `onNode`, if given, is called for every new complete node, leaves (level 0) included, in
 * creation order: these are what a log stores and serves as tiles. RFC 6962 section 2.1.
 */
export function appendLeafHashes(
  range: CompactRange,
  leafHashes: readonly Uint8Array[],
  onNode?: (node: NewNode) => void,
): CompactRange {
  checkRange(range);
  const nodes = range.nodes.slice();
  let size = range.size;
  for (let i = 0; i < leafHashes.length; i++) {
    let hash = leafHashes[i]!;
    checkHash(hash, `leaf hash ${i}`);
    if (onNode !== undefined) onNode({ level: 0, index: size, hash });
    // Merge with the trailing perfect subtrees: one per trailing 1 bit of the old size.
    let s = size;
    let level = 0;
    let index = size;
    while ((s & 1n) === 1n) {
      hash = hashChildren(nodes.pop()!, hash);
      s >>= 1n;
      level++;
      index >>= 1n;
      if (onNode !== undefined) onNode({ level, index, hash });
    }
    nodes.push(hash);
    size++;
  }
  if (size > 0xffffffffffffffffn) throw new TlogError('SIZE_INVALID', `size ${size} exceeds 2^64-1`);
  return { size, nodes };
}

/** The root hash (MTH) of the tree a compact range describes. RFC 6962 section 2.1. */
export function rootOfCompactRange(range: CompactRange): Uint8Array {
  checkRange(range);
  const n = range.nodes.length;
  if (n === 0) return emptyRoot();
  let root = range.nodes[n - 1]!;
  for (let i = n - 2; i >= 0; i--) root = hashChildren(range.nodes[i]!, root);
  return root;
}
