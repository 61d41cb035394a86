// GET /v1/search (DESIGN.md "HTTP API"): entries with receipts, newest first, for a reader only
// (contract "Log HTTP API"); `&open=1` adds the sealed values of the answer. A search is the one read
// whose cost the client chooses, so it is bounded three ways: a few run at once (config.
// searchConcurrency, a bounded wait line, then 503 SEARCH_BUSY), an answer holds at most
// config.searchMaxBytes (then it stops with a `next` cursor), and it is streamed from the store in
// chunks of about that many bytes, so a search holds one chunk in memory, never its whole answer.
import { Readable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { MAX_ENTRY_SIZE, parseEntry } from '@vigil/client';
import { HttpError } from '../plugins/errors.js';
import { searchEntries, type SearchQuery, type TreeHead } from '../db/repository.js';
import type { LogService } from '../tlog/service.js';
import { parseIndex, type RouteContext } from './context.js';
import { isDbText } from './text.js';
import { readerOf } from './readers.js';
import { SEALED_BUDGET_BYTES, openValues, recordAccess, sealedRefsOf } from './sealed.js';

const MAX_LIMIT = 1000;
/** Most rows one store read takes (each at most MAX_ENTRY_SIZE bytes). */
const MAX_CHUNK_ROWS = 8;
/** The longest closing of an answer: `],"next":"<up to 19 digits>"}`. */
const CLOSING_MAX = 40;

/**
 * The answer `{"checkpoint":...,"entries":[...]` as a sequence of buffers, returning the `next`
 * cursor for the closing: the entries (each the stored entry bytes, which are canonical JSON, with its
 * receipt against `head`) until `limit` entries or until one more would take the answer past
 * `maxBytes`, or (with `opened`) its sealed values past SEALED_BUDGET_BYTES. `next` (pass it as
 * `after`) is set when the answer stopped at a bound: more entries may follow. The first entry is
 * always sent (maxBytes >= 256 KiB holds any entry and its receipt), so paging advances.
 */
async function* searchEntriesAnswer(
  tlog: LogService,
  query: Omit<SearchQuery, 'limit' | 'maxIndex'>,
  head: TreeHead,
  note: string,
  limit: number,
  maxBytes: number,
  opened?: Map<string, number>,
): AsyncGenerator<Buffer, bigint | undefined> {
  const opening = Buffer.from(`{"checkpoint":${JSON.stringify(note)},"entries":[`);
  yield opening;
  let bytes = opening.length;
  let sent = 0;
  let after = query.after;
  let next: bigint | undefined;
  let openedBytes = 0;
  const getNode = tlog.tiles.nodeReader(head.size);
  read: while (sent < limit) {
    // Rows enough to fill what is left of the budget if every entry were of the largest size: a chunk
    // of n rows holds at most n * MAX_ENTRY_SIZE bytes, so about the budget left plus one entry.
    const rowsLeft = Math.ceil((maxBytes - bytes) / MAX_ENTRY_SIZE);
    const want = Math.min(limit - sent, MAX_CHUNK_ROWS, Math.max(1, rowsLeft));
    const rows = await searchEntries(tlog.db, { ...query, after, maxIndex: head.size, limit: want });
    for (const r of rows) {
      if (opened !== undefined) {
        // The commitments this entry adds to the answer, and whether their S still fits the budget.
        const refs = sealedRefsOf(parseEntry(r.entry).record);
        let more = 0;
        for (const [h, size] of refs) if (!opened.has(h)) more += size;
        if (sent > 0 && openedBytes + more > SEALED_BUDGET_BYTES) {
          next = after;
          break read;
        }
        for (const [h, size] of refs) opened.set(h, size);
        openedBytes += more;
      }
      const receipt = await tlog.receipt(r.index, head, note, getNode);
      const item = Buffer.concat([
        Buffer.from(`${sent === 0 ? '' : ','}{"index":"${r.index}","entry":`),
        r.entry,
        Buffer.from(`,"receipt":${JSON.stringify(receipt)}}`),
      ]);
      if (sent > 0 && bytes + item.length + CLOSING_MAX > maxBytes) {
        next = after;
        break read;
      }
      yield item;
      bytes += item.length;
      sent++;
      after = r.index;
    }
    if (rows.length < want) break;
    if (sent === limit) next = after;
    // Give the loop back between chunks: an in-process store answers in microtasks and a loopback
    // socket rarely pushes back, so without this one answer would keep every other request waiting.
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
  return next;
}

/** The closing of an answer: `],"next":"<index>"` (when set), then `extra` members, then `}`. */
function closing(next: bigint | undefined, extra = ''): Buffer {
  return Buffer.from(`]${next === undefined ? '' : `,"next":"${next}"`}${extra}}`);
}

/** The whole answer, streamed. */
async function* searchAnswer(...args: Parameters<typeof searchEntriesAnswer>): AsyncGenerator<Buffer> {
  const next = yield* searchEntriesAnswer(...args);
  yield closing(next);
}

export async function searchRoutes(app: FastifyInstance, ctx: RouteContext): Promise<void> {
  const { tlog, config, searchSlots } = ctx;

  app.get<{ Querystring: Record<string, string | undefined> }>('/v1/search', async (request, reply) => {
    const reader = await readerOf(request, tlog);
    // Everything the query says is checked before a turn is taken.
    const q = request.query;
    for (const [key, v] of Object.entries(q)) {
      if (typeof v !== 'string') throw new HttpError('REQUEST_MALFORMED', `${key} is given more than once`);
      if (!isDbText(v))
        throw new HttpError('REQUEST_MALFORMED', `${key} has a NUL or a lone utf-16 surrogate`);
    }
    const limit = q.limit === undefined ? 100 : Number(parseIndex(q.limit, 'limit'));
    if (limit < 1 || limit > MAX_LIMIT)
      throw new HttpError('REQUEST_MALFORMED', `limit must be 1..${MAX_LIMIT}`);
    const date = (v: string | undefined, what: string): Date | undefined => {
      if (v === undefined) return undefined;
      const d = new Date(v);
      if (Number.isNaN(d.getTime())) throw new HttpError('REQUEST_MALFORMED', `${what} is not a time`);
      return d;
    };
    const query = {
      emitter: q.emitter,
      stream: q.stream,
      session: q.session,
      method: q.method,
      tool: q.tool,
      since: date(q.since, 'since'),
      until: date(q.until, 'until'),
      after: q.after === undefined ? undefined : parseIndex(q.after, 'after'),
    };
    if (q.open !== undefined && q.open !== '1') throw new HttpError('REQUEST_MALFORMED', 'open must be 1');

    const turn = searchSlots.acquire();
    if (turn === undefined) {
      throw new HttpError(
        'SEARCH_BUSY',
        `${searchSlots.held} searches running and ${searchSlots.waiting} waiting: retry later`,
      );
    }
    const release = await turn;
    // The slot is held until the answer is sent, cut off at the deadline, or abandoned by the client.
    let body: Readable;
    try {
      if (request.socket.destroyed) {
        release();
        return reply;
      }
      const h = await tlog.head();
      if (!h) throw new Error('tree head missing');
      const note = await tlog.noteWithCosignatures(h);
      if (q.open === '1') {
        // Opened: the whole answer is gathered first (bounded by searchMaxBytes and the sealed
        // budget), because its access.read record must be committed before any of it is sent.
        const refs = new Map<string, number>();
        const parts: Buffer[] = [];
        const gen = searchEntriesAnswer(tlog, query, h, note, limit, config.searchMaxBytes, refs);
        let step = await gen.next();
        while (!step.done) {
          parts.push(step.value);
          step = await gen.next();
        }
        const opened = await openValues(ctx, [...refs.keys()]);
        await recordAccess(ctx, request, reader, opened.revealed);
        const extra = `,"sealed":${JSON.stringify(opened.sealed)},"erased":${JSON.stringify(opened.erased)}`;
        parts.push(closing(step.value, extra));
        release();
        return reply
          .type('application/json; charset=utf-8')
          .header('cache-control', 'private, no-store')
          .send(Buffer.concat(parts));
      }
      body = Readable.from(searchAnswer(tlog, query, h, note, limit, config.searchMaxBytes), {
        objectMode: false,
        highWaterMark: 64 * 1024,
      });
    } catch (err) {
      release();
      throw err;
    }
    const deadline = setTimeout(() => {
      request.log.warn({ ms: config.searchTimeoutMs }, 'search answer not sent in time: cut off');
      body.destroy(new Error(`search answer not sent within ${config.searchTimeoutMs} ms`));
    }, config.searchTimeoutMs);
    body.once('close', () => {
      clearTimeout(deadline);
      release();
    });
    return reply.type('application/json; charset=utf-8').send(body);
  });
}
