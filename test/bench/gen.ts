// Load generator: a separate process (forked by the runner through lib/load.ts) so that the figures
// measure the server, not the generator. Protocol over IPC: the parent sends {type:'prepare', job};
// the generator builds (and for ingest signs) every request before the timed part and answers
// {type:'ready'}; the parent sends {type:'go'} to all generators at once; each answers
// {type:'result', result}. Every loop is bounded in time and in count.
import * as http from 'node:http';
import { performance } from 'node:perf_hooks';
import { randomUUID } from 'node:crypto';
import { createHash } from 'node:crypto';
import { randomBytes } from 'node:crypto';
import {
  base64Encode,
  canonicalJson,
  getCryptoProvider,
  parseSignerKey,
  sealBytes,
  sealValue,
  utf8,
} from '@vigil/client';
import { useNodeCrypto } from '@vigil/client/node';
import type { GenJob, GenResult, HttpReq, IngestJob } from './lib/load.js';

useNodeCrypto();

interface Prepared {
  /** One sequence of requests per lane; a lane's requests are sent one after another. */
  lanes: HttpReq[][];
  /** Entries each request carries (ingest), for the entry rate. */
  itemsPerRequest: number[][];
}

/**
 * RFC 8785 bytes of a bench record, built directly: keys in code-point order, and every value is an
 * ASCII string or a small integer, for which JSON.stringify is already canonical. About 3x faster
 * than the general canonicaliser; checked against canonicalJson on the first records of every stream.
 */
function fastCanonical(r: {
  data?: string;
  kind: string;
  prev?: string;
  program?: string;
  seq: number;
  stream: string;
  time: string;
}): string {
  const parts: string[] = [];
  if (r.data !== undefined) parts.push(`"data":${JSON.stringify(r.data)}`);
  parts.push(`"kind":${JSON.stringify(r.kind)}`);
  if (r.prev !== undefined) parts.push(`"prev":${JSON.stringify(r.prev)}`);
  if (r.program !== undefined) parts.push(`"program":${JSON.stringify(r.program)}`);
  parts.push(
    `"seq":${r.seq}`,
    `"stream":${JSON.stringify(r.stream)}`,
    `"time":${JSON.stringify(r.time)}`,
    '"v":1',
  );
  return `{${parts.join(',')}}`;
}

/**
 * An `mcp.message` record of a tools/call request as capture writes it (client-lib/src/mcp/capture.ts):
 * the clear facts, the message (params sealed when `sealed`), and the salted `wire` commitment to the
 * message's bytes. Returns the kind-specific fields and the sealed bytes that travel beside them.
 */
function mcpFields(
  id: number,
  session: string,
  argBytes: number,
  sealed: boolean,
): { fields: Record<string, unknown>; blobs: Record<string, string> } {
  const params = { name: 'echo', arguments: { message: 'x'.repeat(argBytes) } };
  const message = { jsonrpc: '2.0', id, method: 'tools/call', params };
  const wire = sealBytes(utf8(JSON.stringify(message)), randomBytes(16));
  const blobs: Record<string, string> = { [wire.ref.$sealed.sha256]: base64Encode(wire.bytes) };
  let recorded: Record<string, unknown> = message;
  if (sealed) {
    const s = sealValue(params, randomBytes(16));
    blobs[s.ref.$sealed.sha256] = base64Encode(s.bytes);
    recorded = { ...message, params: s.ref };
  }
  return {
    fields: {
      kind: 'mcp.message',
      transport: 'stdio',
      direction: 'client_to_server',
      session,
      messageType: 'request',
      'mcp.method.name': 'tools/call',
      'gen_ai.tool.name': 'echo',
      'jsonrpc.request.id': String(id),
      correlation: { requester: 'client', id },
      message: recorded,
      wire: wire.ref,
    },
    blobs,
  };
}

/** The canonical text of record `seq` of a lane, and the bytes that travel beside it. */
type MakeRecord = (
  seq: number,
  total: number,
  stream: string,
  prev: string | undefined,
) => { canonical: string; blobs?: Record<string, string> };

/** stream.open, `bench.payload` records padded to recordBytes, an optional stream.close. */
function plainRecords(job: IngestJob): MakeRecord {
  // The padding that brings a payload record to recordBytes canonical bytes.
  const probe = fastCanonical({
    data: '',
    kind: 'bench.payload',
    prev: 'A'.repeat(44),
    seq: 100000,
    stream: randomUUID(),
    time: new Date().toISOString(),
  });
  const data = 'x'.repeat(Math.max(0, job.recordBytes - probe.length));
  return (seq, total, stream, prev) => {
    const kind =
      seq === 0 ? 'stream.open' : job.closeStreams && seq === total - 1 ? 'stream.close' : 'bench.payload';
    const fields = {
      ...(kind === 'bench.payload' ? { data } : {}),
      kind,
      ...(prev !== undefined ? { prev } : {}),
      ...(kind === 'stream.open' ? { program: 'vigil-bench' } : {}),
      seq,
      stream,
      time: new Date().toISOString(),
    };
    const canonical = fastCanonical(fields);
    if (seq < 3 && canonical !== canonicalJson({ ...fields, v: 1 }))
      throw new Error(`bench record is not canonical: ${canonical.slice(0, 200)}`);
    return { canonical };
  };
}

/** stream.open, then MCP-shaped records (see mcpFields), built with the general canonicaliser. */
function mcpRecords(job: IngestJob): MakeRecord {
  return (seq, _total, stream, prev) => {
    const { fields, blobs } =
      seq === 0
        ? { fields: { kind: 'stream.open', program: 'vigil-bench' }, blobs: {} }
        : mcpFields(seq, job.session ?? stream, job.recordBytes, job.shape === 'mcp-sealed');
    const common = {
      v: 1,
      seq,
      stream,
      time: new Date().toISOString(),
      ...(prev !== undefined ? { prev } : {}),
    };
    return { canonical: canonicalJson({ ...fields, ...common }), blobs };
  };
}

/** Signs every record of every emitter lane, batched into `POST /v1/entries` requests. */
function prepareIngest(job: IngestJob): Prepared {
  const make = job.shape === 'mcp' || job.shape === 'mcp-sealed' ? mcpRecords(job) : plainRecords(job);
  const lanes: HttpReq[][] = [];
  const items: number[][] = [];
  const provider = getCryptoProvider();
  const streams = job.emitters.flatMap((e) => Array.from({ length: job.streamsPerEmitter ?? 1 }, () => e));
  for (const emitter of streams) {
    const seed = parseSignerKey(emitter.signerKey).seed;
    const stream = randomUUID();
    let prev: string | undefined;
    const total = job.batches * job.batchSize;
    const lane: HttpReq[] = [];
    const laneItems: number[] = [];
    let batch: string[] = [];
    for (let seq = 0; seq < total; seq++) {
      const { canonical, blobs } = make(seq, total, stream, prev);
      const bytes = Buffer.from(canonical);
      const sig = base64Encode(provider.ed25519Sign(bytes, seed));
      prev = createHash('sha256').update(bytes).digest('base64');
      const beside =
        blobs !== undefined && Object.keys(blobs).length > 0 ? `,"blobs":${JSON.stringify(blobs)}` : '';
      batch.push(`{"emitter":${JSON.stringify(emitter.name)},"record":${canonical},"sig":"${sig}"${beside}}`);
      if (batch.length === job.batchSize) {
        lane.push({
          method: 'POST',
          path: '/v1/entries',
          body: `{"entries":[${batch.join(',')}]}`,
          contentType: 'application/json',
        });
        laneItems.push(batch.length);
        batch = [];
      }
    }
    lanes.push(lane);
    items.push(laneItems);
  }
  return { lanes, itemsPerRequest: items };
}

function prepare(job: GenJob): Prepared {
  switch (job.kind) {
    case 'ingest':
      return prepareIngest(job);
    case 'chains':
      return { lanes: job.chains, itemsPerRequest: job.chains.map((c) => c.map(() => 1)) };
    case 'get':
      return { lanes: [], itemsPerRequest: [] };
  }
}

function send(
  agent: http.Agent,
  base: URL,
  req: HttpReq,
  bearer?: string,
): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const r = http.request(
      {
        agent,
        host: base.hostname,
        port: base.port,
        method: req.method,
        path: req.path,
        headers: {
          ...(req.body !== undefined ? { 'content-type': req.contentType ?? 'text/plain' } : {}),
          ...(bearer !== undefined ? { authorization: `Bearer ${bearer}` } : {}),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
        res.on('error', reject);
      },
    );
    r.on('error', reject);
    r.end(req.body);
  });
}

/** Checks one response; returns an error message or undefined. */
function check(job: GenJob, req: HttpReq, status: number, body: Buffer, items: number): string | undefined {
  if (status !== 200) return `${req.method} ${req.path}: HTTP ${status}: ${body.toString('utf8', 0, 300)}`;
  switch (job.kind) {
    case 'ingest': {
      const parsed = JSON.parse(body.toString('utf8')) as { entries?: unknown[]; checkpoint?: unknown };
      if (
        !Array.isArray(parsed.entries) ||
        parsed.entries.length !== items ||
        typeof parsed.checkpoint !== 'string'
      )
        return `POST /v1/entries: answer does not hold ${items} entries and a checkpoint`;
      return undefined;
    }
    case 'chains':
      return body.toString('utf8').startsWith('\u2014 ')
        ? undefined
        : `${req.path}: answer is not a cosignature line`;
    case 'get':
      if (job.expectBytes !== undefined && body.length !== job.expectBytes)
        return `GET ${req.path}: ${body.length} bytes, want ${job.expectBytes}`;
      if (
        job.expectPrefix !== undefined &&
        !body.toString('utf8', 0, job.expectPrefix.length).startsWith(job.expectPrefix)
      )
        return `GET ${req.path}: body does not start with ${JSON.stringify(job.expectPrefix)}`;
      return undefined;
  }
}

async function run(job: GenJob, prepared: Prepared): Promise<GenResult> {
  const base = new URL(job.base);
  const agent = new http.Agent({ keepAlive: true, maxSockets: job.connections });
  const latencies: number[] = [];
  let requests = 0;
  let items = 0;
  let errors = 0;
  let firstError: string | undefined;
  const start = performance.now();
  const deadline = start + job.durationMs;
  const maxRequests = job.maxRequests ?? Number.POSITIVE_INFINITY;
  // Open-loop pacing: request k of the whole generator is not sent before start + k / rate.
  let scheduled = 0;
  const interval = job.requestsPerSecond !== undefined ? 1000 / job.requestsPerSecond : 0;
  const pace = async (): Promise<void> => {
    if (interval === 0) return;
    const at = start + scheduled++ * interval;
    const wait = at - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  };
  const record = (req: HttpReq, t0: number, status: number, body: Buffer, n: number): boolean => {
    const message = check(job, req, status, body, n);
    if (message !== undefined) {
      errors++;
      firstError ??= message;
      return false;
    }
    latencies.push(performance.now() - t0);
    requests++;
    items += n;
    return true;
  };

  const lane = async (laneIndex: number): Promise<void> => {
    if (job.kind === 'get') {
      while (performance.now() < deadline && requests + errors < maxRequests) {
        await pace();
        const path =
          job.receiptsOfSize !== undefined
            ? `/v1/receipt/${Math.floor(Math.random() * job.receiptsOfSize)}`
            : job.paths[Math.floor(Math.random() * job.paths.length)]!;
        const req: HttpReq = { method: 'GET', path };
        const t0 = performance.now();
        try {
          const res = await send(agent, base, req, job.bearer);
          record(req, t0, res.status, res.body, 1);
        } catch (err) {
          errors++;
          firstError ??= `GET ${path}: ${(err as Error).message}`;
          if (errors > 100) return;
        }
      }
      return;
    }
    // Lanes of sequential requests (an emitter stream, a witness origin): lane i takes chains i, i+C, ...
    for (let c = laneIndex; c < prepared.lanes.length; c += job.connections) {
      const chain = prepared.lanes[c]!;
      for (let k = 0; k < chain.length; k++) {
        if (performance.now() >= deadline || requests + errors >= maxRequests) return;
        await pace();
        const req = chain[k]!;
        const t0 = performance.now();
        let ok = false;
        try {
          const res = await send(agent, base, req, job.bearer);
          ok = record(req, t0, res.status, res.body, prepared.itemsPerRequest[c]![k]!);
        } catch (err) {
          errors++;
          firstError ??= `${req.method} ${req.path}: ${(err as Error).message}`;
        }
        if (!ok) break; // the rest of this chain depends on this request
      }
    }
  };
  await Promise.all(Array.from({ length: job.connections }, (_, i) => lane(i)));
  const elapsedMs = performance.now() - start;
  agent.destroy();
  return { requests, items, errors, firstError, elapsedMs, latencies };
}

let prepared: Prepared | undefined;
let current: GenJob | undefined;
process.on('message', (msg: { type: string; job?: GenJob }) => {
  void (async () => {
    try {
      if (msg.type === 'prepare') {
        current = msg.job!;
        prepared = prepare(current);
        process.send!({ type: 'ready' });
      } else if (msg.type === 'go') {
        const result = await run(current!, prepared!);
        prepared = undefined;
        process.send!({ type: 'result', result });
      } else if (msg.type === 'exit') {
        process.disconnect();
      }
    } catch (err) {
      process.send!({ type: 'error', message: (err as Error).stack ?? String(err) });
    }
  })();
});
