/**
 * The input of every review view: one log entry as the reviewer's client fetched it, with the result
 * of verifying its receipt against the reviewer's policy. Pure and browser-safe (the web console reuses
 * it): nothing here fetches, and nothing here decides that a record is verified.
 */
import type { SealedAnswer } from '../client.js';
import { viewSealedValues, type SealedView } from '../cli/sealed-view.js';
import { replaceSealed } from '../sealed.js';

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
}

/** Opens `r` against `answer` (undefined: no reader token, everything stays `[sealed]`). */
export function openRecord(r: ReviewRecord, answer: SealedAnswer | undefined): OpenedRecord {
  const sealed = viewSealedValues(r.record, answer);
  const opened = replaceSealed(r.record, (ref) => {
    const v = sealed.find((s) => s.sha256 === ref.$sealed.sha256 && s.state === 'opened');
    return v === undefined ? undefined : { value: v.value };
  }) as Record<string, unknown>;
  return { ...r, opened, sealed };
}

/** A string field of a record, or undefined. */
export function str(o: Record<string, unknown>, key: string): string | undefined {
  const v = o[key];
  return typeof v === 'string' ? v : undefined;
}
