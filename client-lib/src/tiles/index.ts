export * from './path.js';
export * from './bundle.js';
export * from './geometry.js';
export * from './nodes.js';
