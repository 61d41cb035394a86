/**
 * The auditor's check of sealed values and erasures (DESIGN.md "Readers and sealed payloads"). With a
 * reader token, every `{"$sealed":{"sha256","size"}}` ref of every audited entry is opened with
 * `openSealed` against the S the log returns (one `GET /v1/sealed?start&end` per tile): a wrong S is
 * SEALED_MISMATCH, an S the log neither returns nor says it erased is SEALED_MISSING. An erased value
 * is no problem when a log.erasure record of the operator, after the entry and inside the audited
 * tree, names its commitment (inline, or in the `$blob` list a record with more than 500 carries);
 * otherwise SEALED_ERASURE_UNRECORDED. Erasure claims whose record lies beyond the audited tree are
 * kept in the state and checked by the run that reaches it.
 *
 * Browser-safe: I/O only through the LogClient. Nothing here keeps, logs or reports an opened value.
 */
import { LogRequestError, type LogClient, type SealedAnswer } from '../client.js';
import { sha256 } from '../crypto.js';
import { hexEncode, utf8Decode } from '../encoding.js';
import { isSealedRef, openSealed, type SealedRef } from '../sealed.js';
import type { AuditProblem } from './auditor.js';

/** Record kinds only the log's operator emitter may sign (DESIGN.md, contract "Log HTTP API"). */
export const OPERATOR_KINDS: ReadonlySet<string> = new Set([
  'access.read',
  'log.erasure',
  'hold.add',
  'hold.release',
  'retention.set',
  'reader.add',
  'reader.revoke',
]);

/** A log.erasure record of the operator, as the report lists it (indices are decimal strings). */
export interface ErasureInfo {
  index: string;
  reason: string;
  by: string;
  target: unknown;
  count: number;
  time: string;
  /** The commitments named inline (up to 500). */
  commitments?: string[];
  /** The `$blob` ref of the commitment list (more than 500). */
  commitmentsBlob?: { sha256: string; size: number };
}

/** The log says the value committed to by `sha256` in entry `index` was erased by entry `erasure`. */
export interface ErasureClaim {
  sha256: string;
  index: string;
  erasure: string;
}

/** A sealed ref and the entry that carries it. */
export interface SealedAt {
  index: bigint;
  ref: SealedRef;
  /** Keep the opened value in `SealedCheck.values` (the auditor reads tools/list results). */
  keep?: boolean;
}

/** Every sealed ref in a record, depth first (a ref's own members are not searched). */
export function sealedRefsOf(value: unknown, out: SealedRef[] = []): SealedRef[] {
  if (typeof value !== 'object' || value === null) return out;
  if (isSealedRef(value)) {
    out.push(value);
    return out;
  }
  for (const v of Array.isArray(value) ? value : Object.values(value)) sealedRefsOf(v, out);
  return out;
}

/**
 * Reads a log.erasure record's fields for the report. Returns undefined (with the reason) when the
 * record lacks what the contract requires, so it erases nothing in the audit's eyes.
 */
export function erasureInfoOf(
  index: bigint,
  record: Record<string, unknown>,
  received: string,
): ErasureInfo | string {
  const { reason, by, target, count, commitments } = record;
  if (typeof reason !== 'string') return 'log.erasure record has no reason';
  if (typeof by !== 'string') return 'log.erasure record has no by';
  if (typeof count !== 'number' || !Number.isSafeInteger(count) || count < 0)
    return 'log.erasure record has no count';
  const info: ErasureInfo = {
    index: index.toString(),
    reason,
    by,
    target,
    count,
    time: typeof record.time === 'string' ? record.time : received,
  };
  if (Array.isArray(commitments) && commitments.every((c) => typeof c === 'string')) {
    info.commitments = commitments as string[];
  } else if (isBlobRef(commitments)) {
    info.commitmentsBlob = { sha256: commitments.$blob.sha256, size: commitments.$blob.size };
  } else {
    return 'log.erasure record has no commitments list';
  }
  if (info.commitments !== undefined && info.commitments.length !== count)
    return `log.erasure record names ${info.commitments.length} commitments and counts ${count}`;
  return info;
}

function isBlobRef(v: unknown): v is { $blob: { sha256: string; size: number } } {
  if (typeof v !== 'object' || v === null) return false;
  const b = (v as { $blob?: unknown }).$blob as { sha256?: unknown; size?: unknown } | undefined;
  return (
    typeof b === 'object' &&
    b !== null &&
    typeof b.sha256 === 'string' &&
    /^[0-9a-f]{64}$/.test(b.sha256) &&
    typeof b.size === 'number' &&
    Number.isSafeInteger(b.size) &&
    b.size >= 0
  );
}

/** The outcome of checking one range's sealed values. */
export interface SealedCheck {
  problems: AuditProblem[];
  claims: ErasureClaim[];
  /** Values opened and found to match their commitment. */
  opened: number;
  /** The opened values of the refs marked `keep`, by commitment (hex). */
  values?: Map<string, unknown>;
  /**
   * The bytes S of every value that matched, by commitment (hex): kept only when the caller asks
   * (`keepValues`), for the one client path that shows them (streams out, cli/follow.ts).
   */
  bytes?: Map<string, Uint8Array>;
}

/** Keeps the value of `at` in `out` when asked to. */
function keepValue(out: SealedCheck, at: SealedAt, value: unknown): void {
  if (at.keep !== true) return;
  (out.values ??= new Map()).set(at.ref.$sealed.sha256, value);
}

/**
 * Checks the sealed refs of some entries against what the log answered for them. Pure: the caller
 * fetched `answer`. Problems are in entry order.
 */
export function checkSealedAnswer(
  refs: readonly SealedAt[],
  answer: SealedAnswer,
  keepValues = false,
): SealedCheck {
  const out: SealedCheck = { problems: [], claims: [], opened: 0 };
  if (keepValues) out.bytes = new Map();
  for (const at of refs) {
    const { index, ref } = at;
    const hex = ref.$sealed.sha256;
    const bytes = answer.sealed.get(hex);
    const erasure = answer.erased.get(hex);
    if (bytes !== undefined) {
      const opened = openValue(index, ref, bytes);
      if (opened.problem === undefined) {
        out.opened++;
        keepValue(out, at, opened.value);
        out.bytes?.set(hex, bytes);
      } else out.problems.push(opened.problem);
    } else if (erasure !== undefined) {
      out.claims.push({ sha256: hex, index: index.toString(), erasure: erasure.toString() });
    } else {
      out.problems.push(missing(index, hex));
    }
  }
  return out;
}

function openValue(
  index: bigint,
  ref: SealedRef,
  bytes: Uint8Array,
): { value?: unknown; problem?: AuditProblem } {
  try {
    return { value: openSealed(ref, bytes) };
  } catch (err) {
    // openSealed's messages name sizes and hashes, never the value.
    return {
      problem: {
        code: 'SEALED_MISMATCH',
        index: index.toString(),
        message: `entry ${index}: the sealed value the log returned for commitment ${ref.$sealed.sha256} does not match it: ${(err as Error).message}`,
      },
    };
  }
}

function missing(index: bigint, hex: string): AuditProblem {
  return {
    code: 'SEALED_MISSING',
    index: index.toString(),
    message: `entry ${index}: the log neither returns the sealed value of commitment ${hex} nor says it was erased`,
  };
}

/** Extra bytes a `{"sealed":{...},"erased":{...}}` answer may need beyond its values. */
const ANSWER_SLACK = 4096;

/**
 * Most bytes an honest answer for these refs can have: per ref its name and either the base64 of
 * its committed size or an erasure index, plus punctuation.
 */
export function sealedAnswerBound(refs: readonly SealedAt[]): number {
  let n = ANSWER_SLACK;
  for (const { ref } of refs) n += 100 + Math.max(4 * Math.ceil(ref.$sealed.size / 3), 24);
  return n;
}

/**
 * Fetches and checks the sealed values of the entries [start, end) (refs in entry order): one
 * `GET /v1/sealed?start&end`, bounded by what the refs allow. A range the log calls too large for one
 * answer (400 RANGE_TOO_LARGE: its values pass the log's budget) is split in halves, down to one
 * entry. An answer longer than its refs allow is not trusted as a whole, and one entry the log still
 * will not answer at once is read value by value: each with `GET /v1/sealed/<hex>`, bounded by its
 * committed size, so the value the log lies about is the one blamed. `budget` (the log's
 * `sealedMaxBytes` from /v1/log, when it lists one) splits a range before asking, when the committed
 * sizes of its values already pass it. With `keepValues`, the matching bytes are returned in `bytes`.
 */
export async function fetchAndCheckSealed(
  client: LogClient,
  start: bigint,
  end: bigint,
  refs: readonly SealedAt[],
  budget?: number,
  keepValues = false,
): Promise<SealedCheck> {
  if (refs.length === 0)
    return { problems: [], claims: [], opened: 0, ...(keepValues ? { bytes: new Map() } : {}) };
  const sizes = new Map(refs.map((r) => [r.ref.$sealed.sha256, r.ref.$sealed.size]));
  const overBudget = budget !== undefined && [...sizes.values()].reduce((a, b) => a + b, 0) > budget;
  let split = overBudget && end - start > 1n;
  if (!overBudget) {
    try {
      const answer = await client.sealedRange(start, end, { maxBytes: sealedAnswerBound(refs) });
      return checkSealedAnswer(refs, answer, keepValues);
    } catch (err) {
      if (!(err instanceof LogRequestError)) throw err;
      if (err.code !== 'RESPONSE_TOO_LARGE' && err.code !== 'RANGE_TOO_LARGE') throw err;
      split = err.code === 'RANGE_TOO_LARGE' && end - start > 1n;
    }
  }
  if (!split) return fetchEachValue(client, refs, keepValues);
  const mid = start + (end - start) / 2n;
  const low = await fetchAndCheckSealed(
    client,
    start,
    mid,
    refs.filter((r) => r.index < mid),
    budget,
    keepValues,
  );
  const high = await fetchAndCheckSealed(
    client,
    mid,
    end,
    refs.filter((r) => r.index >= mid),
    budget,
    keepValues,
  );
  const values = new Map([...(low.values ?? []), ...(high.values ?? [])]);
  return {
    problems: [...low.problems, ...high.problems],
    claims: [...low.claims, ...high.claims],
    opened: low.opened + high.opened,
    ...(values.size > 0 ? { values } : {}),
    ...(keepValues ? { bytes: new Map([...(low.bytes ?? []), ...(high.bytes ?? [])]) } : {}),
  };
}

/** `GET /v1/sealed/<hex>` for each ref, bounded by its committed size. */
async function fetchEachValue(
  client: LogClient,
  refs: readonly SealedAt[],
  keepValues: boolean,
): Promise<SealedCheck> {
  const out: SealedCheck = { problems: [], claims: [], opened: 0 };
  if (keepValues) out.bytes = new Map();
  for (const at of refs) {
    const { index, ref } = at;
    const hex = ref.$sealed.sha256;
    let answer;
    try {
      answer = await client.sealed(hex, ref.$sealed.size);
    } catch (err) {
      if (err instanceof LogRequestError && err.code === 'RESPONSE_TOO_LARGE') {
        out.problems.push({
          code: 'SEALED_MISMATCH',
          index: index.toString(),
          message: `entry ${index}: the log returned more than the committed ${ref.$sealed.size} bytes for commitment ${hex}`,
        });
        continue;
      }
      if (err instanceof LogRequestError && err.status === 404) {
        out.problems.push(missing(index, hex));
        continue;
      }
      throw err;
    }
    if ('erased' in answer) {
      out.claims.push({ sha256: hex, index: index.toString(), erasure: answer.erased.toString() });
      continue;
    }
    const opened = openValue(index, ref, answer.bytes);
    if (opened.problem === undefined) {
      out.opened++;
      keepValue(out, at, opened.value);
      out.bytes?.set(hex, answer.bytes);
    } else out.problems.push(opened.problem);
  }
  return out;
}

/**
 * Checks erasure claims against the log.erasure records the audit found (`erasures`, by index) in
 * a tree of `size` entries. Returns the problems and the claims to keep for a later run (their
 * record lies at or beyond `size`). A `$blob` commitment list is fetched once per record, checked
 * against its hash and size, and must be a JSON array of strings.
 */
export async function checkErasureClaims(
  client: LogClient,
  claims: readonly ErasureClaim[],
  erasures: Readonly<Record<string, ErasureInfo>>,
  size: bigint,
): Promise<{ problems: AuditProblem[]; pending: ErasureClaim[] }> {
  const problems: AuditProblem[] = [];
  const pending: ErasureClaim[] = [];
  const lists = new Map<string, Promise<Set<string> | string>>();
  const listOf = (e: ErasureInfo): Promise<Set<string> | string> => {
    if (e.commitments !== undefined) return Promise.resolve(new Set(e.commitments));
    let p = lists.get(e.index);
    if (p === undefined) {
      p = commitmentsFromBlob(client, e);
      lists.set(e.index, p);
    }
    return p;
  };
  for (const c of claims) {
    const at = BigInt(c.erasure);
    if (at >= size) {
      pending.push(c);
      continue;
    }
    const unrecorded = (why: string): void => {
      problems.push({
        code: 'SEALED_ERASURE_UNRECORDED',
        index: c.index,
        message: `entry ${c.index}: the log says the sealed value of commitment ${c.sha256} was erased by entry ${c.erasure}, but ${why}`,
      });
    };
    const e = erasures[c.erasure];
    if (e === undefined) {
      unrecorded(`entry ${c.erasure} is not a log.erasure record of the operator`);
      continue;
    }
    if (at <= BigInt(c.index)) {
      unrecorded(`that record comes before the entry`);
      continue;
    }
    const list = await listOf(e);
    if (typeof list === 'string') unrecorded(list);
    else if (!list.has(c.sha256)) unrecorded('that record does not name it');
  }
  return { problems, pending };
}

async function commitmentsFromBlob(client: LogClient, e: ErasureInfo): Promise<Set<string> | string> {
  const ref = e.commitmentsBlob!;
  const bytes = await client.blob(ref.sha256, ref.size);
  if (bytes.length !== ref.size || hexEncode(sha256(bytes)) !== ref.sha256)
    return `the commitment list of entry ${e.index} does not match its $blob ref`;
  let list: unknown;
  try {
    list = JSON.parse(utf8Decode(bytes));
  } catch {
    return `the commitment list of entry ${e.index} is not JSON`;
  }
  if (!Array.isArray(list) || !list.every((c) => typeof c === 'string'))
    return `the commitment list of entry ${e.index} is not a list of strings`;
  if (list.length !== e.count)
    return `the commitment list of entry ${e.index} holds ${list.length} commitments, the record counts ${e.count}`;
  return new Set(list as string[]);
}
