/**
 * An in-memory `RecordSink` for tests and for `auditTransport` users who ship records themselves.
 * Browser-safe.
 */
import type { JsonObject, RecordOptions, RecordSink } from './types.js';

/** One record a `MemorySink` received, with its options. */
export interface SunkRecord {
  fields: JsonObject;
  options: RecordOptions;
}

/**
 * Keeps every record in `records`, in call order. `fail` makes the next writes reject (a disk failure);
 * `hold` makes acknowledged writes wait until `release()` (a slow log).
 */
export class MemorySink implements RecordSink {
  readonly records: SunkRecord[] = [];
  closed = false;
  fail: Error | undefined;
  /** Like `fail`, but only for acknowledged writes: the log is down, the local spool works. */
  logDown: Error | undefined;
  private held: (() => void)[] | undefined;

  record(fields: JsonObject, options: RecordOptions = {}): Promise<void> {
    if (this.closed) return Promise.reject(new Error('sink closed'));
    if (this.fail !== undefined) return Promise.reject(this.fail);
    if (options.acknowledged === true && this.logDown !== undefined) return Promise.reject(this.logDown);
    this.records.push({ fields, options });
    if (options.acknowledged === true && this.held !== undefined) {
      const held = this.held;
      return new Promise((resolve) => held.push(resolve));
    }
    return Promise.resolve();
  }

  /** Acknowledged writes wait from now until `release()`. */
  hold(): void {
    this.held = [];
  }

  /** Lets every held write resolve and stops holding. */
  release(): void {
    const held = this.held ?? [];
    this.held = undefined;
    for (const resolve of held) resolve();
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  /** The fields of every record of a kind. */
  ofKind(kind: string): JsonObject[] {
    return this.records.map((r) => r.fields).filter((f) => f['kind'] === kind);
  }
}
