/**
 * Time windows of a forensic review (DESIGN.md "Forensic review", "Time"): `--since` / `--until` take a
 * duration back from now (`90s`, `10m`, `2h`, `7d`) or an RFC 3339 time. Pure: the caller passes now.
 */

/** Which clock a window filters on: the log's `received` or the emitter's `time`. */
export type ReviewClock = 'received' | 'emitter';

const DURATION = /^([1-9][0-9]{0,8})(s|m|h|d)$/;
const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;
const UNIT_MS = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

/**
 * A window bound: `now` minus a duration like `10m` or `7d`, or an RFC 3339 time (with its offset).
 * Throws RangeError for anything else, naming `what`.
 */
export function parseTimeBound(text: string, now: Date, what = 'time'): Date {
  const d = DURATION.exec(text);
  if (d !== null) return new Date(now.getTime() - Number(d[1]) * UNIT_MS[d[2] as keyof typeof UNIT_MS]);
  if (RFC3339.test(text)) {
    const t = Date.parse(text);
    if (!Number.isNaN(t)) return new Date(t);
  }
  throw new RangeError(
    `${what} ${JSON.stringify(text)} is neither a duration like 10m, 2h, 7d nor an RFC 3339 time`,
  );
}

/** The time of a record on `clock`: the entry's `received` or the record's `time`; undefined if absent or unparsable. */
export function timeOn(clock: ReviewClock, received: unknown, recordTime: unknown): number | undefined {
  const v = clock === 'received' ? received : recordTime;
  if (typeof v !== 'string') return undefined;
  const t = Date.parse(v);
  return Number.isNaN(t) ? undefined : t;
}

/** Whether `t` lies in [since, until) (open ends when undefined). A record without a time is outside. */
export function isInWindow(t: number | undefined, since: Date | undefined, until: Date | undefined): boolean {
  if (t === undefined) return false;
  if (since !== undefined && t < since.getTime()) return false;
  if (until !== undefined && t >= until.getTime()) return false;
  return true;
}
