// Tiles and proofs served from the store. Level-0 tiles are ranges of entries.leaf_hash; tile level
// L >= 1 holds the stored tree_nodes at tree level 8L. Full tiles never change, so they are cached.
import {
  TILE_WIDTH,
  concatBytes,
  consistencyProof,
  encodeEntryBundle,
  inclusionProof,
  tileNodeReader,
  TILE_HEIGHT,
  TlogError,
  hashChildren,
  tilePath,
  type GetNode,
} from '@vigil/client';
import { getEntryRange, getLeafHashes, getTreeNodes, type Db } from '../db/repository.js';

/** Most memoised subtree hashes outside full tiles (about 150 bytes each with their keys). */
export const NODE_CACHE_MAX = 100_000;
/** Bytes of full hash tiles kept, each with its inner nodes (16 KiB a tile: 256 MiB of tree per 64 MiB). */
export const TILE_CACHE_BYTES = 64 * 1024 * 1024;
/** Bytes of full entry bundles kept. */
export const BUNDLE_CACHE_BYTES = 32 * 1024 * 1024;

/** A least-recently-used map of immutable Buffers, bounded by the sum of their lengths. */
class ByteLru {
  readonly #maxBytes: number;
  readonly #map = new Map<string, Buffer>();
  #bytes = 0;
  constructor(maxBytes: number) {
    this.#maxBytes = maxBytes;
  }
  get maxBytes(): number {
    return this.#maxBytes;
  }
  get size(): number {
    return this.#map.size;
  }
  get bytes(): number {
    return this.#bytes;
  }
  get(key: string): Buffer | undefined {
    const v = this.#map.get(key);
    if (v !== undefined) {
      this.#map.delete(key);
      this.#map.set(key, v);
    }
    return v;
  }
  set(key: string, value: Buffer): void {
    if (value.length > this.#maxBytes) return;
    const old = this.#map.get(key);
    if (old !== undefined) {
      this.#map.delete(key);
      this.#bytes -= old.length;
    }
    this.#map.set(key, value);
    this.#bytes += value.length;
    while (this.#bytes > this.#maxBytes) {
      const [k, v] = this.#map.entries().next().value!;
      this.#map.delete(k);
      this.#bytes -= v.length;
    }
  }
}

/** Bytes of a tile tree: the 256 hashes of a full tile, then each level above them, up to its root. */
const TREE_HASHES = 2 * TILE_WIDTH - 1;

/** Offset, in hashes, of the first node `r` levels above the tile's own hashes in a tile tree. */
function layerOffset(r: number): number {
  return 2 * TILE_WIDTH - ((2 * TILE_WIDTH) >> r);
}

/** A full tile's hashes followed by every inner node above them (511 hashes in one Buffer). */
function buildTileTree(hashes: readonly Uint8Array[]): Buffer {
  const out = Buffer.allocUnsafe(TREE_HASHES * 32);
  for (let i = 0; i < TILE_WIDTH; i++) out.set(hashes[i]!, i * 32);
  for (let r = 1; r <= TILE_HEIGHT; r++) {
    const below = layerOffset(r - 1);
    const here = layerOffset(r);
    const n = TILE_WIDTH >> r;
    for (let i = 0; i < n; i++) {
      const left = out.subarray((below + 2 * i) * 32, (below + 2 * i + 1) * 32);
      const right = out.subarray((below + 2 * i + 1) * 32, (below + 2 * i + 2) * 32);
      out.set(hashChildren(left, right), (here + i) * 32);
    }
  }
  return out;
}

/** How full the caches are (for tests and diagnostics). */
export interface TileCacheStats {
  tiles: { count: number; bytes: number; maxBytes: number };
  bundles: { count: number; bytes: number; maxBytes: number };
  nodes: { count: number; max: number };
}

/** Reads tiles, bundles and proofs from the store. Callers make sure the tile exists at a published size. */
export class TileReader {
  readonly #db: Db;
  /** Full hash tiles by `level/index`, as tile trees (buildTileTree): immutable once full. */
  readonly #tiles: ByteLru;
  /** Full entry bundles by index. */
  readonly #bundles: ByteLru;
  /**
   * Hashes of complete subtrees outside cached tile trees, by `level/index`. A complete subtree's
   * hash never changes in an append-only tree, so one computed at any published size serves every
   * later size. Only nodes read outside a transaction (committed data) are kept.
   */
  readonly #nodes = new Map<string, Uint8Array>();
  /** Full tile and bundle reads in flight, by tile path (bounded by the requests in flight). */
  readonly #loading = new Map<string, Promise<Buffer>>();
  readonly #nodeMax: number;

  constructor(db: Db, limits: { tileBytes?: number; bundleBytes?: number; nodes?: number } = {}) {
    this.#db = db;
    this.#tiles = new ByteLru(limits.tileBytes ?? TILE_CACHE_BYTES);
    this.#bundles = new ByteLru(limits.bundleBytes ?? BUNDLE_CACHE_BYTES);
    this.#nodeMax = limits.nodes ?? NODE_CACHE_MAX;
  }

  stats(): TileCacheStats {
    return {
      tiles: { count: this.#tiles.size, bytes: this.#tiles.bytes, maxBytes: this.#tiles.maxBytes },
      bundles: { count: this.#bundles.size, bytes: this.#bundles.bytes, maxBytes: this.#bundles.maxBytes },
      nodes: { count: this.#nodes.size, max: this.#nodeMax },
    };
  }

  /**
   * A full tile or bundle already in memory, by its tile path (`tile/0/x001/234`,
   * `tile/entries/005`): what the read route serves without parsing the path or asking the store.
   * Anything in these caches was read outside a transaction, so it is committed and published.
   */
  cachedFull(path: string): Buffer | undefined {
    if (path.startsWith('tile/entries/')) return this.#bundles.get(path);
    return this.#tiles.get(path)?.subarray(0, TILE_WIDTH * 32);
  }

  /**
   * The tile tree of full tile `level`/`index`, from the cache or the store (outside a transaction).
   * Concurrent misses of one tile share its read: on a cold cache, 64 requests for proofs through
   * the same tile make one query, not 64.
   */
  #tileTree(level: number, index: bigint): Promise<Buffer> {
    const key = formatTileKey(level, index);
    const hit = this.#tiles.get(key);
    if (hit) return Promise.resolve(hit);
    return this.#loadOnce(key, this.#tiles, async () =>
      buildTileTree(await this.#readHashes(level, index, TILE_WIDTH, this.#db)),
    );
  }

  /** Reads a full tile or bundle once however many ask at the same time, then caches it in `cache`. */
  #loadOnce(key: string, cache: ByteLru, load: () => Promise<Buffer>): Promise<Buffer> {
    let loading = this.#loading.get(key);
    if (loading === undefined) {
      loading = load()
        .then((buf) => {
          cache.set(key, buf);
          return buf;
        })
        .finally(() => this.#loading.delete(key));
      this.#loading.set(key, loading);
    }
    return loading;
  }

  async #readHashes(level: number, index: bigint, width: number, db: Db): Promise<Uint8Array[]> {
    const start = index * BigInt(TILE_WIDTH);
    const hashes =
      level === 0 ? await getLeafHashes(db, start, width) : await getTreeNodes(db, level * 8, start, width);
    if (hashes.length !== width)
      throw new TileNotFoundError(`tile ${level}/${index} has ${hashes.length} of ${width} hashes`);
    return hashes;
  }

  /**
   * Puts full tile `level`/`index` in the cache from hashes its caller holds: the sequencer, right
   * after committing them. Only for committed, full tiles (a full tile never changes).
   */
  cacheFullTile(level: number, index: bigint, hashes: readonly Uint8Array[]): void {
    if (hashes.length !== TILE_WIDTH) throw new Error(`tile ${level}/${index} has ${hashes.length} hashes`);
    this.#tiles.set(formatTileKey(level, index), buildTileTree(hashes));
  }

  /** Hash tile `level`/`index` of `width` hashes (concatenated), or TILE_NOT_FOUND when not stored. */
  async readTile(level: number, index: bigint, width: number, db: Db = this.#db): Promise<Uint8Array> {
    const hit = this.#tiles.get(formatTileKey(level, index));
    if (hit) return hit.subarray(0, width * 32);
    if (width === TILE_WIDTH && db === this.#db)
      return (await this.#tileTree(level, index)).subarray(0, width * 32);
    return concatBytes(...(await this.#readHashes(level, index, width, db)));
  }

  /** Entry bundle `index` of `width` entries. */
  async readBundle(index: bigint, width: number): Promise<Uint8Array> {
    if (width !== TILE_WIDTH) return this.#readBundle(index, width);
    const key = tilePath({ level: 'entries', index, width: TILE_WIDTH });
    const hit = this.#bundles.get(key);
    if (hit) return hit;
    return this.#loadOnce(key, this.#bundles, async () => {
      const bytes = await this.#readBundle(index, width);
      return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    });
  }

  async #readBundle(index: bigint, width: number): Promise<Uint8Array> {
    const entries = await getEntryRange(this.#db, index * BigInt(TILE_WIDTH), width);
    if (entries.length !== width)
      throw new TileNotFoundError(`bundle ${index} has ${entries.length} of ${width} entries`);
    return encodeEntryBundle(entries);
  }

  /**
   * A getNode over the tiles of a tree of `size` (optionally inside a transaction). Outside a
   * transaction, a node inside a full tile comes from that tile's cached tile tree (no hashing once
   * the tile is loaded), and other complete nodes are memoised across calls.
   */
  nodeReader(size: bigint, db: Db = this.#db): GetNode {
    const read = tileNodeReader(size, (l: number, i: bigint, w: number) => this.readTile(l, i, w, db));
    if (db !== this.#db) return read;
    // A hit answers synchronously (the core's proof functions accept a mix), so a receipt whose
    // nodes are all in memory costs no promise at all.
    return (level, index) => {
      // Not complete at `size`: let the core refuse it.
      if (!Number.isInteger(level) || level < 0 || level > 63 || (index + 1n) << BigInt(level) > size)
        return read(level, index);
      const tileLevel = Math.floor(level / TILE_HEIGHT);
      const r = level % TILE_HEIGHT;
      const tileIndex = (index << BigInt(r)) >> 8n;
      // The whole tile is in the tree at `size`: serve the node from its tile tree.
      if ((tileIndex + 1n) << BigInt(TILE_HEIGHT * (tileLevel + 1)) <= size) {
        const at = (layerOffset(r) + Number(index - (tileIndex << BigInt(TILE_HEIGHT - r)))) * 32;
        const tree = this.#tiles.get(formatTileKey(tileLevel, tileIndex));
        if (tree) return tree.subarray(at, at + 32);
        return this.#tileTree(tileLevel, tileIndex).then((t) => t.subarray(at, at + 32));
      }
      const key = `${level}/${index}`;
      const hit = this.#nodes.get(key);
      if (hit) return hit;
      return read(level, index).then((hash) => {
        // First in, first out: an LRU's delete-and-set on every hit costs more than it saves here.
        if (this.#nodes.size >= this.#nodeMax) this.#nodes.delete(this.#nodes.keys().next().value!);
        this.#nodes.set(key, hash);
        return hash;
      });
    };
  }

  /** Inclusion proof of `index` in the tree of `size`. RFC 9162 section 2.1.3. */
  async inclusionProof(index: bigint, size: bigint, getNode = this.nodeReader(size)): Promise<Uint8Array[]> {
    if (index >= size) throw new TlogError('INDEX_OUT_OF_RANGE', `index ${index} is not below size ${size}`);
    return inclusionProof(index, size, getNode);
  }

  /** Consistency proof from `oldSize` to `newSize`. RFC 9162 section 2.1.4. */
  async consistencyProof(oldSize: bigint, newSize: bigint): Promise<Uint8Array[]> {
    return consistencyProof(oldSize, newSize, this.nodeReader(newSize));
  }
}

/** A tile or bundle that is not stored (beyond the tree). */
export class TileNotFoundError extends Error {
  readonly code = 'NOT_FOUND';
}

/** The cache key of full hash tile `level`/`index`: its tile path. */
function formatTileKey(level: number, index: bigint): string {
  return tilePath({ level, index, width: TILE_WIDTH });
}
