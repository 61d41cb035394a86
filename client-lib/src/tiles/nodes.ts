import { TlogError } from '../errors.js';
import { hashChildren } from '../merkle/hash.js';
import { checkSize, type GetNode } from '../merkle/nodes.js';
import { TILE_HEIGHT, TILE_WIDTH } from './path.js';

/** Reads a tile's bytes (width hashes of 32 bytes, concatenated); may return a Promise. */
export type ReadTile = (level: number, index: bigint, width: number) => Uint8Array | Promise<Uint8Array>;

/** Splits tile bytes into 32-byte hashes; requires a multiple of 32 bytes (and `width` hashes when given). */
export function leafHashesFromTile(bytes: Uint8Array, width?: number): Uint8Array[] {
  if (bytes.length % 32 !== 0 || bytes.length === 0 || bytes.length > TILE_WIDTH * 32) {
    throw new TlogError('TILE_INVALID', `tile has ${bytes.length} bytes, not 1..256 hashes`);
  }
  if (width !== undefined && bytes.length !== width * 32)
    throw new TlogError('TILE_INVALID', `tile has ${bytes.length / 32} hashes, want ${width}`);
  const out: Uint8Array[] = [];
  for (let o = 0; o < bytes.length; o += 32) out.push(bytes.slice(o, o + 32));
  return out;
}

function perfectRoot(hashes: Uint8Array[], start: number, n: number): Uint8Array {
  if (n === 1) return hashes[start]!;
  const half = n / 2;
  return hashChildren(perfectRoot(hashes, start, half), perfectRoot(hashes, start + half, half));
}

/**
 * A getNode for the proof functions backed by tiles of a tree of `size` leaves: a node at level l
 * is read from the tile at level floor(l/8) (hashing inside the tile when l % 8 != 0), and only tiles
 * that exist at `size` are read, partial ones with their width. Tiles are cached per reader. Returns
 * Promises when readTile does. c2sp.org/tlog-tiles.
 */
export function tileNodeReader(
  size: bigint,
  readTile: (level: number, index: bigint, width: number) => Uint8Array,
): (level: number, index: bigint) => Uint8Array;
export function tileNodeReader(
  size: bigint,
  readTile: (level: number, index: bigint, width: number) => Promise<Uint8Array>,
): (level: number, index: bigint) => Promise<Uint8Array>;
export function tileNodeReader(size: bigint, readTile: ReadTile): GetNode;
export function tileNodeReader(size: bigint, readTile: ReadTile): GetNode {
  checkSize(size);
  const cache = new Map<string, Uint8Array[] | Promise<Uint8Array[]>>();
  const load = (tileLevel: number, tileIndex: bigint): Uint8Array[] | Promise<Uint8Array[]> => {
    const key = `${tileLevel}/${tileIndex}`;
    let hit = cache.get(key);
    if (hit === undefined) {
      const n = size >> BigInt(TILE_HEIGHT * tileLevel);
      const width = (tileIndex + 1n) * 256n <= n ? TILE_WIDTH : Number(n - tileIndex * 256n);
      const r = readTile(tileLevel, tileIndex, width);
      hit = r instanceof Promise ? r.then((b) => leafHashesFromTile(b, width)) : leafHashesFromTile(r, width);
      if (hit instanceof Promise) hit.catch(() => cache.delete(key));
      cache.set(key, hit);
    }
    return hit;
  };
  return (level: number, index: bigint) => {
    if (!Number.isInteger(level) || level < 0 || level > 63)
      throw new TlogError('INDEX_OUT_OF_RANGE', `node level ${level} not in 0..63`);
    if ((index + 1n) << BigInt(level) > size)
      throw new TlogError('INDEX_OUT_OF_RANGE', `node ${level}/${index} is not complete at size ${size}`);
    const tileLevel = Math.floor(level / TILE_HEIGHT);
    const r = level % TILE_HEIGHT;
    const first = index << BigInt(r);
    const tileIndex = first >> 8n;
    const pos = Number(first & 255n);
    const count = 1 << r;
    const hashes = load(tileLevel, tileIndex);
    if (hashes instanceof Promise) return hashes.then((hs) => perfectRoot(hs, pos, count));
    return perfectRoot(hashes, pos, count);
  };
}
