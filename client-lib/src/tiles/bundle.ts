import { TlogError } from '../errors.js';
import { TILE_WIDTH } from './path.js';

/** Encodes an entry bundle: each entry as uint16 big-endian length || bytes (at most 256 entries of 65,535 bytes). c2sp.org/tlog-tiles. */
export function encodeEntryBundle(entries: readonly Uint8Array[]): Uint8Array {
  if (entries.length > TILE_WIDTH)
    throw new TlogError('BUNDLE_MALFORMED', `bundle has ${entries.length} entries, at most 256`);
  let size = 0;
  for (const e of entries) {
    if (e.length > 65535)
      throw new TlogError('BUNDLE_MALFORMED', `entry has ${e.length} bytes, at most 65535`);
    size += 2 + e.length;
  }
  const out = new Uint8Array(size);
  let o = 0;
  for (const e of entries) {
    out[o] = e.length >> 8;
    out[o + 1] = e.length & 255;
    out.set(e, o + 2);
    o += 2 + e.length;
  }
  return out;
}

/**
 * Decodes an entry bundle; rejects truncated entries, more than 256 entries, and (when `width` is
 * given) a different number of entries. Throws BUNDLE_MALFORMED. c2sp.org/tlog-tiles.
 */
export function decodeEntryBundle(bytes: Uint8Array, width?: number): Uint8Array[] {
  const entries: Uint8Array[] = [];
  let o = 0;
  while (o < bytes.length) {
    if (o + 2 > bytes.length) throw new TlogError('BUNDLE_MALFORMED', `bundle truncated at offset ${o}`);
    const n = (bytes[o]! << 8) | bytes[o + 1]!;
    if (o + 2 + n > bytes.length)
      throw new TlogError(
        'BUNDLE_MALFORMED',
        `entry ${entries.length} wants ${n} bytes, ${bytes.length - o - 2} left`,
      );
    entries.push(bytes.slice(o + 2, o + 2 + n));
    o += 2 + n;
    if (entries.length > TILE_WIDTH)
      throw new TlogError('BUNDLE_MALFORMED', 'bundle has more than 256 entries');
  }
  if (width !== undefined && entries.length !== width)
    throw new TlogError('BUNDLE_MALFORMED', `bundle has ${entries.length} entries, want ${width}`);
  return entries;
}
