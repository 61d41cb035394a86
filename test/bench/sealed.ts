// Confidential-by-default benchmarks on one store (DESIGN.md "Readers and sealed payloads"):
// - ingest of MCP-shaped records (one tools/call request per record, 1 KiB of arguments) with `params`
//   sealed against the same records with `params` in clear, runs alternated so both see the same machine;
// - a reader's `GET /v1/sealed/<hex>` (each answer commits an access.read record first) against the
//   public `GET /v1/entries/<index>` of the same log, in the same run;
// - `vigil-server erase --session` of a session of 10,000 records, against the time their ingest took.
import { isSealedRef, type Entry } from '@vigil/client';
import { ingestJobs, newEmitters, type BenchEmitter } from './lib/ingest.js';
import { runLoad, type GenJob, type GenResult } from './lib/load.js';
import { serverMain, startBenchLog, type BenchLog } from './lib/log-server.js';
import { phase, type Row } from './lib/report.js';
import { runScript } from './lib/service.js';
import { summarise } from './lib/stats.js';

export interface SealedBenchOptions {
  store: 'embedded' | 'postgres';
  postgresUrl: string | undefined;
  quick: boolean;
}

const EMITTERS = 16;
const BATCH = 100;
const ARG_BYTES = 1024;

function mustBeClean(what: string, r: GenResult): void {
  if (r.errors > 0) throw new Error(`${what}: ${r.errors} failed requests; first: ${r.firstError}`);
  if (r.requests === 0) throw new Error(`${what}: no request succeeded`);
}

/** One timed ingest run of `shape` records; entries/s. */
async function ingest(
  log: BenchLog,
  emitters: BenchEmitter[],
  shape: 'mcp' | 'mcp-sealed',
  durationMs: number,
): Promise<number> {
  const r = await runLoad(
    ingestJobs(log.base, emitters, {
      streamsPerEmitter: EMITTERS / emitters.length,
      processes: 2,
      batchSize: BATCH,
      // Enough for the run at up to 8,000 entries/s; a faster log drains them early, which the rate
      // (entries / elapsed) accounts for.
      batches: Math.max(2, Math.ceil((8000 * durationMs) / 1000 / EMITTERS / BATCH)),
      recordBytes: ARG_BYTES,
      durationMs,
      shape,
    }),
    { prepareTimeoutMs: 300_000 },
  );
  mustBeClean(`ingest ${shape}`, r);
  return (r.items / r.elapsedMs) * 1000;
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** The `$sealed` commitments inside a value. */
function sealedRefs(value: unknown, out: string[]): void {
  if (isSealedRef(value)) {
    out.push(value.$sealed.sha256);
    return;
  }
  if (Array.isArray(value)) for (const v of value) sealedRefs(v, out);
  else if (value !== null && typeof value === 'object')
    for (const v of Object.values(value)) sealedRefs(v, out);
}

export async function benchSealed(o: SealedBenchOptions): Promise<Row[]> {
  const q = o.quick;
  const rows: Row[] = [];
  const log = await startBenchLog(o.store, o.postgresUrl);
  try {
    const load = newEmitters(q ? 4 : EMITTERS, 'sealed');
    const eraser = newEmitters(1, 'session');
    await log.addEmitters([...load, ...eraser]);
    phase('sealed: log started, emitters registered');

    // 1. Ingest, clear against sealed, alternated (ABAB...) so drift on a shared machine hits both.
    const rounds = q ? 1 : 3;
    const durationMs = q ? 3000 : 15_000;
    const clear: number[] = [];
    const sealed: number[] = [];
    for (let i = 0; i < rounds; i++) {
      clear.push(await ingest(log, load, 'mcp', durationMs));
      sealed.push(await ingest(log, load, 'mcp-sealed', durationMs));
    }
    const clearRate = median(clear);
    const sealedRate = median(sealed);
    phase('sealed: ingest');
    rows.push({
      bench: 'ingest, MCP records',
      store: o.store,
      what: `tools/call requests, ${ARG_BYTES} B of arguments, params sealed (capture's default), ${EMITTERS} streams, batches of ${BATCH}, median of ${rounds} runs of ${durationMs / 1000} s`,
      figure: sealedRate,
      unit: 'entries/s',
      ceiling: { name: 'the same records with params in clear, alternated runs', value: clearRate },
      goal: 'ratio >= 0.9',
      met: sealedRate / clearRate >= 0.9,
      note: `clear runs ${clear.map((x) => Math.round(x)).join(', ')}; sealed ${sealed.map((x) => Math.round(x)).join(', ')}`,
    });

    // 2. A reader's reads of S against the public entry of the same log.
    const token = /vigil_rt_[A-Za-z0-9_-]+/.exec(
      await runScript(serverMain, ['reader', 'add', 'bench-reader', '--data-dir', log.dataDir], log.env),
    )?.[0];
    if (token === undefined) throw new Error('vigil-server reader add printed no token');
    const size = Number(await log.size());
    const hexes: string[] = [];
    const entryPaths: string[] = [];
    for (let i = size - 1; i >= 0 && hexes.length < 500; i -= 7) {
      const res = await fetch(`${log.base}/v1/entries/${i}`);
      if (res.status !== 200) throw new Error(`GET /v1/entries/${i}: HTTP ${res.status}`);
      const body = (await res.json()) as { entry: Entry };
      const refs: string[] = [];
      sealedRefs(body.entry.record, refs);
      if (refs.length === 0) continue;
      hexes.push(...refs);
      entryPaths.push(`/v1/entries/${i}`);
    }
    if (hexes.length === 0) throw new Error('no sealed values found in the log');
    const readMs = q ? 2000 : 15_000;
    const job = (paths: string[], bearer?: string): GenJob[] => [
      {
        kind: 'get',
        base: log.base,
        connections: 16,
        durationMs: readMs,
        paths,
        ...(bearer !== undefined ? { bearer } : {}),
      },
    ];
    const publicRun = await runLoad(job(entryPaths));
    mustBeClean('GET /v1/entries', publicRun);
    const sealedRun = await runLoad(
      job(
        hexes.map((h) => `/v1/sealed/${h}`),
        token,
      ),
    );
    mustBeClean('GET /v1/sealed', sealedRun);
    const publicRate = (publicRun.requests / publicRun.elapsedMs) * 1000;
    const readRate = (sealedRun.requests / sealedRun.elapsedMs) * 1000;
    const lat = summarise(sealedRun.latencies);
    rows.push({
      bench: 'sealed reads',
      store: o.store,
      what: `GET /v1/sealed/<hex> with a reader token, 16 connections, ${hexes.length} distinct values; each answer commits an access.read record first`,
      figure: readRate,
      unit: 'req/s',
      ceiling: { name: 'public GET /v1/entries/<index>, same log', value: publicRate },
      goal: '-',
      met: undefined,
      note: `p50 ${lat.p50.toFixed(1)} ms, p99 ${lat.p99.toFixed(1)} ms`,
    });
    phase('sealed: reads');

    // 3. Erase a session of 10,000 records (its stream.open and 9,999 tools/call records; one
    // set-based transaction, then VACUUM).
    const records = q ? 1000 : 10_000;
    const session = `bench-session-${Date.now()}`;
    const t0 = performance.now();
    const seeded = await runLoad(
      ingestJobs(log.base, eraser, {
        processes: 1,
        batchSize: 1000,
        batches: records / 1000,
        recordBytes: ARG_BYTES,
        durationMs: 600_000,
        shape: 'mcp-sealed',
        session,
      }),
      { prepareTimeoutMs: 300_000 },
    );
    mustBeClean('ingest of the session to erase', seeded);
    const ingestSeconds = (performance.now() - t0) / 1000;
    const t1 = performance.now();
    const out = await runScript(
      serverMain,
      ['erase', '--session', session, '--reason', 'benchmark', '--data-dir', log.dataDir],
      log.env,
    );
    const eraseSeconds = (performance.now() - t1) / 1000;
    const erased = /([0-9]+)/.exec(out)?.[1];
    if (erased === undefined || Number(erased) < seeded.items - 1)
      throw new Error(`erase --session erased too little: ${out.trim()}`);
    rows.push({
      bench: 'erase',
      store: o.store,
      what: `\`vigil-server erase --session\` of ${seeded.items} records (${erased} sealed values; the CLI process, its transaction and VACUUM)`,
      figure: eraseSeconds,
      unit: 's',
      ceiling: { name: 'ingest of the same records, one emitter', value: ingestSeconds },
      goal: '-',
      met: undefined,
    });
    phase('sealed: erase');
    return rows;
  } finally {
    await log.close();
  }
}
