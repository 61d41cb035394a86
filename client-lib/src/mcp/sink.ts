/**
 * Adapting an emitter (`createEmitter`, DESIGN.md "Contract details") to the capture's `RecordSink`.
 * Typed structurally so this module does not import the node-only emitter. Browser-safe.
 */
import type { JsonObject, RecordAck, RecordOptions, RecordSink } from './types.js';

/** What capture needs of an emitter: `emit` with a per-record mode, and `close`. */
export interface EmitterLike {
  emit(
    fields: { kind: string } & Record<string, unknown>,
    options?: { mode?: 'spool' | 'sync'; blobs?: Record<string, Uint8Array>; syncTimeoutMs?: number },
  ): Promise<unknown>;
  close(): Promise<void>;
}

/**
 * A sink writing through an emitter: acknowledged records are emitted in the emitter's `sync` mode
 * (resolve once the log's receipt verified), the rest in `spool` mode (resolve once fsynced; the
 * emitter ships them in batches). Both keep the emitter's one stream order.
 */
export function sinkFromEmitter(emitter: EmitterLike): RecordSink {
  return {
    async record(fields: JsonObject, options: RecordOptions = {}): Promise<RecordAck | void> {
      const kind = fields['kind'];
      if (typeof kind !== 'string') throw new TypeError('record fields need a string kind');
      const emitOptions: {
        mode: 'spool' | 'sync';
        blobs?: Record<string, Uint8Array>;
        syncTimeoutMs?: number;
      } = {
        mode: options.acknowledged === true ? 'sync' : 'spool',
      };
      if (options.blobs !== undefined) emitOptions.blobs = options.blobs;
      if (options.timeoutMs !== undefined) emitOptions.syncTimeoutMs = options.timeoutMs;
      const answer = await emitter.emit({ ...fields, kind }, emitOptions);
      return ackOf(answer);
    },
    close: () => emitter.close(),
  };
}

/** The index and receipt of an emitter's sync answer (`EmitterReceipt`), when it is one. */
function ackOf(answer: unknown): RecordAck | undefined {
  if (typeof answer !== 'object' || answer === null) return undefined;
  const { index, receipt } = answer as { index?: unknown; receipt?: unknown };
  if (typeof receipt !== 'string' || (typeof index !== 'bigint' && typeof index !== 'number'))
    return undefined;
  return { index: String(index), receipt };
}
