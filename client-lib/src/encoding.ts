import { TlogError, type TlogErrorCode } from './errors.js';

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const B64_INDEX = new Int16Array(128).fill(-1);
for (let i = 0; i < B64.length; i++) B64_INDEX[B64.charCodeAt(i)] = i;

/** Standard base64 with padding (RFC 4648 section 4). */
export function base64Encode(bytes: Uint8Array): string {
  let out = '';
  let i = 0;
  for (; i + 2 < bytes.length; i += 3) {
    const n = (bytes[i]! << 16) | (bytes[i + 1]! << 8) | bytes[i + 2]!;
    out += B64[n >> 18]! + B64[(n >> 12) & 63]! + B64[(n >> 6) & 63]! + B64[n & 63]!;
  }
  const rest = bytes.length - i;
  if (rest === 1) {
    const n = bytes[i]! << 16;
    out += B64[n >> 18]! + B64[(n >> 12) & 63]! + '==';
  } else if (rest === 2) {
    const n = (bytes[i]! << 16) | (bytes[i + 1]! << 8);
    out += B64[n >> 18]! + B64[(n >> 12) & 63]! + B64[(n >> 6) & 63]! + '=';
  }
  return out;
}

/**
 * Strict standard base64 with padding (RFC 4648 section 4): rejects missing padding, characters
 * outside the alphabet, whitespace and non-zero trailing bits, so that encoding the result gives
 * back `s` exactly. Throws TlogError with `code` (default ENCODING_INVALID).
 */
export function base64Decode(s: string, code: TlogErrorCode = 'ENCODING_INVALID'): Uint8Array {
  if (s.length % 4 !== 0) throw new TlogError(code, `base64 length ${s.length} is not a multiple of 4`);
  let pad = 0;
  if (s.endsWith('==')) pad = 2;
  else if (s.endsWith('=')) pad = 1;
  const out = new Uint8Array((s.length / 4) * 3 - pad);
  let o = 0;
  for (let i = 0; i < s.length; i += 4) {
    let n = 0;
    for (let j = 0; j < 4; j++) {
      const c = s.charCodeAt(i + j);
      let v: number;
      if (c === 61 /* = */ && i + 4 === s.length && j >= 4 - pad) v = 0;
      else {
        v = c < 128 ? B64_INDEX[c]! : -1;
        if (v < 0) throw new TlogError(code, `invalid base64 character at offset ${i + j}`);
      }
      n = (n << 6) | v;
    }
    out[o++] = n >> 16;
    if (o < out.length) out[o++] = (n >> 8) & 255;
    if (o < out.length) out[o++] = n & 255;
  }
  if (base64Encode(out) !== s) throw new TlogError(code, 'non-canonical base64');
  return out;
}

/** Lowercase hex. */
export function hexEncode(bytes: Uint8Array): string {
  let out = '';
  for (const b of bytes) out += b.toString(16).padStart(2, '0');
  return out;
}

/** Strict lowercase hex decoding (even length, [0-9a-f] only). Throws ENCODING_INVALID. */
export function hexDecode(s: string, code: TlogErrorCode = 'ENCODING_INVALID'): Uint8Array {
  if (s.length % 2 !== 0 || !/^[0-9a-f]*$/.test(s)) throw new TlogError(code, 'invalid hex');
  const out = new Uint8Array(s.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(s.slice(2 * i, 2 * i + 2), 16);
  return out;
}

const DECIMAL = /^(0|[1-9][0-9]*)$/;

/**
 * Parses a canonical unsigned decimal (`/^(0|[1-9][0-9]*)$/`, at most 2^64-1) to a bigint.
 * Rejects leading zeros, signs and spaces. Throws TlogError with `code` (default ENCODING_INVALID).
 */
export function parseDecimal(s: string, code: TlogErrorCode = 'ENCODING_INVALID'): bigint {
  if (s.length > 20 || !DECIMAL.test(s))
    throw new TlogError(code, `non-canonical decimal ${JSON.stringify(s.slice(0, 40))}`);
  const n = BigInt(s);
  if (n > 0xffffffffffffffffn) throw new TlogError(code, `decimal ${s} exceeds 2^64-1`);
  return n;
}

const encoder = new TextEncoder();
const strictDecoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** UTF-8 bytes of a string. */
export function utf8(s: string): Uint8Array {
  return encoder.encode(s);
}

/** Strict UTF-8 decoding; throws TlogError with `code` on invalid input. */
export function utf8Decode(bytes: Uint8Array, code: TlogErrorCode = 'ENCODING_INVALID'): string {
  try {
    return strictDecoder.decode(bytes);
  } catch (err) {
    throw new TlogError(code, 'invalid utf-8', { cause: err });
  }
}

/** Concatenates byte arrays. */
export function concatBytes(...parts: Uint8Array[]): Uint8Array {
  let size = 0;
  for (const p of parts) size += p.length;
  const out = new Uint8Array(size);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** Constant-shape byte equality. */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i]! ^ b[i]!;
  return d === 0;
}
