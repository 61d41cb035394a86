/**
 * What the log takes (its `GET /v1/log` "limits", DESIGN.md "Contract details") and how big a
 * spooled record is on the wire, so that the emitter never builds a record or a POST the log must
 * refuse for its size (server: routes/entries.ts). Node only (part of the emitter).
 */
import type { SpoolItem } from './spool.js';

/** The limits the emitter keeps to. */
export interface LogLimits {
  /** Largest entry (the tile bundle limit); the log answers ENTRY_TOO_LARGE past it. */
  maxEntryBytes: number;
  /** Largest `POST /v1/entries` body; the log answers 413 BODY_TOO_LARGE past it. */
  maxBodyBytes: number;
  /** Records a POST may carry. */
  maxEntriesPerRequest: number;
}

/**
 * Used until the log told us its own: the entry limit is fixed by tlog-tiles; the body limit is a
 * quarter of the log's default (16 MiB), so that a log configured tighter still takes what we send.
 */
export const DEFAULT_LIMITS: LogLimits = {
  maxEntryBytes: 65_535,
  maxBodyBytes: 4 * 1024 * 1024,
  maxEntriesPerRequest: 1000,
};

/**
 * Bytes the entry envelope adds to the record's canonical JSON: `{"emitter":..,"peer":..,
 * "received":..,"record":..,"sig":..,"v":1}` with an IPv6 peer (at most 45 characters), the
 * 24-character received time and an 88-character signature, plus the emitter name.
 */
export function entryOverhead(emitterName: string): number {
  return 200 + JSON.stringify(emitterName).length;
}

/** Bytes of the JSON `{"emitter","record","sig","blobs"}` of an item in a POST body (an upper bound). */
export function itemBodyBytes(item: SpoolItem, recordBytes: number): number {
  let n = recordBytes + entryOverhead(item.emitter);
  for (const [hex, b64] of Object.entries(item.blobs ?? {})) n += hex.length + b64.length + 8;
  return n;
}

/** Reads the limits out of `/v1/log`'s "limits", keeping a default for each one missing or malformed. */
export function limitsFromLogInfo(limits: Record<string, unknown>): LogLimits {
  const pick = (name: keyof LogLimits): number => {
    const v = limits[name];
    return typeof v === 'number' && Number.isSafeInteger(v) && v > 0 ? v : DEFAULT_LIMITS[name];
  };
  return {
    maxEntryBytes: pick('maxEntryBytes'),
    maxBodyBytes: pick('maxBodyBytes'),
    maxEntriesPerRequest: pick('maxEntriesPerRequest'),
  };
}
