// Opening the sealed values of captured records in tests: each `$sealed` commitment is replaced by the
// value its S (carried beside the record in `blobs`) opens to, checked by `openSealed`. A commitment
// without its S fails the test's expectation loudly (throws).
import type { MemorySink, SunkRecord } from '../../../src/mcp/memory-sink.js';
import type { JsonObject, JsonValue } from '../../../src/mcp/types.js';
import { isSealedRef, openSealed } from '../../../src/sealed.js';

/** `value` with every sealed commitment opened from `blobs`. */
export function openValue(value: JsonValue, blobs: Record<string, Uint8Array>): JsonValue {
  if (isSealedRef(value)) {
    const bytes = blobs[value.$sealed.sha256];
    if (bytes === undefined) throw new Error(`no S beside the record for ${value.$sealed.sha256}`);
    return openSealed(value, bytes) as JsonValue;
  }
  if (Array.isArray(value)) return value.map((v) => openValue(v, blobs));
  if (typeof value === 'object' && value !== null) {
    const out: JsonObject = {};
    for (const [k, v] of Object.entries(value)) out[k] = openValue(v, blobs);
    return out;
  }
  return value;
}

/**
 * Commitments to exact bytes (mcp/wire.ts) stay as they are: they are the same under every seal level.
 */
const WIRE_FIELDS = new Set(['wire', 'lineWire', 'part']);

/**
 * A record's fields with its sealed values opened (a principal's `claims` merged back beside `type`):
 * what the record held before sealing.
 */
export function openRecord(record: SunkRecord): JsonObject {
  const blobs = record.options.blobs ?? {};
  const out: JsonObject = {};
  for (const [k, v] of Object.entries(record.fields)) out[k] = WIRE_FIELDS.has(k) ? v : openValue(v, blobs);
  const principal = out['principal'];
  if (typeof principal === 'object' && principal !== null && !Array.isArray(principal)) {
    const { claims, ...rest } = principal;
    out['principal'] = typeof claims === 'object' && claims !== null ? { ...rest, ...claims } : rest;
  }
  return out;
}

/** The opened fields of every record of a kind, in order. */
export function openedOfKind(sink: MemorySink, kind: string): JsonObject[] {
  return sink.records.filter((r) => r.fields['kind'] === kind).map(openRecord);
}

/** Every record's canonical-ish JSON text (what a public reader of the log sees of them). */
export function publicText(sink: MemorySink): string {
  return sink.records.map((r) => JSON.stringify(r.fields)).join('\n');
}
