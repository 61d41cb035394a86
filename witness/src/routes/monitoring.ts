import type { FastifyInstance } from 'fastify';
import { base64Encode, hexEncode, sha256 } from '@vigil/client';
import { WitnessError } from '../errors.js';
import type { Evidence } from '../store.js';
import type { Witness } from '../witness/witness.js';

export interface MonitoringRouteOptions {
  witness: Witness;
}

/** Evidence as served by `GET /v1/evidence`; the shape is documented in witness/README.md. */
export function evidenceToJson(evidence: Evidence, logVkey: string | undefined) {
  return {
    id: evidence.id.toString(),
    origin: evidence.origin,
    kind: evidence.kind,
    source: evidence.source,
    conclusive: evidence.kind === 'fork' || evidence.kind === 'inconsistent',
    detectedAt: evidence.detectedAt.toISOString(),
    logVkey: logVkey ?? null,
    oldSize: evidence.oldSize.toString(),
    newSize: evidence.newSize.toString(),
    oldNote: evidence.oldNote,
    newNote: evidence.newNote,
    proof: evidence.proof.map(base64Encode),
    prefixRoot: evidence.prefixRoot === null ? null : base64Encode(evidence.prefixRoot),
  };
}

/**
 * Read-only endpoints: the tlog-witness monitoring checkpoint, evidence, the witness's identity and
 * health. None of them changes state.
 */
export async function monitoringRoutes(
  fastify: FastifyInstance,
  options: MonitoringRouteOptions,
): Promise<void> {
  const { witness } = options;

  // c2sp.org/tlog-witness "Monitoring": GET <prefix>/<hex SHA-256(origin)>/checkpoint returns the
  // latest cosigned checkpoint with the log's and the witness's signatures, or 404.
  fastify.get<{ Params: { hash: string } }>('/:hash/checkpoint', async (request, reply) => {
    const hash = request.params.hash;
    if (!/^[0-9a-f]{64}$/.test(hash)) throw new WitnessError('NOT_FOUND', 'not a hex sha-256 origin hash');
    const encoder = new TextEncoder();
    const log = (await witness.store.listLogs()).find(
      (l) => hexEncode(sha256(encoder.encode(l.origin))) === hash,
    );
    if (log === undefined) throw new WitnessError('NOT_FOUND', 'unknown log');
    const latest = await witness.store.latest(log.origin);
    if (latest === undefined) throw new WitnessError('NOT_FOUND', `no checkpoint cosigned for ${log.origin}`);
    return reply
      .type('text/plain; charset=utf-8')
      .header('cache-control', 'public, max-age=5')
      .send(latest.note);
  });

  fastify.get<{ Querystring: { origin?: string } }>('/v1/evidence', async (request) => {
    const origin = typeof request.query.origin === 'string' ? request.query.origin : undefined;
    const logs = new Map((await witness.store.listLogs()).map((l) => [l.origin, l.vkey]));
    // Evidence only exists for configured logs (never deleted, only disabled); any other origin,
    // including one with bytes a text column cannot hold (NUL), simply has none.
    if (origin !== undefined && !logs.has(origin)) return { evidence: [] };
    const items = await witness.store.listEvidence(origin);
    return { evidence: items.map((e) => evidenceToJson(e, logs.get(e.origin))) };
  });

  fastify.get('/v1/witness', async () => {
    const logs = await witness.store.listLogs();
    const out = [];
    for (const log of logs) {
      const latest = await witness.store.latest(log.origin);
      out.push({
        origin: log.origin,
        vkey: log.vkey,
        url: log.url,
        disabled: log.disabled,
        size: (latest?.size ?? 0n).toString(),
      });
    }
    return { name: witness.name, vkey: witness.vkey, logs: out };
  });

  fastify.get('/healthz', async () => ({ status: 'ok' }));
}
