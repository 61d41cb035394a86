import { checkHash, emptyRoot, hashChildren } from './hash.js';
import {
  checkSize,
  consistencyProofNodes,
  inclusionProofNodes,
  subtreeNodes,
  type GetNode,
  type ProofElement,
} from './nodes.js';

/** getNode that answers synchronously. */
export type GetNodeSync = (level: number, index: bigint) => Uint8Array;
/** getNode that answers with a Promise. */
export type GetNodeAsync = (level: number, index: bigint) => Promise<Uint8Array>;

function isPromise<T>(v: T | Promise<T>): v is Promise<T> {
  return typeof (v as { then?: unknown } | null)?.then === 'function';
}

/** Hashes each element's node hashes together from the right. */
function combine(elements: ProofElement[], hashes: Uint8Array[]): Uint8Array[] {
  const out: Uint8Array[] = [];
  let o = 0;
  for (const element of elements) {
    const first = o;
    o += element.length;
    let h = hashes[o - 1]!;
    checkHash(h, `node ${element[element.length - 1]!.level}/${element[element.length - 1]!.index}`);
    for (let i = o - 2; i >= first; i--) {
      const left = hashes[i]!;
      checkHash(left, `node ${element[i - first]!.level}/${element[i - first]!.index}`);
      h = hashChildren(left, h);
    }
    out.push(h);
  }
  return out;
}

/** Fetches every node of `elements` and combines them; sync unless getNode returned a Promise. */
function resolve(elements: ProofElement[], getNode: GetNode): Uint8Array[] | Promise<Uint8Array[]> {
  const results: (Uint8Array | Promise<Uint8Array>)[] = [];
  let async = false;
  for (const element of elements) {
    for (const node of element) {
      const r = getNode(node.level, node.index);
      if (isPromise(r)) async = true;
      results.push(r);
    }
  }
  if (async) return Promise.all(results).then((hashes) => combine(elements, hashes));
  return combine(elements, results as Uint8Array[]);
}

/**
 * Inclusion proof (audit path) of leaf `index` in the tree of `size` leaves, built from complete
 * nodes read with `getNode`; right-edge subtrees are derived here. Returns a Promise when getNode
 * does. Requires 0 <= index < size. RFC 6962 section 2.1.1.
 */
export function inclusionProof(index: bigint, size: bigint, getNode: GetNodeSync): Uint8Array[];
export function inclusionProof(index: bigint, size: bigint, getNode: GetNodeAsync): Promise<Uint8Array[]>;
export function inclusionProof(
  index: bigint,
  size: bigint,
  getNode: GetNode,
): Uint8Array[] | Promise<Uint8Array[]>;
export function inclusionProof(
  index: bigint,
  size: bigint,
  getNode: GetNode,
): Uint8Array[] | Promise<Uint8Array[]> {
  return resolve(inclusionProofNodes(index, size), getNode);
}

/**
 * Consistency proof from `oldSize` to `newSize` built from complete nodes read with `getNode`.
 * Returns a Promise when getNode does. Requires 0 < oldSize <= newSize. RFC 6962 section 2.1.2.
 */
export function consistencyProof(oldSize: bigint, newSize: bigint, getNode: GetNodeSync): Uint8Array[];
export function consistencyProof(
  oldSize: bigint,
  newSize: bigint,
  getNode: GetNodeAsync,
): Promise<Uint8Array[]>;
export function consistencyProof(
  oldSize: bigint,
  newSize: bigint,
  getNode: GetNode,
): Uint8Array[] | Promise<Uint8Array[]>;
export function consistencyProof(
  oldSize: bigint,
  newSize: bigint,
  getNode: GetNode,
): Uint8Array[] | Promise<Uint8Array[]> {
  return resolve(consistencyProofNodes(oldSize, newSize), getNode);
}

/**
 * MTH of the tree of `size` leaves from its complete nodes (empty root for size 0). Returns a
 * Promise when getNode does. RFC 6962 section 2.1.
 */
export function rootFromNodes(size: bigint, getNode: GetNodeSync): Uint8Array;
export function rootFromNodes(size: bigint, getNode: GetNodeAsync): Promise<Uint8Array>;
export function rootFromNodes(size: bigint, getNode: GetNode): Uint8Array | Promise<Uint8Array>;
export function rootFromNodes(size: bigint, getNode: GetNode): Uint8Array | Promise<Uint8Array> {
  checkSize(size);
  if (size === 0n) return emptyRoot();
  const r = resolve([subtreeNodes(0n, size)], getNode);
  if (isPromise(r)) return r.then((hs) => hs[0]!);
  return r[0]!;
}
