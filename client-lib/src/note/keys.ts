import { getCryptoProvider, randomBytes, sha256 } from '../crypto.js';
import { base64Decode, base64Encode, concatBytes, utf8 } from '../encoding.js';
import { TlogError } from '../errors.js';

/** Signature type byte of Ed25519 note signatures. c2sp.org/signed-note. */
export const SIG_TYPE_ED25519 = 0x01;
/** Signature type byte of Ed25519 cosignature/v1. c2sp.org/tlog-cosignature. */
export const SIG_TYPE_COSIGNATURE_V1 = 0x04;

/** A parsed verifier key (vkey). */
export interface VerifierKey {
  name: string;
  keyId: number;
  type: 1 | 4;
  publicKey: Uint8Array;
}

/** A parsed signer key (skey): Ed25519 seed and derived public key. */
export interface SignerKey {
  name: string;
  keyId: number;
  seed: Uint8Array;
  publicKey: Uint8Array;
}

// Unicode whitespace (as Go's unicode.IsSpace) and '+'.
const BAD_NAME = /[\s\u0085+]/;

/** Whether `name` is a valid key name: non-empty, valid UTF-8, no Unicode whitespace, no '+'. c2sp.org/signed-note. */
export function isValidKeyName(name: string): boolean {
  if (typeof name !== 'string' || name.length === 0) return false;
  if (BAD_NAME.test(name)) return false;
  // Lone surrogates cannot be encoded as UTF-8.
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff) {
      const d = name.charCodeAt(i + 1);
      if (!(d >= 0xdc00 && d <= 0xdfff)) return false;
      i++;
    } else if (c >= 0xdc00 && c <= 0xdfff) return false;
  }
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) return false;
  }
  return true;
}

/** Key ID: SHA-256(name || 0x0A || type || publicKey)[:4] as a big-endian uint32. c2sp.org/signed-note. */
export function keyId(name: string, type: number, publicKey: Uint8Array): number {
  const h = sha256(concatBytes(utf8(name), Uint8Array.of(0x0a, type), publicKey));
  return ((h[0]! << 24) | (h[1]! << 16) | (h[2]! << 8) | h[3]!) >>> 0;
}

/** 8 lowercase hex digits of a key ID. */
export function keyIdHex(id: number): string {
  return id.toString(16).padStart(8, '0');
}

function parseKeyIdHex(s: string): number {
  if (!/^[0-9a-f]{8}$/.test(s)) throw new TlogError('KEY_MALFORMED', 'key id is not 8 lowercase hex digits');
  return parseInt(s, 16) >>> 0;
}

/** Formats a verifier key `<name>+<keyid hex>+<base64(type || publicKey)>`. c2sp.org/signed-note. */
export function formatVerifierKey(name: string, type: 1 | 4, publicKey: Uint8Array): string {
  if (!isValidKeyName(name)) throw new TlogError('KEY_MALFORMED', 'invalid key name');
  if (type !== 1 && type !== 4) throw new TlogError('KEY_MALFORMED', `unsupported key type ${type}`);
  if (publicKey.length !== 32)
    throw new TlogError('KEY_MALFORMED', `public key has ${publicKey.length} bytes, want 32`);
  const id = keyId(name, type, publicKey);
  return `${name}+${keyIdHex(id)}+${base64Encode(concatBytes(Uint8Array.of(type), publicKey))}`;
}

/**
 * Parses a verifier key strictly: splits on the first two '+', validates the name, requires 8
 * lowercase hex digits equal to the recomputed key ID, canonical base64 and a 32-byte Ed25519 key
 * of type 0x01 (note signer) or 0x04 (cosigner). Throws KEY_MALFORMED. c2sp.org/signed-note.
 */
export function parseVerifierKey(vkey: string): VerifierKey {
  if (typeof vkey !== 'string' || vkey.length > 4096)
    throw new TlogError('KEY_MALFORMED', 'verifier key is not a short string');
  const p1 = vkey.indexOf('+');
  const p2 = p1 < 0 ? -1 : vkey.indexOf('+', p1 + 1);
  if (p1 < 0 || p2 < 0) throw new TlogError('KEY_MALFORMED', 'verifier key needs name+keyid+key');
  const name = vkey.slice(0, p1);
  if (!isValidKeyName(name)) throw new TlogError('KEY_MALFORMED', 'invalid key name');
  const id = parseKeyIdHex(vkey.slice(p1 + 1, p2));
  const key = base64Decode(vkey.slice(p2 + 1), 'KEY_MALFORMED');
  const type = key[0];
  if (type !== 1 && type !== 4)
    throw new TlogError('KEY_MALFORMED', `unsupported key type ${type ?? 'none'}`);
  if (key.length !== 33)
    throw new TlogError('KEY_MALFORMED', `public key has ${key.length - 1} bytes, want 32`);
  const publicKey = key.slice(1);
  const want = keyId(name, type, publicKey);
  if (want !== id)
    throw new TlogError('KEY_MALFORMED', `key id ${keyIdHex(id)} does not match ${keyIdHex(want)}`);
  return { name, keyId: id, type, publicKey };
}

/**
 * Parses a signer key `PRIVATE+KEY+<name>+<keyid>+<base64(0x01 || seed)>` (golang.org/x/mod/sumdb/note
 * convention). The key ID must match the public key derived from the seed. Throws KEY_MALFORMED.
 */
export function parseSignerKey(skey: string): SignerKey {
  if (typeof skey !== 'string' || skey.length > 4096)
    throw new TlogError('KEY_MALFORMED', 'signer key is not a short string');
  const prefix = 'PRIVATE+KEY+';
  if (!skey.startsWith(prefix))
    throw new TlogError('KEY_MALFORMED', 'signer key does not start with PRIVATE+KEY+');
  const rest = skey.slice(prefix.length);
  const p1 = rest.indexOf('+');
  const p2 = p1 < 0 ? -1 : rest.indexOf('+', p1 + 1);
  if (p1 < 0 || p2 < 0) throw new TlogError('KEY_MALFORMED', 'signer key needs name+keyid+key');
  const name = rest.slice(0, p1);
  if (!isValidKeyName(name)) throw new TlogError('KEY_MALFORMED', 'invalid key name');
  const id = parseKeyIdHex(rest.slice(p1 + 1, p2));
  const key = base64Decode(rest.slice(p2 + 1), 'KEY_MALFORMED');
  if (key[0] !== SIG_TYPE_ED25519)
    throw new TlogError('KEY_MALFORMED', `unsupported signer key type ${key[0] ?? 'none'}`);
  if (key.length !== 33) throw new TlogError('KEY_MALFORMED', `seed has ${key.length - 1} bytes, want 32`);
  const seed = key.slice(1);
  const publicKey = getCryptoProvider().ed25519PublicKey(seed);
  const want = keyId(name, SIG_TYPE_ED25519, publicKey);
  if (want !== id)
    throw new TlogError('KEY_MALFORMED', `key id ${keyIdHex(id)} does not match ${keyIdHex(want)}`);
  return { name, keyId: id, seed, publicKey };
}

/** Formats a signer key from a name and a 32-byte seed. */
export function formatSignerKey(name: string, seed: Uint8Array): string {
  if (!isValidKeyName(name)) throw new TlogError('KEY_MALFORMED', 'invalid key name');
  if (seed.length !== 32) throw new TlogError('KEY_MALFORMED', `seed has ${seed.length} bytes, want 32`);
  const publicKey = getCryptoProvider().ed25519PublicKey(seed);
  const id = keyId(name, SIG_TYPE_ED25519, publicKey);
  return `PRIVATE+KEY+${name}+${keyIdHex(id)}+${base64Encode(concatBytes(Uint8Array.of(1), seed))}`;
}

/**
 * Generates an Ed25519 note key pair named `name`. `seed` (32 bytes) makes it reproducible;
 * otherwise it comes from crypto.getRandomValues. Returns the signer key and the type-0x01 vkey.
 */
export function generateKey(name: string, seed?: Uint8Array): { signerKey: string; verifierKey: string } {
  const s = seed ?? randomBytes(32);
  const signerKey = formatSignerKey(name, s);
  const publicKey = getCryptoProvider().ed25519PublicKey(s);
  return { signerKey, verifierKey: formatVerifierKey(name, 1, publicKey) };
}

/** The type-0x01 vkey of a signer key. */
export function verifierKeyFromSignerKey(signerKey: string): string {
  const k = parseSignerKey(signerKey);
  return formatVerifierKey(k.name, 1, k.publicKey);
}

/** The type-0x04 (cosignature/v1) vkey of a signer key, as `vigil-witness init` prints. c2sp.org/tlog-cosignature. */
export function cosignerVerifierKey(signerKey: string): string {
  const k = parseSignerKey(signerKey);
  return formatVerifierKey(k.name, 4, k.publicKey);
}

/**
 * A witness key as a cosigner key: accepts a vkey of type 0x01 or 0x04 and returns it with type
 * 0x04 and the re-derived cosignature key ID (as Tessera/formats do). c2sp.org/tlog-cosignature.
 */
export function cosignerKeyFromVerifierKey(vkey: string | VerifierKey): VerifierKey {
  const k = typeof vkey === 'string' ? parseVerifierKey(vkey) : vkey;
  return { name: k.name, type: 4, publicKey: k.publicKey, keyId: keyId(k.name, 4, k.publicKey) };
}
