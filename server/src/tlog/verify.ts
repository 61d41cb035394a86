// Record signature checks off the event loop. node:crypto's callback form of `verify` runs on the
// libuv threadpool, so a request's signatures are checked in parallel (both cores) while the event loop
// keeps parsing and answering. The rule is the core's (`verifyRecordSignature` with the node:crypto
// provider): type-0x01 emitter key, canonical base64, `isStrictEd25519Input`, then OpenSSL's
// cofactorless check. test/tlog/verify.test.ts compares the two on the core's edge cases.
import { verify as nodeVerify, createPublicKey, type KeyObject } from 'node:crypto';
import { TlogError, base64Decode, isStrictEd25519Input, parseVerifierKey } from '@vigil/client';

const KEY_CACHE_LIMIT = 4096;

interface CachedKey {
  name: string;
  publicKey: Uint8Array;
  keyObject: KeyObject;
}

/**
 * Verifies Ed25519 record signatures asynchronously with cached KeyObjects (creating one per
 * verification halves the rate). One instance per app; the cache is bounded.
 */
export class RecordVerifier {
  readonly #keys = new Map<string, CachedKey>();

  #key(vkey: string): CachedKey {
    let k = this.#keys.get(vkey);
    if (k === undefined) {
      const parsed = parseVerifierKey(vkey);
      if (parsed.type !== 1) throw new TlogError('KEY_MALFORMED', `emitter key type ${parsed.type}, want 1`);
      const keyObject = createPublicKey({
        key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(parsed.publicKey).toString('base64url') },
        format: 'jwk',
      });
      k = { name: parsed.name, publicKey: parsed.publicKey, keyObject };
      if (this.#keys.size >= KEY_CACHE_LIMIT) this.#keys.delete(this.#keys.keys().next().value!);
      this.#keys.set(vkey, k);
    }
    return k;
  }

  /**
   * Checks `sig` (base64) over `message` (the record's canonical bytes) with the emitter vkey.
   * Rejects with TlogError SIGNATURE_INVALID (also for a malformed signature) or KEY_MALFORMED.
   * `inline` checks on the calling thread: for a lone record the threadpool hop costs more latency
   * than it saves.
   */
  verify(message: Uint8Array, sig: string, vkey: string, inline = false): Promise<void> {
    let key: CachedKey;
    let bytes: Uint8Array;
    try {
      key = this.#key(vkey);
      try {
        bytes = base64Decode(sig);
      } catch (err) {
        throw new TlogError('SIGNATURE_INVALID', 'record signature is not canonical base64', { cause: err });
      }
    } catch (err) {
      return Promise.reject(err as Error);
    }
    const invalid = (): TlogError =>
      new TlogError('SIGNATURE_INVALID', `record signature by ${key.name} does not verify`);
    if (!isStrictEd25519Input(bytes, key.publicKey)) return Promise.reject(invalid());
    if (inline) {
      let ok = false;
      try {
        ok = nodeVerify(null, message, key.keyObject, bytes);
      } catch {
        // malformed for OpenSSL: invalid
      }
      return ok ? Promise.resolve() : Promise.reject(invalid());
    }
    return new Promise((resolve, reject) => {
      try {
        nodeVerify(null, message, key.keyObject, bytes, (err, ok) => {
          if (err || !ok) reject(invalid());
          else resolve();
        });
      } catch {
        reject(invalid());
      }
    });
  }
}
