// The reader API (contract "Log HTTP API"; DESIGN.md "Readers and sealed payloads"): S of sealed
// commitments, to an unrevoked reader only, and never before the read is itself in the log. This is
// the one server path that hands out sealed values (STYLE.md section 16): every answer that carries S
// first commits ONE access.read record of the operator emitter (reader, request, query, count and the
// commitments), and a read that cannot be recorded answers 503 and reveals nothing.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { base64Encode, isSealedRef, parseEntry } from '@vigil/client';
import { HttpError } from '../plugins/errors.js';
import { getEntryRange, getErasures, getSealedValues } from '../db/repository.js';
import { parseIndex, type RouteContext } from './context.js';
import { readerOf } from './readers.js';

/** Most entries one `GET /v1/sealed?start&end` covers (one tile). */
export const SEALED_RANGE_MAX = 1000;
/** Most bytes of S one answer carries (before base64). */
export const SEALED_BUDGET_BYTES = 32 * 1024 * 1024;
/** An access.read record lists the commitments it revealed up to this many (else only the count). */
const ACCESS_LIST_MAX = 256;
/** Most characters of query parameters a read that reveals values may carry (its record holds them). */
const QUERY_MAX = 8192;

const HEX64 = /^[0-9a-f]{64}$/;

/** Every `$sealed` commitment in a record (hash -> size), in the order met. */
export function sealedRefsOf(value: unknown, out: Map<string, number> = new Map()): Map<string, number> {
  if (Array.isArray(value)) {
    for (const v of value) sealedRefsOf(v, out);
  } else if (value !== null && typeof value === 'object') {
    if (isSealedRef(value)) out.set(value.$sealed.sha256, value.$sealed.size);
    else for (const v of Object.values(value)) sealedRefsOf(v, out);
  }
  return out;
}

/** Sum of the sizes of commitments (each counted once). */
export function sealedBytes(refs: Map<string, number>): number {
  let n = 0;
  for (const size of refs.values()) n += size;
  return n;
}

/** The `sealed` and `erased` maps of an answer, and the commitments whose S it reveals. */
export interface OpenedValues {
  sealed: Record<string, string>;
  erased: Record<string, string>;
  revealed: string[];
}

/**
 * S (base64) of each commitment that is stored, and the index of the log.erasure record of each that
 * was erased. An erasure whose record the log has not appended yet is waited for once (the
 * sequencer appends pending actions); still pending: 503 ERASURE_PENDING (nothing is revealed).
 */
export async function openValues(ctx: RouteContext, hashes: string[]): Promise<OpenedValues> {
  const out: OpenedValues = { sealed: {}, erased: {}, revealed: [] };
  if (hashes.length === 0) return out;
  const values = await getSealedValues(ctx.tlog.db, hashes);
  const missing = hashes.filter((h) => !values.has(h));
  let erasures = await getErasures(ctx.tlog.db, missing);
  if ([...erasures.values()].some((i) => i === null)) {
    ctx.sequencer.syncOperatorActions();
    await ctx.sequencer.flush();
    erasures = await getErasures(ctx.tlog.db, missing);
    if ([...erasures.values()].some((i) => i === null))
      throw new HttpError('ERASURE_PENDING', 'an erasure record is not in the log yet: retry');
  }
  for (const h of hashes) {
    const bytes = values.get(h);
    if (bytes !== undefined) {
      out.sealed[h] = base64Encode(bytes);
      out.revealed.push(h);
      continue;
    }
    const index = erasures.get(h);
    if (index !== undefined && index !== null) out.erased[h] = index.toString();
  }
  return out;
}

/**
 * Commits the access.read record of a request that reveals `revealed` (nothing when empty). Resolves
 * once the record is committed; any failure is 503 ACCESS_NOT_RECORDED, so the caller sends no S.
 */
export async function recordAccess(
  ctx: RouteContext,
  request: FastifyRequest,
  reader: string,
  revealed: string[],
): Promise<void> {
  if (revealed.length === 0) return;
  // A HEAD answer has no body: it would be recorded as a read of values it never carried.
  if (request.method !== 'GET') throw new HttpError('REQUEST_MALFORMED', 'sealed values are read with GET');
  // The record holds the query as given: each parameter once, and short enough for one entry.
  const query: Record<string, string> = {};
  let length = 0;
  for (const [k, v] of Object.entries((request.query ?? {}) as Record<string, unknown>)) {
    if (typeof v !== 'string') throw new HttpError('REQUEST_MALFORMED', `${k} is given more than once`);
    query[k] = v;
    length += k.length + v.length;
  }
  if (length > QUERY_MAX)
    throw new HttpError('REQUEST_MALFORMED', `the query has ${length} characters, at most ${QUERY_MAX} here`);
  const fields: Record<string, unknown> = {
    kind: 'access.read',
    reader,
    request: `${request.method} ${request.url.split('?')[0]}`,
    query,
    count: revealed.length,
    ...(revealed.length <= ACCESS_LIST_MAX ? { sealed: revealed } : {}),
  };
  try {
    await ctx.sequencer.appendOperatorRecords([{ fields }]);
  } catch (err) {
    request.log.error({ err, reader }, 'access.read not recorded: nothing revealed');
    throw new HttpError('ACCESS_NOT_RECORDED', 'the read could not be recorded in the log: nothing revealed');
  }
}

export async function sealedRoutes(app: FastifyInstance, ctx: RouteContext): Promise<void> {
  const { tlog } = ctx;

  app.get<{ Params: { hex: string } }>('/v1/sealed/:hex', async (request, reply) => {
    const reader = await readerOf(request, tlog);
    const hex = request.params.hex;
    if (!HEX64.test(hex)) throw new HttpError('REQUEST_MALFORMED', 'a commitment is 64 lowercase hex');
    const opened = await openValues(ctx, [hex]);
    const index = opened.erased[hex];
    if (index !== undefined) throw new HttpError('ERASED', `sealed value ${hex} was erased`, { index });
    const value = opened.sealed[hex];
    if (value === undefined) throw new HttpError('SEALED_NOT_FOUND', `no sealed value ${hex}`);
    await recordAccess(ctx, request, reader, opened.revealed);
    return reply
      .type('application/octet-stream')
      .header('cache-control', 'private, no-store')
      .send(Buffer.from(value, 'base64'));
  });

  app.get<{ Querystring: Record<string, unknown> }>('/v1/sealed', async (request, reply) => {
    const reader = await readerOf(request, tlog);
    const start = parseIndex(request.query.start, 'start');
    const end = parseIndex(request.query.end, 'end');
    if (start > end) throw new HttpError('REQUEST_MALFORMED', `start ${start} is beyond end ${end}`);
    if (end - start > BigInt(SEALED_RANGE_MAX))
      throw new HttpError('RANGE_TOO_LARGE', `${end - start} entries, at most ${SEALED_RANGE_MAX} a request`);
    const head = await tlog.head();
    if (!head) throw new Error('tree head missing');
    if (end > head.size)
      throw new HttpError('INDEX_OUT_OF_RANGE', `end ${end} is beyond the tree size ${head.size}`);
    const refs = new Map<string, number>();
    for (const entry of await getEntryRange(tlog.db, start, Number(end - start)))
      sealedRefsOf(parseEntry(entry).record, refs);
    const bytes = sealedBytes(refs);
    if (bytes > SEALED_BUDGET_BYTES)
      throw new HttpError(
        'RANGE_TOO_LARGE',
        `the sealed values of entries ${start}..${end} take ${bytes} bytes, at most ${SEALED_BUDGET_BYTES} a request: ask for a smaller range`,
      );
    const opened = await openValues(ctx, [...refs.keys()]);
    await recordAccess(ctx, request, reader, opened.revealed);
    return reply
      .header('cache-control', 'private, no-store')
      .send({ sealed: opened.sealed, erased: opened.erased });
  });
}
