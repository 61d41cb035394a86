export * from './hash.js';
export * from './nodes.js';
export * from './proof.js';
export * from './compact-range.js';
export * from './verify.js';
