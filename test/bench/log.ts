// Log server benchmarks on one store: acknowledgement latency (idle, then at half of peak), peak
// ingest (16 emitters, batches of 100, 1 KiB records) against the Ed25519 verify ceiling, tiles and
// entry bundles against a bare Fastify route serving the same bytes, and a CPU profile of the server
// at peak ingest.
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { tilePath } from '@vigil/client';
import { ed25519VerifyCeiling } from './ceilings.js';
import { ingestJobs, newEmitters, type BenchEmitter, type Ceilings } from './lib/ingest.js';
import { runLoad, type GenJob, type GenResult } from './lib/load.js';
import { startBenchLog, serverMain, type BenchLog } from './lib/log-server.js';
import { trackDir, untrackDir } from './lib/procs.js';
import { formatProfile, readLargestProfile, summariseProfile } from './lib/profile.js';
import { phase, type Row } from './lib/report.js';
import { auditRows, memoryRows, receiptRows, receipts, RssSampler, seedTo } from './size.js';
import { spawnService } from './lib/service.js';
import { summarise } from './lib/stats.js';

const here = path.dirname(fileURLToPath(import.meta.url));

export interface LogBenchOptions {
  store: 'embedded' | 'postgres';
  postgresUrl: string | undefined;
  quick: boolean;
  /** Size of the large log (default 1,000,000; quick 5,000). */
  bigSize?: number;
  ceilings: Ceilings;
  /** Markdown sections for BENCHMARKS.md (profile, memory). */
  sections: string[];
  /** Extra rows measured against this log once it is big (the MCP wrapper), before the profile. */
  extra?: (log: BenchLog, rows: Row[]) => Promise<Row[]>;
}

/** true, or why the server benchmarks cannot run. */
export async function serverAvailable(): Promise<true | string> {
  try {
    await fs.access(serverMain);
    return true;
  } catch {
    return `the log server is not built (${path.relative(process.cwd(), serverMain)} missing)`;
  }
}

function mustBeClean(what: string, r: GenResult): void {
  if (r.errors > 0) throw new Error(`${what}: ${r.errors} failed requests; first: ${r.firstError}`);
  if (r.requests === 0) throw new Error(`${what}: no request succeeded`);
}

/** Concurrent emitter streams in the ingest runs. */
const EMITTERS = 16;
const BATCH = 100;
const RECORD_BYTES = 1024;

async function peakIngest(
  log: BenchLog,
  emitters: BenchEmitter[],
  durationMs: number,
  ceilingVerify: number,
): Promise<GenResult> {
  // Enough signed batches for the whole run at 1.2x the verify ceiling (at least 12,000/s, 6,000/s
  // for short runs, at most 20,000/s: memory); the run stops at durationMs, or earlier if a fast log
  // drains them, which the rate (entries / elapsed) accounts for.
  const floor = durationMs > 10_000 ? 12_000 : 6_000;
  const expected = Math.min(Math.max(ceilingVerify * 1.2, floor), 20_000) * (durationMs / 1000);
  const batches = Math.max(4, Math.ceil(expected / EMITTERS / BATCH));
  const r = await runLoad(
    ingestJobs(log.base, emitters, {
      streamsPerEmitter: EMITTERS / emitters.length,
      processes: 2,
      batchSize: BATCH,
      batches,
      recordBytes: RECORD_BYTES,
      durationMs,
    }),
  );
  mustBeClean('ingest', r);
  return r;
}

export async function benchLog(o: LogBenchOptions): Promise<Row[]> {
  const rows: Row[] = [];
  const q = o.quick;
  const small = q ? 1_000 : 10_000;
  const big = o.bigSize ?? (q ? 5_000 : 1_000_000);
  const log = await startBenchLog(o.store, o.postgresUrl);
  let sampler: RssSampler | undefined;
  const profDir = trackDir(await fs.mkdtemp(path.join(os.tmpdir(), 'vigil-bench-prof-')));
  try {
    // Every run below opens new streams, so the same emitters serve peak, half load and profile.
    // Quick mode registers 4 emitter keys with 4 streams each (16 concurrent emitter streams either
    // way): each registration is a CLI process, which is slow on a loaded CI machine.
    const lone = newEmitters(1, 'lone');
    const load = newEmitters(q ? 4 : EMITTERS, 'e');
    await log.addEmitters([...lone, ...load]);
    const seeders = load.slice(0, 4);
    sampler = new RssSampler(log);
    phase('log started, emitters registered');
    // Cold start as the start command itself reports it (`ready in … s`): on the embedded store the
    // first launch is `vigil-server start` on an empty data directory (initdb, PostgreSQL start,
    // migrations, a new log key and log, listening).
    const ready = /ready in ([0-9.]+) s/.exec(log.service.output());
    if (o.store === 'embedded' && ready !== null) {
      rows.push({
        bench: 'cold start',
        store: o.store,
        what: '`vigil-server start` (npm start) on an empty data directory, as it prints it',
        figure: Number(ready[1]),
        unit: 's',
        goal: '-',
        met: undefined,
      });
    }

    // 1. Idle acknowledgement latency: one lone submission (one record) at a time.
    const idle = await runLoad(
      ingestJobs(log.base, lone, {
        processes: 1,
        batchSize: 1,
        batches: q ? 150 : 2000,
        recordBytes: RECORD_BYTES,
        durationMs: q ? 4000 : 30_000,
      }),
    );
    mustBeClean('idle latency', idle);
    const idleLat = summarise(idle.latencies.slice(Math.min(10, idle.latencies.length - 1)));
    rows.push({
      bench: 'ack latency, idle',
      store: o.store,
      what: `p50, one lone submission at a time (${idleLat.count} submissions)`,
      figure: idleLat.p50,
      unit: 'ms',
      goal: '<= 5 ms',
      met: idleLat.p50 <= 5,
    });
    rows.push({
      bench: 'ack latency, idle',
      store: o.store,
      what: 'p99',
      figure: idleLat.p99,
      unit: 'ms',
      goal: '<= 20 ms',
      met: idleLat.p99 <= 20,
    });

    phase('idle latency');

    // 2. Receipts on a small log (the reference for the p50 at 1,000,000 entries).
    await seedTo(log, seeders, small);
    const smallSize = Number(await log.size());
    phase(`seeded ${smallSize} entries`);
    const atSmall = await receipts(log, smallSize, q);
    phase(`receipts at ${smallSize}`);

    // 3. Peak ingest: 16 emitters, batches of 100, 1 KiB records, all signed before the timed part.
    // The verify ceiling again, right before the run it is compared with: a shared machine's
    // capacity changes from minute to minute.
    const verifyNow = await ed25519VerifyCeiling(q ? 1000 : 3000);
    const peak = await peakIngest(log, load, q ? 4000 : 60_000, verifyNow);
    phase('peak ingest');
    const peakRate = (peak.items / peak.elapsedMs) * 1000;
    const ratio = peakRate / verifyNow;
    const goalRate = o.store === 'postgres' ? 10_000 : 5_000;
    const peakLat = summarise(peak.latencies);
    rows.push({
      bench: 'ingest',
      store: o.store,
      what: `${EMITTERS} emitter streams (${load.length} keys), batches of ${BATCH}, 1 KiB records, ${Math.round(peak.elapsedMs / 1000)} s (${peak.items} entries)`,
      figure: peakRate,
      unit: 'entries/s',
      ceiling: { name: 'Ed25519 verify, measured just before', value: verifyNow },
      goal: o.store === 'postgres' ? '>= 10,000/s and ratio >= 0.6' : '>= 5,000/s',
      met: o.store === 'postgres' ? peakRate >= goalRate && ratio >= 0.6 : peakRate >= goalRate,
      note: `batch ack p50 ${peakLat.p50.toFixed(0)} ms, p99 ${peakLat.p99.toFixed(0)} ms`,
    });

    // 4. Acknowledgement latency at half of peak throughput (open-loop pacing).
    const halfRun = await runLoad(
      ingestJobs(log.base, load, {
        streamsPerEmitter: EMITTERS / load.length,
        processes: 2,
        batchSize: BATCH,
        batches: Math.max(4, Math.ceil(((peakRate / 2) * (q ? 3 : 30) * 1.1) / EMITTERS / BATCH)),
        recordBytes: RECORD_BYTES,
        durationMs: q ? 3000 : 30_000,
        entriesPerSecond: peakRate / 2,
      }),
    );
    mustBeClean('half-load latency', halfRun);
    const halfLat = summarise(halfRun.latencies);
    rows.push({
      bench: 'ack latency, half load',
      store: o.store,
      what: `p99 of a 100-record batch at ${Math.round(((halfRun.items / halfRun.elapsedMs) * 1000) / 100) * 100} entries/s`,
      figure: halfLat.p99,
      unit: 'ms',
      goal: '<= 250 ms',
      met: halfLat.p99 <= 250,
      note: `p50 ${halfLat.p50.toFixed(1)} ms`,
    });

    phase('half-load latency');

    // 5. Tiles and entry bundles vs a bare Fastify route returning the same bytes.
    rows.push(...(await benchTiles(log, q)));
    phase('tiles');

    // 6. Grow the log to 1,000,000 entries (memory), receipts there, audit the whole log.
    const seeded = await seedTo(log, seeders, big);
    const bigSize = Number(await log.size());
    phase(`seeded ${bigSize} entries`);
    if (seeded.entries > 0) {
      rows.push({
        bench: 'seed',
        store: o.store,
        what: `bulk load to ${bigSize} entries: 1,000-entry requests, 4 emitters, 256 B records`,
        figure: seeded.entries / seeded.seconds,
        unit: 'entries/s',
        goal: '-',
        met: undefined,
      });
    }
    const atBig = await receipts(log, bigSize, q);
    rows.push(...receiptRows(o.store, smallSize, atSmall, bigSize, atBig));
    phase(`receipts at ${bigSize}`);
    rows.push(
      ...(await auditRows(log, { ...o.ceilings, verify: await ed25519VerifyCeiling(q ? 1000 : 3000) })),
    );
    phase('audit and rerun');
    await sampler.stop();
    rows.push(...memoryRows(o.store, sampler.samples, smallSize, bigSize, o.sections));
    if (o.extra !== undefined) {
      rows.push(...(await o.extra(log, rows)));
      phase('extra (MCP wrapper)');
    }

    // 7. Where the time goes at peak: the same ingest against a profiled server process.
    await log.restart(['--cpu-prof', '--cpu-prof-dir', profDir]);
    const profRun = await peakIngest(log, load, q ? 2500 : 15_000, o.ceilings.verify);
    const code = await log.service.stop(); // the profile is written at exit
    if (code !== 0) throw new Error(`log exited ${code} on SIGTERM:\n${log.service.output().slice(-3000)}`);
    phase('profiled ingest');
    const profile = await readLargestProfile(profDir);
    if (profile === undefined) throw new Error('the profiled server wrote no .cpuprofile');
    const summary = summariseProfile(profile);
    o.sections.push(
      formatProfile(
        `Where the time goes at peak ingest (${o.store} store, ${Math.round((profRun.items / profRun.elapsedMs) * 1000)} entries/s under the profiler)`,
        summary,
      ),
    );
    return rows;
  } finally {
    await sampler?.stop();
    await fs.rm(profDir, { recursive: true, force: true });
    untrackDir(profDir);
    await log.close();
  }
}

async function benchTiles(log: BenchLog, quick: boolean): Promise<Row[]> {
  const size = await log.size();
  const fullTiles = Number(size / 256n);
  if (fullTiles < 1) throw new Error(`log has ${size} entries, not one full tile`);
  const n = Math.min(fullTiles, 64);
  const kinds: { name: string; level: number | 'entries' }[] = [
    { name: 'level-0 tiles', level: 0 },
    { name: 'entry bundles', level: 'entries' },
  ];
  const rows: Row[] = [];
  const specDir = trackDir(await fs.mkdtemp(path.join(os.tmpdir(), 'vigil-bench-bare-')));
  try {
    for (const kind of kinds) {
      const paths: string[] = [];
      const bodies: Record<string, string> = {};
      for (let i = 0; i < n; i++) {
        const p = `/${tilePath({ level: kind.level, index: BigInt(Math.floor((i * fullTiles) / n)), width: 256 })}`;
        const res = await fetch(`${log.base}${p}`);
        if (res.status !== 200) throw new Error(`GET ${p}: HTTP ${res.status}`);
        bodies[p] = Buffer.from(await res.arrayBuffer()).toString('base64');
        paths.push(p);
      }
      const specFile = path.join(specDir, 'paths.json');
      await fs.writeFile(specFile, JSON.stringify({ paths: bodies }));
      const bare = await spawnService(path.join(here, 'bare-route.js'), [specFile], {
        listening: /listening ([0-9]+)/,
      });
      const durationMs = quick ? 1500 : 15_000;
      const job = (base: string): GenJob[] =>
        [0, 1].map(() => ({
          kind: 'get',
          base,
          connections: 32,
          durationMs,
          paths,
          ...(kind.level === 0 ? { expectBytes: 8192 } : {}),
        }));
      let ours: GenResult;
      let ceiling: GenResult;
      try {
        ceiling = await runLoad(job(bare.base));
        ours = await runLoad(job(log.base));
      } finally {
        await bare.stop();
      }
      mustBeClean(`GET ${kind.name} (bare route)`, ceiling);
      mustBeClean(`GET ${kind.name}`, ours);
      const ourRate = (ours.requests / ours.elapsedMs) * 1000;
      const bareRate = (ceiling.requests / ceiling.elapsedMs) * 1000;
      const lat = summarise(ours.latencies);
      rows.push({
        bench: 'tiles',
        store: log.store,
        what: `GET full ${kind.name}, 64 connections (${n} distinct)`,
        figure: ourRate,
        unit: 'req/s',
        ceiling: { name: 'bare Fastify, same bytes', value: bareRate },
        goal: 'ratio >= 0.8',
        met: ourRate / bareRate >= 0.8,
        note: `p50 ${lat.p50.toFixed(1)} ms, p99 ${lat.p99.toFixed(1)} ms`,
      });
    }
    return rows;
  } finally {
    await fs.rm(specDir, { recursive: true, force: true });
    untrackDir(specDir);
  }
}
