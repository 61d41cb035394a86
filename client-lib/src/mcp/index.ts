// Browser-safe MCP capture API (re-exports only). Node-only pieces (wrap, proxy, settings): ./node.ts.
export * from './types.js';
export {
  classifyMessage,
  parseMessage,
  shrinkToFit,
  resolveBlobs,
  isBlobRef,
  DEFAULT_FIELDS_BUDGET,
} from './message.js';
export type { MessageType, ClassifiedMessage, BlobRef } from './message.js';
export * from './capture.js';
export * from './receipt-meta.js';
export * from './seal.js';
export * from './memory-sink.js';
export * from './sink.js';
export * from './sse.js';
export * from './audit-transport.js';
export * from './reconcile.js';
