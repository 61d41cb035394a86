// Read endpoints: checkpoints, tiles, entries, receipts, proofs, blobs, incidents, log info, health
// and metrics (search: search.ts). DESIGN.md "HTTP API"; c2sp.org/tlog-tiles.
import type { FastifyInstance } from 'fastify';
import {
  TILE_WIDTH,
  base64Encode,
  hashesAtTileLevel,
  hashLeaf,
  parseEntry,
  parseTilePath,
} from '@vigil/client';
import { HttpError } from '../plugins/errors.js';
import {
  getBlob,
  getEntry,
  isSealedCommitment,
  latestCosignedSizes,
  listEmitters,
  listIncidents,
  type TreeHead,
} from '../db/repository.js';
import { parseIndex, type RouteContext } from './context.js';
import { readerOf } from './readers.js';
import { SEALED_BUDGET_BYTES, SEALED_RANGE_MAX, openValues, recordAccess, sealedRefsOf } from './sealed.js';

const TEXT = 'text/plain; charset=utf-8';
const IMMUTABLE = 'public, max-age=31536000, immutable';

export async function readRoutes(app: FastifyInstance, ctx: RouteContext): Promise<void> {
  const { tlog } = ctx;

  async function head(): Promise<TreeHead> {
    const h = await tlog.head();
    if (!h) throw new Error('tree head missing');
    return h;
  }

  app.get('/checkpoint', async (_request, reply) => {
    const h = await head();
    return reply
      .type(TEXT)
      .header('cache-control', 'public, max-age=2')
      .send(await tlog.noteWithCosignatures(h));
  });

  app.get('/checkpoint/witnessed', async (_request, reply) => {
    const w = await tlog.witnessedCheckpoint();
    if (!w) throw new HttpError('NO_WITNESSED_CHECKPOINT', 'no checkpoint meets the witness quorum yet');
    return reply.type(TEXT).header('cache-control', 'public, max-age=2').send(w.note);
  });

  // Full tiles and bundles never change: a cached one is sent as it is, before the path is parsed
  // or the tree head read (it was read outside a transaction, so it is committed and published).
  // These routes log at warn: one line per tile fetched would cost more than serving the tile.
  const fullTileHeaders = { 'content-type': 'application/octet-stream', 'cache-control': IMMUTABLE };
  app.get<{ Params: { '*': string } }>('/tile/*', { logLevel: 'warn' }, async (request, reply) => {
    const path = `tile/${request.params['*']}`;
    const cached = tlog.tiles.cachedFull(path);
    if (cached !== undefined) return reply.headers(fullTileHeaders).send(cached);
    const tile = parseTilePath(path);
    const h = await head();
    const available = tile.level === 'entries' ? h.size : hashesAtTileLevel(h.size, tile.level);
    if (tile.index * BigInt(TILE_WIDTH) + BigInt(tile.width) > available) {
      throw new HttpError('NOT_FOUND', `tile ${request.params['*']} is beyond the tree of size ${h.size}`);
    }
    const bytes =
      tile.level === 'entries'
        ? await tlog.tiles.readBundle(tile.index, tile.width)
        : await tlog.tiles.readTile(tile.level, tile.index, tile.width);
    return reply
      .type('application/octet-stream')
      .header('cache-control', tile.width === TILE_WIDTH ? IMMUTABLE : 'public, max-age=60')
      .send(Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  });

  async function entryAt(index: bigint, h: TreeHead) {
    if (index >= h.size)
      throw new HttpError('INDEX_OUT_OF_RANGE', `index ${index} is not below the tree size ${h.size}`);
    const stored = await getEntry(tlog.db, index);
    if (!stored) throw new Error(`entry ${index} missing below tree size`);
    return stored;
  }

  // Public and unchanged; with ?open=1 (a reader) also the sealed values of the entry, after the
  // access.read record of the read is committed (routes/sealed.ts). With ?format=raw, the exact
  // entry bytes the tree commits to (what `vigil verify RECEIPT --entry FILE` checks), nothing else.
  app.get<{ Params: { index: string }; Querystring: { open?: unknown; format?: unknown } }>(
    '/v1/entries/:index',
    async (request, reply) => {
      const { open, format } = request.query;
      if (open !== undefined && open !== '1') throw new HttpError('REQUEST_MALFORMED', 'open must be 1');
      if (format !== undefined && format !== 'raw' && format !== 'json')
        throw new HttpError('REQUEST_MALFORMED', 'format must be raw or json');
      if (format === 'raw') {
        if (open !== undefined)
          throw new HttpError('REQUEST_MALFORMED', 'format=raw carries no sealed values: leave out open');
        const stored = await entryAt(parseIndex(request.params.index, 'index'), await head());
        const bytes = stored.entry;
        return reply
          .type('application/octet-stream')
          .header('cache-control', IMMUTABLE)
          .send(
            Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength),
          );
      }
      const reader = open === undefined ? undefined : await readerOf(request, tlog);
      const index = parseIndex(request.params.index, 'index');
      const h = await head();
      const stored = await entryAt(index, h);
      const entry = parseEntry(stored.entry);
      const answer = {
        index: index.toString(),
        leafHash: base64Encode(hashLeaf(stored.entry)),
        entry,
        receipt: await tlog.receipt(index, h, await tlog.noteWithCosignatures(h)),
      };
      if (reader === undefined) return answer;
      const opened = await openValues(ctx, [...sealedRefsOf(entry.record).keys()]);
      await recordAccess(ctx, request, reader, opened.revealed);
      void reply.header('cache-control', 'private, no-store');
      return { ...answer, sealed: opened.sealed, erased: opened.erased };
    },
  );

  app.get<{ Params: { index: string }; Querystring: { witnessed?: string } }>(
    '/v1/receipt/:index',
    { logLevel: 'warn' },
    async (request, reply) => {
      const index = parseIndex(request.params.index, 'index');
      let h = await head();
      let note: string;
      if (request.query.witnessed === '1') {
        const w = await tlog.witnessedCheckpoint();
        if (!w || w.head.size <= index) {
          throw new HttpError(
            'NO_WITNESSED_CHECKPOINT',
            `no witnessed checkpoint includes index ${index} yet`,
          );
        }
        h = w.head;
        note = w.note;
      } else {
        note = await tlog.noteWithCosignatures(h);
      }
      // Every index below a committed tree head is stored (one transaction): no need to read it.
      if (index >= h.size)
        throw new HttpError('INDEX_OUT_OF_RANGE', `index ${index} is not below the tree size ${h.size}`);
      return reply.type(TEXT).send(await tlog.receipt(index, h, note));
    },
  );

  async function published(size: bigint): Promise<TreeHead> {
    const cp = await tlog.publishedCheckpoint(size);
    if (!cp)
      throw new HttpError('SIZE_NOT_PUBLISHED', `the log never published a checkpoint of size ${size}`);
    return cp;
  }

  app.get<{ Querystring: { index?: string; size?: string } }>('/v1/proof/inclusion', async (request) => {
    const index = parseIndex(request.query.index, 'index');
    const size = parseIndex(request.query.size, 'size');
    await published(size);
    if (index >= size) throw new HttpError('INDEX_OUT_OF_RANGE', `index ${index} is not below size ${size}`);
    const proof = await tlog.tiles.inclusionProof(index, size);
    return { proof: proof.map(base64Encode) };
  });

  app.get<{ Querystring: { from?: string; to?: string } }>('/v1/proof/consistency', async (request) => {
    const from = parseIndex(request.query.from, 'from');
    const to = parseIndex(request.query.to, 'to');
    if (from > to) throw new HttpError('SIZE_INVALID', `from ${from} is beyond to ${to}`);
    await published(from);
    await published(to);
    const proof = from === 0n || from === to ? [] : await tlog.tiles.consistencyProof(from, to);
    return { proof: proof.map(base64Encode) };
  });

  app.get<{ Params: { hex: string } }>('/v1/blobs/:hex', async (request, reply) => {
    const hex = request.params.hex;
    if (!/^[0-9a-f]{64}$/.test(hex))
      throw new HttpError('REQUEST_MALFORMED', 'blob name must be 64 lowercase hex');
    const bytes = await getBlob(tlog.db, hex);
    // S is reader-only (GET /v1/sealed): bytes of a sealed commitment are never served here, even if
    // an emitter also referenced them as a $blob.
    if (!bytes || (await isSealedCommitment(tlog.db, hex)))
      throw new HttpError('NOT_FOUND', `no blob ${hex}`);
    return reply
      .type('application/octet-stream')
      .header('cache-control', IMMUTABLE)
      .send(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  });

  app.get('/v1/incidents', async () => {
    const incidents = await listIncidents(tlog.db, 1000);
    return {
      incidents: incidents.map((i) => ({
        id: i.id.toString(),
        kind: i.kind,
        emitter: i.emitter,
        stream: i.stream,
        seq: i.seq?.toString() ?? null,
        index: i.leafIndex?.toString() ?? null,
        detail: i.detail,
        time: i.created.toISOString(),
      })),
    };
  });

  app.get('/v1/log', async () => {
    const witnesses = await tlog.witnesses();
    return {
      origin: tlog.origin,
      vkey: tlog.vkey,
      witnesses: witnesses.map((w) => ({ name: w.name, vkey: w.vkey, ...(w.url ? { url: w.url } : {}) })),
      quorum: await tlog.quorum(),
      operator: tlog.operator,
      emitters: [{ ...tlog.operator, revoked: false }, ...(await listEmitters(tlog.db))],
      limits: {
        maxEntriesPerRequest: 1000,
        maxEntryBytes: 65535,
        maxBodyBytes: ctx.config.maxBodyBytes,
        batchSize: ctx.config.batchSize,
        queueSize: ctx.config.queueSize,
        rateEmitter: ctx.config.rateEmitter,
        rateAddress: ctx.config.rateAddress,
        searchMaxLimit: 1000,
        searchMaxBytes: ctx.config.searchMaxBytes,
        searchConcurrency: ctx.config.searchConcurrency,
        sealedRangeMax: SEALED_RANGE_MAX,
        sealedMaxBytes: SEALED_BUDGET_BYTES,
      },
    };
  });

  app.get('/healthz', async (_request, reply) => {
    const state = ctx.sequencer.state;
    const ok = state === 'active' || state === 'standby';
    return reply.code(ok ? 200 : 503).send({
      status: ok ? 'ok' : 'unhealthy',
      sequencer: state,
      ...(ctx.sequencer.reason ? { reason: ctx.sequencer.reason } : {}),
      size: ctx.sequencer.size.toString(),
    });
  });

  app.get('/metrics', async (_request, reply) => {
    const h = await head();
    const lag = new Map<string, bigint>();
    const cosigned = await latestCosignedSizes(tlog.db);
    for (const w of await tlog.witnesses()) lag.set(w.name, h.size - (cosigned.get(w.name) ?? 0n));
    return reply
      .type('text/plain; version=0.0.4; charset=utf-8')
      .send(ctx.metrics.render({ treeSize: h.size, queueDepth: ctx.sequencer.queueDepth, witnessLag: lag }));
  });
}
