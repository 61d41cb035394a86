/**
 * Sealed values (DESIGN.md "Readers and sealed payloads"): a record replaces a confidential value by
 * `{"$sealed":{"sha256":"<hex>","size":<n>}}`, where the sealed bytes S are the RFC 8785 canonical
 * JSON of `{"salt":"<base64 of 16 random bytes>","value":<the JSON value>}` and sha256 is the SHA-256
 * of S. The salt makes a low-entropy value impossible to guess from its commitment.
 *
 * Pure and browser-safe: the caller brings the salt (from `randomBytes(SALT_SIZE)`), so the same
 * inputs always give the same bytes and the functions read no clock or randomness.
 */
import { sha256 } from './crypto.js';
import { base64Decode, base64Encode, hexEncode, utf8, utf8Decode } from './encoding.js';
import { TlogError } from './errors.js';
import { canonicalJson } from './record.js';

/** Bytes of salt in a sealed value. DESIGN.md "Readers and sealed payloads". */
export const SALT_SIZE = 16;

/** The commitment a record carries in place of a sealed value. */
export interface SealedRef {
  $sealed: { sha256: string; size: number };
}

/** A sealed value: the commitment for the record and the bytes S that travel beside it. */
export interface Sealed {
  ref: SealedRef;
  bytes: Uint8Array;
}

const HEX64 = /^[0-9a-f]{64}$/;

/** Is `value` exactly a `{"$sealed":{"sha256","size"}}` commitment (no other members)? */
export function isSealedRef(value: unknown): value is SealedRef {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const keys = Object.keys(value);
  if (keys.length !== 1 || keys[0] !== '$sealed') return false;
  const inner = (value as { $sealed: unknown }).$sealed;
  if (typeof inner !== 'object' || inner === null || Array.isArray(inner)) return false;
  const { sha256: h, size } = inner as { sha256?: unknown; size?: unknown };
  return (
    Object.keys(inner).length === 2 &&
    typeof h === 'string' &&
    HEX64.test(h) &&
    typeof size === 'number' &&
    Number.isSafeInteger(size) &&
    size >= 0
  );
}

/**
 * Seals a JSON value with `salt` (exactly 16 bytes). Throws RECORD_INVALID for a value RFC 8785
 * cannot carry and ENCODING_INVALID for a salt of another length.
 */
export function sealValue(value: unknown, salt: Uint8Array): Sealed {
  if (salt.length !== SALT_SIZE)
    throw new TlogError('ENCODING_INVALID', `salt has ${salt.length} bytes, want ${SALT_SIZE}`);
  const bytes = utf8(canonicalJson({ salt: base64Encode(salt), value }));
  return { ref: { $sealed: { sha256: hexEncode(sha256(bytes)), size: bytes.length } }, bytes };
}

/**
 * Seals exact bytes (a wire message that may not be UTF-8): the sealed value is the base64 of the
 * bytes, so S commits to every byte and a reader gets them back with `openSealedBytes`.
 */
export function sealBytes(data: Uint8Array, salt: Uint8Array): Sealed {
  return sealValue(base64Encode(data), salt);
}

/**
 * Checks S against its commitment and returns the sealed value. S must have the committed size and
 * hash, be canonical JSON of exactly `{"salt","value"}`, and its salt must be the canonical base64 of
 * 16 bytes. Throws HASH_INVALID when S is not the committed bytes, RECORD_INVALID when it is not a
 * well-formed sealed value.
 */
export function openSealed(ref: SealedRef, bytes: Uint8Array): unknown {
  if (!isSealedRef(ref))
    throw new TlogError('RECORD_INVALID', 'not a {"$sealed":{"sha256","size"}} reference');
  if (bytes.length !== ref.$sealed.size)
    throw new TlogError(
      'HASH_INVALID',
      `sealed bytes are ${bytes.length} long, commitment says ${ref.$sealed.size}`,
    );
  const got = hexEncode(sha256(bytes));
  if (got !== ref.$sealed.sha256)
    throw new TlogError('HASH_INVALID', `sealed bytes hash to ${got}, commitment says ${ref.$sealed.sha256}`);
  const text = utf8Decode(bytes, 'RECORD_INVALID');
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new TlogError('RECORD_INVALID', 'sealed bytes are not json', { cause: err });
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
    throw new TlogError('RECORD_INVALID', 'sealed bytes are not a json object');
  const keys = Object.keys(parsed).sort().join(',');
  if (keys !== 'salt,value')
    throw new TlogError('RECORD_INVALID', `sealed value has fields ${keys}, want salt,value`);
  const { salt, value } = parsed as { salt: unknown; value: unknown };
  if (typeof salt !== 'string') throw new TlogError('RECORD_INVALID', 'sealed salt is not a string');
  const saltBytes = base64Decode(salt, 'RECORD_INVALID');
  if (saltBytes.length !== SALT_SIZE)
    throw new TlogError('RECORD_INVALID', `sealed salt has ${saltBytes.length} bytes, want ${SALT_SIZE}`);
  if (canonicalJson(parsed) !== text)
    throw new TlogError('RECORD_INVALID', 'sealed bytes are not canonical json');
  return value;
}

/** `openSealed` for a value made by `sealBytes`: returns the exact bytes. Throws as openSealed does. */
export function openSealedBytes(ref: SealedRef, bytes: Uint8Array): Uint8Array {
  const value = openSealed(ref, bytes);
  if (typeof value !== 'string') throw new TlogError('RECORD_INVALID', 'sealed value is not a base64 string');
  return base64Decode(value, 'RECORD_INVALID');
}

/**
 * A copy of `value` in which every sealed commitment is replaced by what `open` gives for it:
 * `{ value }` for an opened value, undefined to leave the commitment in place (not opened, erased, or
 * not matching). `open` is where the caller checks S against the commitment (`openSealed`).
 */
export function replaceSealed(
  value: unknown,
  open: (ref: SealedRef) => { value: unknown } | undefined,
): unknown {
  if (isSealedRef(value)) {
    const opened = open(value);
    return opened === undefined ? value : opened.value;
  }
  if (Array.isArray(value)) return value.map((v) => replaceSealed(v, open));
  if (value === null || typeof value !== 'object') return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[k] = replaceSealed(v, open);
  return out;
}
