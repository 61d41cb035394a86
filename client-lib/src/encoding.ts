import { TlogError, type TlogErrorCode } from './errors.js';

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const B64_INDEX = new Int16Array(128).fill(-1);
for (let i = 0; i < B64.length; i++) B64_INDEX[B64.charCodeAt(i)] = i;

const B64_CODES = Uint8Array.from(B64, (c) => c.charCodeAt(0));
const asciiDecoder = new TextDecoder('latin1');

/**
 * Standard base64 with padding (RFC 4648 section 4). Writes the ASCII codes into one buffer and
 * decodes it once: linear time and one string, also for payloads of many MiB.
 */
export function base64Encode(bytes: Uint8Array): string {
  const out = new Uint8Array(Math.ceil(bytes.length / 3) * 4);
  let o = 0;
  let i = 0;
  for (; i + 2 < bytes.length; i += 3) {
    const n = (bytes[i]! << 16) | (bytes[i + 1]! << 8) | bytes[i + 2]!;
    out[o++] = B64_CODES[n >> 18]!;
    out[o++] = B64_CODES[(n >> 12) & 63]!;
    out[o++] = B64_CODES[(n >> 6) & 63]!;
    out[o++] = B64_CODES[n & 63]!;
  }
  const rest = bytes.length - i;
  if (rest > 0) {
    const n = (bytes[i]! << 16) | (rest === 2 ? bytes[i + 1]! << 8 : 0);
    out[o++] = B64_CODES[n >> 18]!;
    out[o++] = B64_CODES[(n >> 12) & 63]!;
    out[o++] = rest === 2 ? B64_CODES[(n >> 6) & 63]! : 61;
    out[o++] = 61;
  }
  return asciiDecoder.decode(out);
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

/**
 * Whether `bytes` are well-formed UTF-8 (RFC 3629: no overlong forms, surrogates or code points past
 * U+10FFFF), checked without decoding them into a string.
 */
export function isUtf8(bytes: Uint8Array): boolean {
  const n = bytes.length;
  let i = 0;
  while (i < n) {
    const b = bytes[i]!;
    if (b < 0x80) {
      i++;
      continue;
    }
    let need: number;
    let min: number;
    let cp: number;
    if (b >= 0xc2 && b <= 0xdf) [need, min, cp] = [1, 0x80, b & 0x1f];
    else if (b >= 0xe0 && b <= 0xef) [need, min, cp] = [2, 0x800, b & 0x0f];
    else if (b >= 0xf0 && b <= 0xf4) [need, min, cp] = [3, 0x10000, b & 0x07];
    else return false;
    if (i + need >= n) return false;
    for (let k = 1; k <= need; k++) {
      const c = bytes[i + k]!;
      if ((c & 0xc0) !== 0x80) return false;
      cp = (cp << 6) | (c & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    i += need + 1;
  }
  return true;
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
