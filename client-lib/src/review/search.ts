/**
 * The one way a review view gets records: every search result, page by page, each receipt verified
 * against the reviewer's policy for the entry bytes rebuilt here (and for the index the result claims).
 * Browser-safe (LogClient uses fetch): the `vigil` review commands and the web console both call it, so
 * what the console marks as verified is exactly what the CLI would.
 */
import type { LogClient, SealedAnswer, SearchQuery } from '../client.js';
import { TlogError } from '../errors.js';
import { verifyReceipt } from '../receipt/index.js';
import { formatEntry, type Entry } from '../record.js';
import type { Policy, VerifiedCheckpoint } from '../policy/index.js';
import { openRecord, type ReviewRecord } from './records.js';
import { isStateless } from './tool-definitions.js';
import { buildTranscript, type Transcript } from './transcript.js';

/**
 * One entry as the log sent it, with its receipt checked against `policy` for the entry bytes rebuilt
 * from it and for the index the log claims. Never throws for bad content: `failure` says why.
 * `checkpoints`: see verifyReceipt (one map per policy).
 */
export function verifiedRecord(
  index: bigint,
  entry: Record<string, unknown>,
  receipt: string,
  policy: Policy,
  checkpoints?: Map<string, VerifiedCheckpoint>,
): ReviewRecord {
  let failure: string | undefined;
  try {
    const v = verifyReceipt(receipt, formatEntry(entry as unknown as Entry), policy, checkpoints);
    if (v.index !== index)
      throw new TlogError('INDEX_OUT_OF_RANGE', `receipt is for index ${v.index}, the log says ${index}`);
  } catch (err) {
    failure = (err as Error).message;
  }
  const rec = entry['record'];
  return {
    index,
    emitter: String(entry['emitter']),
    received: String(entry['received']),
    record: typeof rec === 'object' && rec !== null ? (rec as Record<string, unknown>) : {},
    receipt,
    entry,
    ...(failure !== undefined ? { failure } : {}),
  };
}

/** Verified records in index order and, with `open`, the sealed answers of every page merged. */
export async function fetchVerifiedRecords(
  client: LogClient,
  policy: Policy,
  query: Omit<SearchQuery, 'limit' | 'after'>,
  open: boolean,
): Promise<{ records: ReviewRecord[]; answer: SealedAnswer | undefined }> {
  const records: ReviewRecord[] = [];
  const answer: SealedAnswer | undefined = open ? { sealed: new Map(), erased: new Map() } : undefined;
  // One answer's receipts mostly share a checkpoint: its signatures are checked once (verifyReceipt).
  const checkpoints = new Map<string, VerifiedCheckpoint>();
  let after: string | undefined;
  for (;;) {
    const page = await client.search(
      { ...query, limit: 1000, ...(after !== undefined ? { after } : {}) },
      { open },
    );
    for (const [k, v] of page.sealed ?? []) answer?.sealed.set(k, v);
    for (const [k, v] of page.erased ?? []) answer?.erased.set(k, v);
    for (const r of page.results)
      records.push(verifiedRecord(r.index, r.entry, r.receipt, policy, checkpoints));
    if (page.next === undefined || page.results.length === 0) break;
    after = page.next;
  }
  records.sort((a, b) => (a.index < b.index ? -1 : a.index > b.index ? 1 : 0));
  return { records, answer };
}

/** One entry by index (`GET /v1/entries/<i>`, opened with a reader token), verified like a search result. */
export async function fetchVerifiedEntry(
  client: LogClient,
  policy: Policy,
  index: bigint,
  open: boolean,
): Promise<{ record: ReviewRecord; answer: SealedAnswer | undefined }> {
  const e = await client.entry(index, { open });
  return {
    record: verifiedRecord(index, e.entry, e.receipt, policy),
    answer: open ? { sealed: e.sealed ?? new Map(), erased: e.erased ?? new Map() } : undefined,
  };
}

/**
 * A session's transcript from the log: its records verified and opened, and for a stateless
 * (2026-07-28) session the tools/list results of the same capture stream (which reaches one server,
 * review/tool-definitions.ts), verified and opened like the session's own, so each tools/call has the
 * definitions in effect. `records` is the session's own count, for the summary line.
 */
export async function fetchTranscript(
  client: LogClient,
  policy: Policy,
  session: string,
  open: boolean,
): Promise<{ records: number; transcript: Transcript }> {
  const own = await fetchVerifiedRecords(client, policy, { session }, open);
  const opened = own.records.map((r) => openRecord(r, own.answer));
  const streams = new Set(
    own.records
      .filter((r) => r.record['kind'] === 'mcp.message' && isStateless(r.record))
      .map((r) => r.record['stream'])
      .filter((x): x is string => typeof x === 'string'),
  );
  for (const stream of streams) {
    const more = await fetchVerifiedRecords(client, policy, { stream, method: 'tools/list' }, open);
    for (const r of more.records)
      if (r.record['session'] !== session) opened.push(openRecord(r, more.answer));
  }
  return { records: own.records.length, transcript: buildTranscript(session, opened) };
}
