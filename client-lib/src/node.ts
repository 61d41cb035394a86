import * as nodeCrypto from 'node:crypto';
import { isStrictEd25519Input, setCryptoProvider, type CryptoProvider } from './crypto.js';

const PKCS8_ED25519_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
const CACHE_LIMIT = 1024;
const publicKeys = new Map<string, nodeCrypto.KeyObject>();
const privateKeys = new Map<string, nodeCrypto.KeyObject>();

function remember(cache: Map<string, nodeCrypto.KeyObject>, id: string, key: nodeCrypto.KeyObject): void {
  if (cache.size >= CACHE_LIMIT) {
    const oldest = cache.keys().next().value;
    if (oldest !== undefined) cache.delete(oldest);
  }
  cache.set(id, key);
}

function publicKeyObject(raw: Uint8Array): nodeCrypto.KeyObject {
  const id = Buffer.from(raw).toString('hex');
  let key = publicKeys.get(id);
  if (key === undefined) {
    key = nodeCrypto.createPublicKey({
      key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(raw).toString('base64url') },
      format: 'jwk',
    });
    remember(publicKeys, id, key);
  }
  return key;
}

function privateKeyObject(seed: Uint8Array): nodeCrypto.KeyObject {
  if (seed.length !== 32) throw new RangeError(`ed25519 seed has ${seed.length} bytes, want 32`);
  const id = Buffer.from(seed).toString('hex');
  let key = privateKeys.get(id);
  if (key === undefined) {
    key = nodeCrypto.createPrivateKey({
      key: Buffer.concat([PKCS8_ED25519_PREFIX, seed]),
      format: 'der',
      type: 'pkcs8',
    });
    remember(privateKeys, id, key);
  }
  return key;
}

/**
 * node:crypto provider (OpenSSL). Verification applies the same pre-checks as the noble provider
 * (`isStrictEd25519Input`), so both accept exactly the same signatures; OpenSSL's equation check is
 * cofactorless like Go's. KeyObjects are cached per key (bounded), which doubles verify throughput.
 */
export const nodeCryptoProvider: CryptoProvider = {
  sha256(data) {
    const out = nodeCrypto.hash('sha256', data, 'buffer');
    return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
  },
  ed25519Verify(signature, message, publicKey) {
    if (!isStrictEd25519Input(signature, publicKey)) return false;
    try {
      return nodeCrypto.verify(null, message, publicKeyObject(publicKey), signature);
    } catch {
      return false;
    }
  },
  ed25519Sign(message, seed) {
    return new Uint8Array(nodeCrypto.sign(null, message, privateKeyObject(seed)));
  },
  ed25519PublicKey(seed) {
    const jwk = nodeCrypto.createPublicKey(privateKeyObject(seed)).export({ format: 'jwk' });
    return new Uint8Array(Buffer.from(jwk.x!, 'base64url'));
  },
};

/** Installs `nodeCryptoProvider` for the whole core. */
export function useNodeCrypto(): void {
  setCryptoProvider(nodeCryptoProvider);
}

export { nobleCryptoProvider, getCryptoProvider, setCryptoProvider } from './crypto.js';
export * from './node-client.js';
export * from './mcp/node.js';
export { threadpoolSignatureVerifier, workerPoolSignatureVerifier } from './audit/node-verifier.js';
export { FileModeError, checkDataDirMode, checkKeyFileMode } from './file-mode.js';

export {
  CONSOLE_CSP,
  CONSOLE_HEADERS,
  ConsoleNotBuiltError,
  consoleDistDir,
  loadConsoleFiles,
} from './console-files.js';
export type { ConsoleFile } from './console-files.js';
