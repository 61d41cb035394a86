// Node-only client API (exposed with node.ts as `@vigil/client/node`): the emitter and its durable
// spool, file-backed checkpoint and audit state. Kept out of index.ts, which stays browser-safe.
export * from './emitter/emitter.js';
export * from './emitter/spool.js';
export * from './emitter/backoff.js';
export * from './checkpoint-store/file-storage.js';
export * from './audit/state-file.js';
