import { getCryptoProvider } from '../crypto.js';
import { concatBytes } from '../encoding.js';
import { TlogError } from '../errors.js';
import { parseCheckpoint } from './checkpoint.js';
import {
  cosignerKeyFromVerifierKey,
  keyId,
  parseSignerKey,
  SIG_TYPE_COSIGNATURE_V1,
  type SignerKey,
  type VerifierKey,
} from './keys.js';
import { cosignatureMessage, formatSignatureLine, parseNote, verifySignatureWithKey } from './note.js';

function checkpointText(note: string): string {
  // Accept a signed note (use its text) or a bare checkpoint body (no blank line).
  const text = note.includes('\n\n') ? parseNote(note).text : note;
  parseCheckpoint(text);
  return text;
}

/**
 * Cosigns a checkpoint (a signed note or its bare body) with an Ed25519 signer key at POSIX time
 * `time` (1 <= time <= 2^63-1) and returns the cosignature line
 * `— <name> base64(keyID04 || u64 time || sig)\n`. Does not verify the log's signature: the caller
 * (the witness) must have done so. A long-running cosigner passes the key parsed once
 * (`parseSignerKey`): parsing derives the public key, which costs about as much as the signature.
 * c2sp.org/tlog-cosignature.
 */
export function cosign(note: string, signerKey: string | SignerKey, time: bigint | number): string {
  const t = BigInt(time);
  if (t <= 0n || t > 0x7fffffffffffffffn)
    throw new TlogError('COSIGNATURE_INVALID', `cosignature time ${t} out of range`);
  const text = checkpointText(note);
  const k = typeof signerKey === 'string' ? parseSignerKey(signerKey) : signerKey;
  const sig = getCryptoProvider().ed25519Sign(cosignatureMessage(text, t), k.seed);
  const ts = new Uint8Array(8);
  new DataView(ts.buffer).setBigUint64(0, t);
  return formatSignatureLine({
    name: k.name,
    keyId: keyId(k.name, SIG_TYPE_COSIGNATURE_V1, k.publicKey),
    signature: concatBytes(ts, sig),
  });
}

/**
 * Verifies the cosignature of the witness `witnessVkey` (type 0x01 or 0x04; the 0x04 key ID is
 * re-derived) on a checkpoint note and returns its timestamp. Throws NO_KNOWN_SIGNATURE when the
 * witness did not cosign, COSIGNATURE_INVALID when its cosignature (76 bytes) fails.
 * c2sp.org/tlog-cosignature.
 */
export function verifyCosignature(note: string, witnessVkey: string | VerifierKey): bigint {
  const key = cosignerKeyFromVerifierKey(witnessVkey);
  const parsed = parseNote(note);
  parseCheckpoint(parsed.text);
  let time: bigint | undefined;
  for (const s of parsed.signatureLines) {
    if (s.name !== key.name || s.keyId !== key.keyId) continue;
    const t = verifySignatureWithKey(parsed.text, s, key)!;
    if (time === undefined || t > time) time = t;
  }
  if (time === undefined) throw new TlogError('NO_KNOWN_SIGNATURE', `no cosignature by ${key.name}`);
  return time;
}
