import { parseDecimal } from '../encoding.js';
import { TlogError } from '../errors.js';

/** Tile height: every tile holds up to 256 hashes. c2sp.org/tlog-tiles. */
export const TILE_HEIGHT = 8;
/** Hashes in a full tile. */
export const TILE_WIDTH = 256;

/** A tile (level >= 0) or an entry bundle (level 'entries'); `width` 1..256, 256 for full. */
export interface TileId {
  level: number | 'entries';
  index: bigint;
  width: number;
}

function checkTile(t: TileId): void {
  if (t.level !== 'entries' && !(Number.isInteger(t.level) && t.level >= 0 && t.level <= 63)) {
    throw new TlogError('TILE_PATH_INVALID', `tile level ${String(t.level)} not in 0..63`);
  }
  if (typeof t.index !== 'bigint' || t.index < 0n || t.index > 0xffffffffffffffffn)
    throw new TlogError('TILE_PATH_INVALID', `tile index ${String(t.index)} out of range`);
  if (!Number.isInteger(t.width) || t.width < 1 || t.width > TILE_WIDTH)
    throw new TlogError('TILE_PATH_INVALID', `tile width ${t.width} not in 1..256`);
}

/** 3-digit groups, most significant first, all but the last prefixed with 'x'. c2sp.org/tlog-tiles. */
function formatIndex(index: bigint): string {
  const groups: string[] = [];
  let n = index;
  do {
    groups.unshift((n % 1000n).toString().padStart(3, '0'));
    n /= 1000n;
  } while (n > 0n);
  return groups.map((g, i) => (i < groups.length - 1 ? `x${g}` : g)).join('/');
}

/**
 * The path of a tile or entry bundle: `tile/<L>/<N>[.p/<W>]` or `tile/entries/<N>[.p/<W>]`.
 * c2sp.org/tlog-tiles.
 */
export function tilePath(tile: TileId): string {
  checkTile(tile);
  const partial = tile.width < TILE_WIDTH ? `.p/${tile.width}` : '';
  return `tile/${tile.level}/${formatIndex(tile.index)}${partial}`;
}

/**
 * Parses a tile or entry-bundle path strictly (canonical level, index groups and width 1..255;
 * `formatted === path`). Throws TILE_PATH_INVALID. c2sp.org/tlog-tiles.
 */
export function parseTilePath(path: string): TileId {
  if (typeof path !== 'string' || path.length > 200)
    throw new TlogError('TILE_PATH_INVALID', 'tile path is not a short string');
  const m = /^tile\/(entries|[0-9]+)\/((?:x[0-9]{3}\/)*[0-9]{3})(?:\.p\/([0-9]+))?$/.exec(path);
  if (m === null) throw new TlogError('TILE_PATH_INVALID', `malformed tile path ${JSON.stringify(path)}`);
  let level: number | 'entries';
  if (m[1] === 'entries') level = 'entries';
  else {
    const l = parseDecimal(m[1]!, 'TILE_PATH_INVALID');
    if (l > 63n) throw new TlogError('TILE_PATH_INVALID', `tile level ${l} not in 0..63`);
    level = Number(l);
  }
  const digits = m[2]!.replace(/[x/]/g, '');
  if (digits.length > 21) throw new TlogError('TILE_PATH_INVALID', 'tile index too long');
  const index = BigInt(digits);
  let width = TILE_WIDTH;
  if (m[3] !== undefined) {
    const w = parseDecimal(m[3], 'TILE_PATH_INVALID');
    if (w < 1n || w > 255n) throw new TlogError('TILE_PATH_INVALID', `partial tile width ${w} not in 1..255`);
    width = Number(w);
  }
  const tile = { level, index, width };
  checkTile(tile);
  if (tilePath(tile) !== path)
    throw new TlogError('TILE_PATH_INVALID', `non-canonical tile path ${JSON.stringify(path)}`);
  return tile;
}
