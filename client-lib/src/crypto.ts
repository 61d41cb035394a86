import * as ed from '@noble/ed25519';
import { sha256 as nobleSha256, sha512 } from '@noble/hashes/sha2.js';

ed.hashes.sha512 = sha512;

/**
 * The primitives the core needs. The default is pure JavaScript (noble); `@vigil/client/node`
 * offers a faster node:crypto provider. Both apply the same Ed25519 verification rule
 * (see `isStrictEd25519Input`).
 */
export interface CryptoProvider {
  /** SHA-256 of `data`; returns a fresh 32-byte array. */
  sha256(data: Uint8Array): Uint8Array;
  /** Strict RFC 8032 Ed25519 verification (cofactorless, canonical encodings, S < L). */
  ed25519Verify(signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array): boolean;
  /** Deterministic Ed25519 signature (RFC 8032) with the 32-byte seed. */
  ed25519Sign(message: Uint8Array, seed: Uint8Array): Uint8Array;
  /** The 32-byte Ed25519 public key of a 32-byte seed. */
  ed25519PublicKey(seed: Uint8Array): Uint8Array;
}

// The group order L = 2^252 + 27742317777372353535851937790883648493, little-endian.
const L_LE = Uint8Array.from([
  0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14, 0, 0, 0, 0,
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
]);
const L = 2n ** 252n + 27742317777372353535851937790883648493n;

// Canonical encodings of the eight points of small order (identity, order 2, two of order 4,
// four of order 8). Public keys of small order are rejected (as noble's strict mode and libsodium do).
const SMALL_ORDER_HEX = [
  '0100000000000000000000000000000000000000000000000000000000000000',
  'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  '0000000000000000000000000000000000000000000000000000000000000000',
  '0000000000000000000000000000000000000000000000000000000000000080',
  'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a',
  'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa',
  '26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05',
  '26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85',
];

/** Little-endian comparison a < b for equal-length byte strings. */
function lessThanLE(a: Uint8Array, b: Uint8Array): boolean {
  for (let i = a.length - 1; i >= 0; i--) {
    if (a[i]! !== b[i]!) return a[i]! < b[i]!;
  }
  return false;
}

/**
 * Whether a 32-byte point encoding is canonical (RFC 8032 section 5.1.3): y < p, and not the
 * "negative zero" x encodings of the two points with x = 0.
 */
function isCanonicalPoint(p: Uint8Array): boolean {
  // y >= p = 2^255 - 19 means bytes 1..30 are 0xff, byte 31 (without sign) 0x7f and byte 0 >= 0xed.
  let allFF = true;
  for (let i = 1; i < 31; i++) if (p[i] !== 0xff) allFF = false;
  if (allFF && (p[31]! & 0x7f) === 0x7f && p[0]! >= 0xed) return false;
  // x = 0 with the sign bit set: y = 1 (01 00..00 80) and y = p - 1 (ec ff..ff ff).
  if (p[31] === 0x80 && p[0] === 1 && p.subarray(1, 31).every((b) => b === 0)) return false;
  if (p[31] === 0xff && p[0] === 0xec && allFF) return false;
  return true;
}

function isSmallOrderEncoding(p: Uint8Array): boolean {
  let hex = '';
  for (const b of p) hex += b.toString(16).padStart(2, '0');
  return SMALL_ORDER_HEX.includes(hex);
}

/**
 * The input checks of the one Ed25519 verification rule used by every provider (strict RFC 8032
 * section 5.1.7 as Go's crypto/ed25519 applies it): 64-byte signature, 32-byte key, S < L, canonical
 * encodings of A and R, A not of small order. The group equation is then checked cofactorless
 * ([S]B = R + [k]A by comparing the encoding of [S]B - [k]A with R). Returns false if any check fails.
 */
export function isStrictEd25519Input(signature: Uint8Array, publicKey: Uint8Array): boolean {
  if (signature.length !== 64 || publicKey.length !== 32) return false;
  if (!lessThanLE(signature.subarray(32), L_LE)) return false;
  if (!isCanonicalPoint(publicKey) || !isCanonicalPoint(signature.subarray(0, 32))) return false;
  if (isSmallOrderEncoding(publicKey)) return false;
  return true;
}

function bytesToNumberLE(b: Uint8Array): bigint {
  let n = 0n;
  for (let i = b.length - 1; i >= 0; i--) n = (n << 8n) | BigInt(b[i]!);
  return n;
}

function nobleVerify(signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array): boolean {
  if (!isStrictEd25519Input(signature, publicKey)) return false;
  try {
    const A = ed.Point.fromBytes(publicKey, false);
    const s = bytesToNumberLE(signature.subarray(32));
    const h = new Uint8Array(64 + message.length);
    h.set(signature.subarray(0, 32), 0);
    h.set(publicKey, 32);
    h.set(message, 64);
    const k = bytesToNumberLE(sha512(h)) % L;
    const r = ed.Point.BASE.multiply(s, false).subtract(A.multiply(k, false)).toBytes();
    const want = signature.subarray(0, 32);
    for (let i = 0; i < 32; i++) if (r[i] !== want[i]) return false;
    return true;
  } catch {
    return false;
  }
}

/** The default provider: @noble/hashes SHA-256 and @noble/ed25519, pure JavaScript. */
export const nobleCryptoProvider: CryptoProvider = {
  sha256: (data) => nobleSha256(data),
  ed25519Verify: nobleVerify,
  ed25519Sign: (message, seed) => ed.sign(message, seed),
  ed25519PublicKey: (seed) => ed.getPublicKey(seed),
};

let provider: CryptoProvider = nobleCryptoProvider;

/** Installs the crypto provider used by all of the core from now on. */
export function setCryptoProvider(p: CryptoProvider): void {
  provider = p;
}

/** The crypto provider currently installed (noble by default). */
export function getCryptoProvider(): CryptoProvider {
  return provider;
}

/** SHA-256 through the installed provider (FIPS 180-4). */
export function sha256(data: Uint8Array): Uint8Array {
  return provider.sha256(data);
}

/** Random bytes from the web crypto API (crypto.getRandomValues). */
export function randomBytes(size: number): Uint8Array {
  const out = new Uint8Array(size);
  globalThis.crypto.getRandomValues(out);
  return out;
}
