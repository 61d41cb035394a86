/** Node-only: Ed25519 public keys as node:crypto KeyObjects, made once per key (bounded). */
import * as nodeCrypto from 'node:crypto';

const KEY_CACHE_LIMIT = 1024;

/** A function from raw 32-byte public keys to KeyObjects, with its own cache of up to 1,024 keys. */
export function keyObjectCache(): (raw: Uint8Array) => nodeCrypto.KeyObject {
  const keys = new Map<string, nodeCrypto.KeyObject>();
  return (raw) => {
    const x = Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString('base64url');
    let key = keys.get(x);
    if (key === undefined) {
      key = nodeCrypto.createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x }, format: 'jwk' });
      if (keys.size >= KEY_CACHE_LIMIT) keys.clear();
      keys.set(x, key);
    }
    return key;
  };
}
