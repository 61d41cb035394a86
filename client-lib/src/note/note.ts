import { getCryptoProvider } from '../crypto.js';
import { base64Decode, base64Encode, concatBytes, utf8 } from '../encoding.js';
import { TlogError } from '../errors.js';
import { isValidKeyName, keyIdHex, parseSignerKey, parseVerifierKey, type VerifierKey } from './keys.js';

/** Largest note accepted (bytes of UTF-16 text; checked before any other work). */
export const MAX_NOTE_SIZE = 1 << 20;
/** Most signature lines a note may carry (Go's sumdb/note limit). c2sp.org/signed-note. */
export const MAX_SIGNATURES = 100;
/** Signature line prefix: U+2014 EM DASH and a space. */
export const SIGNATURE_PREFIX = '\u2014 ';

/** One signature line of a note. `signature` is the bytes after the 4-byte key ID. */
export interface NoteSignature {
  name: string;
  keyId: number;
  signature: Uint8Array;
}

/** A parsed (unverified) note. */
export interface ParsedNote {
  text: string;
  signatureLines: (NoteSignature & { line: string })[];
}

/** A signature of an opened note; `verified` is false for unknown keys. `timestamp` is set for verified cosignatures. */
export interface OpenedSignature extends NoteSignature {
  verified: boolean;
  timestamp?: bigint;
}

/** An opened note: its text and every signature, verified or ignored. */
export interface OpenedNote {
  text: string;
  signatures: OpenedSignature[];
}

/**
 * Checks note text: valid UTF-8 (no lone surrogates), no control characters except '\n'.
 * Throws NOTE_MALFORMED. c2sp.org/signed-note.
 */
function checkNoteChars(s: string, what: string): void {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if ((c < 0x20 && c !== 0x0a) || c === 0x7f)
      throw new TlogError('NOTE_MALFORMED', `${what} has control character at offset ${i}`);
    if (c >= 0xd800 && c <= 0xdbff) {
      const d = s.charCodeAt(i + 1);
      if (!(d >= 0xdc00 && d <= 0xdfff))
        throw new TlogError('NOTE_MALFORMED', `${what} is not valid utf-8 at offset ${i}`);
      i++;
    } else if (c >= 0xdc00 && c <= 0xdfff) {
      throw new TlogError('NOTE_MALFORMED', `${what} is not valid utf-8 at offset ${i}`);
    }
  }
}

/** Checks the text part of a note (what gets signed): non-empty, ends in '\n', valid characters. */
export function checkNoteText(text: string): void {
  if (typeof text !== 'string' || text.length > MAX_NOTE_SIZE)
    throw new TlogError('NOTE_MALFORMED', 'note text is not a string under the size cap');
  if (!text.endsWith('\n')) throw new TlogError('NOTE_MALFORMED', 'note text does not end in a newline');
  checkNoteChars(text, 'note text');
}

/** Formats one signature line `— <name> base64(keyID || signature)\n`. c2sp.org/signed-note. */
export function formatSignatureLine(sig: NoteSignature): string {
  if (!isValidKeyName(sig.name)) throw new TlogError('NOTE_MALFORMED', 'invalid key name');
  const id = Uint8Array.of(
    sig.keyId >>> 24,
    (sig.keyId >>> 16) & 255,
    (sig.keyId >>> 8) & 255,
    sig.keyId & 255,
  );
  return `${SIGNATURE_PREFIX}${sig.name} ${base64Encode(concatBytes(id, sig.signature))}\n`;
}

/**
 * Parses one signature line (with or without its final '\n'). Throws NOTE_MALFORMED.
 * c2sp.org/signed-note.
 */
export function parseSignatureLine(line: string): NoteSignature & { line: string } {
  const body = line.endsWith('\n') ? line.slice(0, -1) : line;
  if (!body.startsWith(SIGNATURE_PREFIX))
    throw new TlogError('NOTE_MALFORMED', 'signature line does not start with an em dash');
  const rest = body.slice(SIGNATURE_PREFIX.length);
  const sp = rest.indexOf(' ');
  if (sp < 0) throw new TlogError('NOTE_MALFORMED', 'signature line has no space after the name');
  const name = rest.slice(0, sp);
  if (!isValidKeyName(name)) throw new TlogError('NOTE_MALFORMED', 'signature line has an invalid key name');
  const blob = base64Decode(rest.slice(sp + 1), 'NOTE_MALFORMED');
  if (blob.length < 5)
    throw new TlogError('NOTE_MALFORMED', `signature has ${blob.length} bytes, want at least 5`);
  const keyId = ((blob[0]! << 24) | (blob[1]! << 16) | (blob[2]! << 8) | blob[3]!) >>> 0;
  return { name, keyId, signature: blob.slice(4), line: `${body}\n` };
}

/**
 * Splits a note into its text and signature lines without verifying anything. The signature block
 * follows the last blank line; the note must end in '\n', carry 1 to 100 signature lines, be valid
 * UTF-8 and contain no control characters except '\n'. Throws NOTE_MALFORMED. c2sp.org/signed-note.
 */
export function parseNote(note: string): ParsedNote {
  if (typeof note !== 'string' || note.length > MAX_NOTE_SIZE)
    throw new TlogError('NOTE_MALFORMED', 'note is not a string under the size cap');
  checkNoteChars(note, 'note');
  const split = note.lastIndexOf('\n\n');
  if (split < 0) throw new TlogError('NOTE_MALFORMED', 'note has no blank line before the signatures');
  const text = note.slice(0, split + 1);
  const sigs = note.slice(split + 2);
  if (sigs.length === 0) throw new TlogError('NOTE_MALFORMED', 'note has no signatures');
  if (!sigs.endsWith('\n')) throw new TlogError('NOTE_MALFORMED', 'note does not end in a newline');
  const lines = sigs.slice(0, -1).split('\n');
  if (lines.length > MAX_SIGNATURES)
    throw new TlogError('NOTE_MALFORMED', `note has ${lines.length} signatures, at most ${MAX_SIGNATURES}`);
  return { text, signatureLines: lines.map((l) => parseSignatureLine(l)) };
}

/** Formats a note from its text and signatures. c2sp.org/signed-note. */
export function formatNote(note: { text: string; signatures: readonly NoteSignature[] }): string {
  checkNoteText(note.text);
  if (note.signatures.length === 0) throw new TlogError('NOTE_MALFORMED', 'note has no signatures');
  if (note.signatures.length > MAX_SIGNATURES)
    throw new TlogError(
      'NOTE_MALFORMED',
      `note has ${note.signatures.length} signatures, at most ${MAX_SIGNATURES}`,
    );
  return `${note.text}\n${note.signatures.map(formatSignatureLine).join('')}`;
}

/**
 * Signs `text` (which must end in '\n') with each signer key and returns the note. Ed25519 note
 * signatures (type 0x01). c2sp.org/signed-note.
 */
export function signNote(text: string, signers: readonly string[]): string {
  checkNoteText(text);
  if (signers.length === 0) throw new TlogError('KEY_MALFORMED', 'no signer keys');
  const msg = utf8(text);
  const signatures = signers.map((skey) => {
    const k = parseSignerKey(skey);
    return { name: k.name, keyId: k.keyId, signature: getCryptoProvider().ed25519Sign(msg, k.seed) };
  });
  return formatNote({ text, signatures });
}

/** The message a cosignature/v1 signs: "cosignature/v1\ntime <t>\n" + checkpoint text. c2sp.org/tlog-cosignature. */
export function cosignatureMessage(text: string, time: bigint): Uint8Array {
  return utf8(`cosignature/v1\ntime ${time}\n${text}`);
}

/** Verifies one signature made by `key`; returns the timestamp for cosignatures. Throws on failure. */
export function verifySignatureWithKey(
  text: string,
  sig: NoteSignature,
  key: VerifierKey,
): bigint | undefined {
  const crypto = getCryptoProvider();
  if (key.type === 1) {
    if (sig.signature.length !== 64 || !crypto.ed25519Verify(sig.signature, utf8(text), key.publicKey)) {
      throw new TlogError(
        'SIGNATURE_INVALID',
        `signature by ${key.name}+${keyIdHex(key.keyId)} does not verify`,
      );
    }
    return undefined;
  }
  if (sig.signature.length !== 72) {
    throw new TlogError(
      'COSIGNATURE_INVALID',
      `cosignature by ${key.name} has ${sig.signature.length + 4} bytes, want 76`,
    );
  }
  let time = 0n;
  for (let i = 0; i < 8; i++) time = (time << 8n) | BigInt(sig.signature[i]!);
  if (time > 0x7fffffffffffffffn)
    throw new TlogError(
      'COSIGNATURE_INVALID',
      `cosignature by ${key.name} has timestamp ${time} above 2^63-1`,
    );
  if (!crypto.ed25519Verify(sig.signature.subarray(8), cosignatureMessage(text, time), key.publicKey)) {
    throw new TlogError(
      'COSIGNATURE_INVALID',
      `cosignature by ${key.name}+${keyIdHex(key.keyId)} does not verify`,
    );
  }
  return time;
}

/**
 * Opens a note with the given verifier keys (vkeys of type 0x01, or 0x04 for cosigners, checked by
 * the cosignature/v1 rules). Unknown signatures are kept with `verified: false`; a known (name, key
 * ID) whose signature fails throws SIGNATURE_INVALID (COSIGNATURE_INVALID for type 0x04); no verified
 * signature throws NO_KNOWN_SIGNATURE; a malformed note NOTE_MALFORMED. c2sp.org/signed-note.
 */
export function openNote(note: string, verifiers: readonly (string | VerifierKey)[]): OpenedNote {
  const parsed = parseNote(note);
  const keys = new Map<string, VerifierKey>();
  for (const v of verifiers) {
    const k = typeof v === 'string' ? parseVerifierKey(v) : v;
    const id = `${k.name}+${k.keyId}`;
    const other = keys.get(id);
    if (other !== undefined && !bytesEq(other.publicKey, k.publicKey))
      throw new TlogError('KEY_MALFORMED', `ambiguous verifier key ${k.name}+${keyIdHex(k.keyId)}`);
    keys.set(id, k);
  }
  let verified = 0;
  const signatures: OpenedSignature[] = parsed.signatureLines.map(({ name, keyId, signature }) => {
    const key = keys.get(`${name}+${keyId}`);
    if (key === undefined) return { name, keyId, signature, verified: false };
    const timestamp = verifySignatureWithKey(parsed.text, { name, keyId, signature }, key);
    verified++;
    return timestamp === undefined
      ? { name, keyId, signature, verified: true }
      : { name, keyId, signature, verified: true, timestamp };
  });
  if (verified === 0) throw new TlogError('NO_KNOWN_SIGNATURE', 'no signature by a known key');
  return { text: parsed.text, signatures };
}

function bytesEq(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
