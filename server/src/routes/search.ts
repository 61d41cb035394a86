// GET /v1/search (DESIGN.md "HTTP API"): entries with receipts, newest first. A search is the one read
// whose cost the client chooses, so it is bounded three ways: a few run at once (config.
// searchConcurrency, a bounded wait line, then 503 SEARCH_BUSY), an answer holds at most
// config.searchMaxBytes (then it stops with a `next` cursor), and it is streamed from the store in
// chunks of about that many bytes, so a search holds one chunk in memory, never its whole answer.
import { Readable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { MAX_ENTRY_SIZE } from '@vigil/client';
import { HttpError } from '../plugins/errors.js';
import { searchEntries, type SearchQuery, type TreeHead } from '../db/repository.js';
import type { LogService } from '../tlog/service.js';
import { parseIndex, type RouteContext } from './context.js';
import { isDbText } from './text.js';

const MAX_LIMIT = 1000;
/** Most rows one store read takes (each at most MAX_ENTRY_SIZE bytes). */
const MAX_CHUNK_ROWS = 8;
/** The longest closing of an answer: `],"next":"<up to 19 digits>"}`. */
const CLOSING_MAX = 40;

/**
 * The answer `{"checkpoint":...,"entries":[...],"next":"<index>"}` as a sequence of buffers: the
 * entries (each the stored entry bytes, which are canonical JSON, with its receipt against `head`)
 * until `limit` entries or until one more would take the answer past `maxBytes`. `next` (pass it as
 * `after`) is present when the answer stopped at either bound: more entries may follow. The first
 * entry is always sent (maxBytes >= 256 KiB holds any entry and its receipt), so paging advances.
 */
async function* searchAnswer(
  tlog: LogService,
  query: Omit<SearchQuery, 'limit' | 'maxIndex'>,
  head: TreeHead,
  note: string,
  limit: number,
  maxBytes: number,
): AsyncGenerator<Buffer> {
  const opening = Buffer.from(`{"checkpoint":${JSON.stringify(note)},"entries":[`);
  yield opening;
  let bytes = opening.length;
  let sent = 0;
  let after = query.after;
  let next: bigint | undefined;
  const getNode = tlog.tiles.nodeReader(head.size);
  read: while (sent < limit) {
    // Rows enough to fill what is left of the budget if every entry were of the largest size: a chunk
    // of n rows holds at most n * MAX_ENTRY_SIZE bytes, so about the budget left plus one entry.
    const rowsLeft = Math.ceil((maxBytes - bytes) / MAX_ENTRY_SIZE);
    const want = Math.min(limit - sent, MAX_CHUNK_ROWS, Math.max(1, rowsLeft));
    const rows = await searchEntries(tlog.db, { ...query, after, maxIndex: head.size, limit: want });
    for (const r of rows) {
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
  yield Buffer.from(`]${next === undefined ? '' : `,"next":"${next}"`}}`);
}

export async function searchRoutes(app: FastifyInstance, ctx: RouteContext): Promise<void> {
  const { tlog, config, searchSlots } = ctx;

  app.get<{ Querystring: Record<string, string | undefined> }>('/v1/search', async (request, reply) => {
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
