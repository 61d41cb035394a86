/**
 * The input of every review view: one log entry as the reviewer's client fetched it, with the result
 * of verifying its receipt against the reviewer's policy. Pure and browser-safe (the web console reuses
 * it): nothing here fetches, and nothing here decides that a record is verified.
 */
import type { SealedAnswer } from '../client.js';
import { viewSealedValues, type SealedView } from '../cli/sealed-view.js';
import { concatBytes, isUtf8, utf8Decode } from '../encoding.js';
import { isSealedRef, openSealedBytes, replaceSealed } from '../sealed.js';

export interface ReviewRecord {
  index: bigint;
  /** The emitter name, as the log authenticated it (the entry's `emitter`). */
  emitter: string;
  /** The log's clock (the entry's `received`). */
  received: string;
  /** The record as logged: sealed values are commitments. */
  record: Record<string, unknown>;
  /** The receipt checked against the policy: undefined when it verified, else why not. */
  failure?: string;
  /** The tlog-proof@v1 receipt text as the log sent it (shown by the console's record view). */
  receipt?: string;
  /** The entry as the log sent it (emitter, received, record, signature), for display. */
  entry?: Record<string, unknown>;
}

/** A record with its sealed values opened where the log sent S that matches the commitment. */
export interface OpenedRecord extends ReviewRecord {
  /** The record with every value that opened and matched in place of its commitment. */
  opened: Record<string, unknown>;
  /** Every sealed value of the record and its state (opened, failed, erased, missing, sealed). */
  sealed: SealedView[];
  /**
   * A message over the record budget is carried by its `wire` commitment alone (mcp/wire.ts): when
   * its bytes opened (one sealed value, or every `$sealedParts` part whose `mcp.part` record came in
   * the same answer), `opened.message` is the message they hold and this says from where; otherwise
   * why it could not be shown.
   */
  wire?: { opened: true; from: 'sealed' | 'parts'; bytes: number } | { opened: false; why: string };
}

/** Opens `r` against `answer` (undefined: no reader token, everything stays `[sealed]`). */
export function openRecord(r: ReviewRecord, answer: SealedAnswer | undefined): OpenedRecord {
  const sealed = viewSealedValues(r.record, answer);
  const opened = replaceSealed(r.record, (ref) => {
    const v = sealed.find((s) => s.sha256 === ref.$sealed.sha256 && s.state === 'opened');
    return v === undefined ? undefined : { value: v.value };
  }) as Record<string, unknown>;
  const wire = messageFromWire(r.record, answer);
  if (wire === undefined) return { ...r, opened, sealed };
  if (!wire.opened) return { ...r, opened, sealed, wire };
  opened['message'] = wire.message;
  return { ...r, opened, sealed, wire: { opened: true, from: wire.from, bytes: wire.bytes } };
}

/** Opens the exact bytes of one part (or of the whole wire), or says why not. */
function partBytes(ref: { sha256: string; size: number }, answer: SealedAnswer): Uint8Array | string {
  const bytes = answer.sealed.get(ref.sha256);
  if (bytes === undefined)
    return answer.erased.has(ref.sha256)
      ? `erased by entry ${answer.erased.get(ref.sha256)}`
      : `part ${ref.sha256.slice(0, 12)}... not in the answer`;
  try {
    return openSealedBytes({ $sealed: ref }, bytes);
  } catch (err) {
    return `FAILED: ${(err as Error).message}`;
  }
}

/**
 * The message of an `mcp.message` record whose content is only in `wire` (no `message`, `raw` or
 * `rawBase64`): the bytes opened against their commitments, then parsed. Undefined for other records.
 */
function messageFromWire(
  record: Record<string, unknown>,
  answer: SealedAnswer | undefined,
):
  | (
      | { opened: true; from: 'sealed' | 'parts'; bytes: number; message: unknown }
      | { opened: false; why: string }
    )
  | undefined {
  if (record['kind'] !== 'mcp.message') return undefined;
  if ('message' in record || 'raw' in record || 'rawBase64' in record) return undefined;
  const wire = record['wire'];
  if (typeof wire !== 'object' || wire === null) return undefined;
  if ('$oversize' in wire) {
    const size = (wire as { $oversize: { size?: unknown } }).$oversize.size;
    return {
      opened: false,
      why: `over the capture limit: ${String(size)} bytes, only their salted digest kept`,
    };
  }
  if (answer === undefined) return { opened: false, why: 'in the sealed wire bytes [sealed]' };
  let bytes: Uint8Array;
  let from: 'sealed' | 'parts';
  if (isSealedRef(wire)) {
    const b = partBytes(wire.$sealed, answer);
    if (typeof b === 'string') return { opened: false, why: `wire bytes: ${b}` };
    [bytes, from] = [b, 'sealed'];
  } else if ('$sealedParts' in wire) {
    const parts = (wire as { $sealedParts: { size?: unknown; parts?: unknown } }).$sealedParts;
    if (!Array.isArray(parts.parts)) return { opened: false, why: 'wire parts malformed' };
    const chunks: Uint8Array[] = [];
    for (const [i, p] of (parts.parts as { sha256: string; size: number }[]).entries()) {
      const b = partBytes(p, answer);
      if (typeof b === 'string')
        return { opened: false, why: `wire part ${i + 1} of ${parts.parts.length}: ${b}` };
      chunks.push(b);
    }
    bytes = concatBytes(...chunks);
    if (bytes.length !== parts.size)
      return {
        opened: false,
        why: `FAILED: the parts hold ${bytes.length} bytes, the record says ${String(parts.size)}`,
      };
    from = 'parts';
  } else return undefined;
  if (!isUtf8(bytes)) return { opened: false, why: `wire bytes are not UTF-8 (${bytes.length} bytes)` };
  try {
    return { opened: true, from, bytes: bytes.length, message: JSON.parse(utf8Decode(bytes)) as unknown };
  } catch {
    return { opened: false, why: `wire bytes are not JSON (${bytes.length} bytes)` };
  }
}

/** A string field of a record, or undefined. */
export function str(o: Record<string, unknown>, key: string): string | undefined {
  const v = o[key];
  return typeof v === 'string' ? v : undefined;
}
