// Node-only MCP capture API (re-exports only): the stdio wrapper, the HTTP proxy and their settings.
export * from './wrap.js';
export * from './proxy.js';
export * from './settings.js';
export * from './open-capture.js';
export * from './jwt.js';
export * from './line-splitter.js';
