// Public API of @vigil/client: re-exports only (STYLE.md section 1).
export * from './errors.js';
export * from './encoding.js';
export {
  sha256,
  setCryptoProvider,
  getCryptoProvider,
  nobleCryptoProvider,
  isStrictEd25519Input,
  randomBytes,
} from './crypto.js';
export type { CryptoProvider } from './crypto.js';
export * from './merkle/index.js';
export * from './note/index.js';
export * from './tiles/index.js';
export * from './receipt/index.js';
export * from './policy/index.js';
export * from './record.js';
export * from './registry.js';
export * from './sealed.js';
export * from './client.js';
export * from './read-limited.js';
export * from './checkpoint-store/checkpoint-store.js';
export * from './audit/auditor.js';
export * from './audit/sealed-check.js';
export * from './mcp/index.js';
export * from './review/index.js';
