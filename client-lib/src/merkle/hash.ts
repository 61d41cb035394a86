import { sha256 } from '../crypto.js';
import { TlogError } from '../errors.js';

/** Length of every hash in the tree (SHA-256). */
export const HASH_SIZE = 32;

/** Throws HASH_INVALID unless `hash` is a 32-byte Uint8Array. `what` names it in the message. */
export function checkHash(hash: unknown, what = 'hash'): asserts hash is Uint8Array {
  if (!(hash instanceof Uint8Array)) throw new TlogError('HASH_INVALID', `${what} is not a Uint8Array`);
  if (hash.length !== HASH_SIZE)
    throw new TlogError('HASH_INVALID', `${what} has ${hash.length} bytes, want 32`);
}

/** Leaf hash SHA-256(0x00 || entry). RFC 6962 section 2.1. */
export function hashLeaf(entry: Uint8Array): Uint8Array {
  const buf = new Uint8Array(entry.length + 1);
  buf.set(entry, 1);
  return sha256(buf);
}

// Scratch buffer for interior hashes: the provider's sha256 is synchronous and returns a fresh
// array, so reusing the input buffer is safe and saves an allocation per node.
const nodeBuf = new Uint8Array(1 + 2 * HASH_SIZE);
nodeBuf[0] = 1;

/** Interior node hash SHA-256(0x01 || left || right); both must be 32 bytes. RFC 6962 section 2.1. */
export function hashChildren(left: Uint8Array, right: Uint8Array): Uint8Array {
  checkHash(left, 'left hash');
  checkHash(right, 'right hash');
  nodeBuf.set(left, 1);
  nodeBuf.set(right, 1 + HASH_SIZE);
  return sha256(nodeBuf);
}

/** Root of the empty tree, SHA-256(""). RFC 6962 section 2.1. */
export function emptyRoot(): Uint8Array {
  return sha256(new Uint8Array(0));
}

/** MTH of a list of leaf hashes (each 32 bytes). RFC 6962 section 2.1. */
export function rootFromLeafHashes(leafHashes: readonly Uint8Array[]): Uint8Array {
  if (leafHashes.length === 0) return emptyRoot();
  // Stack of perfect subtree roots; stack[i] has level levels[i].
  const stack: Uint8Array[] = [];
  const levels: number[] = [];
  for (let i = 0; i < leafHashes.length; i++) {
    const h = leafHashes[i]!;
    checkHash(h, `leaf hash ${i}`);
    let node = h;
    let level = 0;
    while (levels.length > 0 && levels[levels.length - 1] === level) {
      node = hashChildren(stack.pop()!, node);
      levels.pop();
      level++;
    }
    stack.push(node);
    levels.push(level);
  }
  let root = stack[stack.length - 1]!;
  for (let i = stack.length - 2; i >= 0; i--) root = hashChildren(stack[i]!, root);
  return root;
}
