/**
 * Node-only: Ed25519 signature checks on the libuv threadpool for the auditor, so `vigil audit` uses
 * every core. Not exported by the browser-safe index; the CLI injects it into `runAudit`.
 *
 * The rule is the core's: `isStrictEd25519Input` first, then OpenSSL's cofactorless equation check
 * (the same as `nodeCryptoProvider.ed25519Verify`, which runs the same call synchronously).
 */
import * as nodeCrypto from 'node:crypto';
import { isStrictEd25519Input } from '../crypto.js';
import type { SignatureVerifier } from './auditor.js';

const KEY_CACHE_LIMIT = 1024;

/** A SignatureVerifier over `crypto.verify(null, data, key, sig, callback)` with cached KeyObjects. */
export function threadpoolSignatureVerifier(): SignatureVerifier {
  const keys = new Map<string, nodeCrypto.KeyObject>();
  const keyObject = (raw: Uint8Array): nodeCrypto.KeyObject => {
    const x = Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString('base64url');
    let key = keys.get(x);
    if (key === undefined) {
      key = nodeCrypto.createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x }, format: 'jwk' });
      if (keys.size >= KEY_CACHE_LIMIT) keys.clear();
      keys.set(x, key);
    }
    return key;
  };
  return (signature, message, publicKey) => {
    if (!isStrictEd25519Input(signature, publicKey)) return Promise.resolve(false);
    let key: nodeCrypto.KeyObject;
    try {
      key = keyObject(publicKey);
    } catch {
      return Promise.resolve(false);
    }
    return new Promise((resolve) => {
      try {
        nodeCrypto.verify(null, message, key, signature, (err, ok) => resolve(err === null && ok));
      } catch {
        resolve(false);
      }
    });
  };
}
