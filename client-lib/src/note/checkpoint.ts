import { base64Decode, base64Encode, parseDecimal } from '../encoding.js';
import { TlogError } from '../errors.js';

/** Largest checkpoint body accepted, checked first. */
export const MAX_CHECKPOINT_SIZE = 64 * 1024;

/** A checkpoint body. c2sp.org/tlog-checkpoint. */
export interface Checkpoint {
  origin: string;
  size: bigint;
  root: Uint8Array;
  extensions: string[];
}

/** Formats a checkpoint body: origin, size, base64 root, extension lines, each ending in '\n'. c2sp.org/tlog-checkpoint. */
export function formatCheckpoint(c: Checkpoint): string {
  if (typeof c.origin !== 'string' || c.origin.length === 0 || c.origin.includes('\n'))
    throw new TlogError('CHECKPOINT_MALFORMED', 'origin is empty or has a newline');
  if (typeof c.size !== 'bigint' || c.size < 0n || c.size > 0xffffffffffffffffn)
    throw new TlogError('CHECKPOINT_MALFORMED', 'size is not a u64 bigint');
  if (!(c.root instanceof Uint8Array) || c.root.length !== 32)
    throw new TlogError('CHECKPOINT_MALFORMED', 'root is not 32 bytes');
  for (const e of c.extensions) {
    if (e.length === 0 || e.includes('\n'))
      throw new TlogError('CHECKPOINT_MALFORMED', 'extension line is empty or has a newline');
  }
  return [c.origin, c.size.toString(), base64Encode(c.root), ...c.extensions].map((l) => `${l}\n`).join('');
}

/**
 * Parses a checkpoint body strictly: size cap, final newline, at least three lines, canonical
 * decimal size, canonical base64 32-byte root, non-empty extension lines, and
 * `formatCheckpoint(parsed) === text`. Throws CHECKPOINT_MALFORMED. c2sp.org/tlog-checkpoint.
 */
export function parseCheckpoint(text: string): Checkpoint {
  if (typeof text !== 'string' || text.length > MAX_CHECKPOINT_SIZE)
    throw new TlogError('CHECKPOINT_MALFORMED', 'checkpoint is not a string under the size cap');
  if (!text.endsWith('\n'))
    throw new TlogError('CHECKPOINT_MALFORMED', 'checkpoint does not end in a newline');
  const lines = text.slice(0, -1).split('\n');
  if (lines.length < 3)
    throw new TlogError('CHECKPOINT_MALFORMED', `checkpoint has ${lines.length} lines, want at least 3`);
  const [origin, sizeLine, rootLine, ...extensions] = lines as [string, string, string, ...string[]];
  if (origin.length === 0) throw new TlogError('CHECKPOINT_MALFORMED', 'checkpoint origin is empty');
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if ((c < 0x20 && c !== 0x0a) || c === 0x7f)
      throw new TlogError('CHECKPOINT_MALFORMED', `checkpoint has control character at offset ${i}`);
  }
  const size = parseDecimal(sizeLine, 'CHECKPOINT_MALFORMED');
  const root = base64Decode(rootLine, 'CHECKPOINT_MALFORMED');
  if (root.length !== 32)
    throw new TlogError('CHECKPOINT_MALFORMED', `checkpoint root has ${root.length} bytes, want 32`);
  for (const e of extensions)
    if (e.length === 0) throw new TlogError('CHECKPOINT_MALFORMED', 'checkpoint has an empty extension line');
  const parsed = { origin, size, root, extensions };
  if (formatCheckpoint(parsed) !== text)
    throw new TlogError('CHECKPOINT_MALFORMED', 'checkpoint is not in canonical form');
  return parsed;
}
