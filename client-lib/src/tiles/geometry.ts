import { checkSize } from '../merkle/nodes.js';
import { TILE_HEIGHT, TILE_WIDTH, type TileId } from './path.js';

/** Hashes stored at tile level `level` for a tree of `size` leaves: floor(size / 256^level). */
export function hashesAtTileLevel(size: bigint, level: number): bigint {
  return size >> BigInt(TILE_HEIGHT * level);
}

/**
 * Every tile (full or partial, levels 0 up) that exists for a tree of `size` leaves, by level then
 * index. Lists every full tile, so use it for small trees only. c2sp.org/tlog-tiles.
 */
export function tilesForSize(size: bigint): TileId[] {
  return newTilesBetween(0n, size);
}

/**
 * The tiles that exist at `newSize` but not at `oldSize` (full tiles completed and the new partial
 * tiles), by level then index. Requires oldSize <= newSize. c2sp.org/tlog-tiles.
 */
export function newTilesBetween(oldSize: bigint, newSize: bigint): TileId[] {
  checkSize(oldSize, 'old size');
  checkSize(newSize, 'new size');
  if (oldSize > newSize) throw new RangeError(`old size ${oldSize} exceeds new size ${newSize}`);
  const out: TileId[] = [];
  for (let level = 0; ; level++) {
    const nNew = hashesAtTileLevel(newSize, level);
    if (nNew === 0n) break;
    const nOld = hashesAtTileLevel(oldSize, level);
    if (nOld === nNew) continue;
    for (let t = nOld >> 8n; t < nNew >> 8n; t++) out.push({ level, index: t, width: TILE_WIDTH });
    const w = Number(nNew & 255n);
    if (w > 0) out.push({ level, index: nNew >> 8n, width: w });
  }
  return out;
}
