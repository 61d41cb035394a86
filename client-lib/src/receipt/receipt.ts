import { base64Decode, base64Encode, parseDecimal } from '../encoding.js';
import { TlogError } from '../errors.js';
import { hashLeaf } from '../merkle/hash.js';
import { verifyInclusion } from '../merkle/verify.js';
import type { Checkpoint } from '../note/checkpoint.js';
import { parseNote } from '../note/note.js';
import { verifyCheckpoint, type Policy, type VerifiedCheckpoint } from '../policy/policy.js';

/** First line of a receipt. c2sp.org/tlog-proof@v1. */
export const RECEIPT_HEADER = 'c2sp.org/tlog-proof@v1';

/** A parsed tlog-proof@v1 receipt (not yet verified). */
export interface Receipt {
  index: bigint;
  proof: Uint8Array[];
  note: string;
  /** Opaque, unauthenticated bytes. */
  extra?: Uint8Array;
}

/**
 * Formats a receipt: header, optional `extra <base64>`, `index <n>`, the inclusion proof hashes
 * (leaf sibling first), a blank line and the checkpoint note verbatim. c2sp.org/tlog-proof@v1.
 */
export function formatReceipt(r: Receipt): string {
  if (typeof r.index !== 'bigint' || r.index < 0n || r.index > 0xffffffffffffffffn)
    throw new TlogError('RECEIPT_MALFORMED', 'receipt index is not a u64 bigint');
  for (const p of r.proof)
    if (!(p instanceof Uint8Array) || p.length !== 32)
      throw new TlogError('RECEIPT_MALFORMED', 'receipt proof hash is not 32 bytes');
  parseNote(r.note);
  const lines = [RECEIPT_HEADER];
  if (r.extra !== undefined) lines.push(`extra ${base64Encode(r.extra)}`);
  lines.push(`index ${r.index}`);
  for (const p of r.proof) lines.push(base64Encode(p));
  return `${lines.map((l) => `${l}\n`).join('')}\n${r.note}`;
}

/** Parses a receipt strictly (`formatReceipt(parsed) === text`). Throws RECEIPT_MALFORMED. c2sp.org/tlog-proof@v1. */
export function parseReceipt(text: string): Receipt {
  if (typeof text !== 'string' || text.length > 1 << 20)
    throw new TlogError('RECEIPT_MALFORMED', 'receipt is not a string under the size cap');
  const split = text.indexOf('\n\n');
  if (split < 0) throw new TlogError('RECEIPT_MALFORMED', 'receipt has no blank line before the checkpoint');
  const head = text.slice(0, split).split('\n');
  const note = text.slice(split + 2);
  if (head[0] !== RECEIPT_HEADER)
    throw new TlogError('RECEIPT_MALFORMED', `receipt does not start with ${RECEIPT_HEADER}`);
  let i = 1;
  let extra: Uint8Array | undefined;
  if (head[i]?.startsWith('extra ')) {
    extra = base64Decode(head[i]!.slice(6), 'RECEIPT_MALFORMED');
    i++;
  }
  const indexLine = head[i];
  if (indexLine === undefined || !indexLine.startsWith('index '))
    throw new TlogError('RECEIPT_MALFORMED', 'receipt has no index line');
  const index = parseDecimal(indexLine.slice(6), 'RECEIPT_MALFORMED');
  const proof = head.slice(i + 1).map((l) => {
    const h = base64Decode(l, 'RECEIPT_MALFORMED');
    if (h.length !== 32)
      throw new TlogError('RECEIPT_MALFORMED', `receipt proof hash has ${h.length} bytes, want 32`);
    return h;
  });
  if (proof.length > 64)
    throw new TlogError('RECEIPT_MALFORMED', `receipt proof has ${proof.length} hashes, at most 64`);
  try {
    parseNote(note);
  } catch (err) {
    throw new TlogError('RECEIPT_MALFORMED', `receipt checkpoint: ${(err as Error).message}`, { cause: err });
  }
  const r: Receipt = extra === undefined ? { index, proof, note } : { index, proof, note, extra };
  if (formatReceipt(r) !== text) throw new TlogError('RECEIPT_MALFORMED', 'receipt is not in canonical form');
  return r;
}

/** What a verified receipt proves. `cosigners` are the policy witness names that cosigned. */
export interface VerifiedReceipt {
  index: bigint;
  checkpoint: Checkpoint;
  cosigners: string[];
}

/**
 * Verifies a receipt for `entryBytes`: the checkpoint's log signature, origin and witness quorum per
 * `policy` (verifyCheckpoint), then the inclusion proof of the entry's leaf hash against the
 * checkpoint root (PROOF_INVALID, INDEX_OUT_OF_RANGE). c2sp.org/tlog-proof@v1 verification steps 1-4.
 *
 * `checkpoints` (optional) remembers checkpoint notes that verified under this same `policy` (never
 * share one across policies): the many receipts of one search answer mostly carry the same note, and
 * its signatures are then checked once instead of once per receipt. Only successes are remembered.
 */
export function verifyReceipt(
  receipt: string,
  entryBytes: Uint8Array,
  policy: Policy,
  checkpoints?: Map<string, VerifiedCheckpoint>,
): VerifiedReceipt {
  const r = parseReceipt(receipt);
  const leafHash = hashLeaf(entryBytes);
  let v = checkpoints?.get(r.note);
  if (v === undefined) {
    v = verifyCheckpoint(r.note, policy);
    if (checkpoints !== undefined && checkpoints.size < 10_000) checkpoints.set(r.note, v);
  }
  verifyInclusion(leafHash, r.index, v.checkpoint.size, r.proof, v.checkpoint.root);
  return { index: r.index, checkpoint: v.checkpoint, cosigners: [...v.cosigners.keys()] };
}
