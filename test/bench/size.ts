// The large-log pieces, used by log.ts: seeding through the same HTTP path and sequencer as any
// emitter (1,000-entry requests from several generator processes), the server's RSS as the tree
// grows (memory), receipts at 10,000 and at 1,000,000 entries (rate and p50 growth), and
// `vigil audit` over the whole log against the verify ceiling, then a rerun with nothing new.
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { decodeEntryBundle, parsePolicy, tilePath, verifyReceipt } from '@vigil/client';
import { ingestJobs, type BenchEmitter, type Ceilings } from './lib/ingest.js';
import { runLoad } from './lib/load.js';
import { vigilMain, type BenchLog } from './lib/log-server.js';
import { trackDir, untrackDir } from './lib/procs.js';
import type { Row } from './lib/report.js';
import { pssOfTree, runScript } from './lib/service.js';
import { summarise, type LatencySummary } from './lib/stats.js';

type Store = 'embedded' | 'postgres';

const SEED_BATCH = 1000;
const SEED_RECORD_BYTES = 256;
const MiB = 2 ** 20;

export interface Sample {
  size: number;
  rss: number;
  t: number;
}

/** Grows the log to at least `target` entries through POST /v1/entries (up to 1,000 entries a request). */
export async function seedTo(
  log: BenchLog,
  emitters: BenchEmitter[],
  target: number,
): Promise<{ entries: number; seconds: number }> {
  const current = Number(await log.size());
  if (current >= target) return { entries: 0, seconds: 0 };
  const batchSize = Math.min(SEED_BATCH, Math.ceil((target - current) / emitters.length));
  const perEmitter = Math.ceil((target - current) / emitters.length / batchSize);
  const result = await runLoad(
    ingestJobs(log.base, emitters, {
      processes: 2,
      batchSize,
      batches: perEmitter,
      recordBytes: SEED_RECORD_BYTES,
      durationMs: 45 * 60_000,
      closeStreams: true,
    }),
  );
  if (result.errors > 0)
    throw new Error(`seeding: ${result.errors} failed requests; first: ${result.firstError}`);
  return { entries: result.items, seconds: result.elapsedMs / 1000 };
}

export interface ReceiptFigures {
  rate: number;
  lat: LatencySummary;
}

/** Verifies three receipts against the entry bytes, then GETs random receipts from 64 connections. */
export async function receipts(log: BenchLog, size: number, quick: boolean): Promise<ReceiptFigures> {
  // Correctness first: a few receipts verified against the entry bytes from the entry bundle.
  const policy = parsePolicy(`log ${log.vkey}\nquorum none\n`);
  for (const index of [0, Math.floor(size / 2), size - 1]) {
    const text = await (await fetch(`${log.base}/v1/receipt/${index}`)).text();
    const tile = BigInt(Math.floor(index / 256));
    const width = Math.min(256, size - Number(tile) * 256);
    const bundle = decodeEntryBundle(
      new Uint8Array(
        await (
          await fetch(`${log.base}/${tilePath({ level: 'entries', index: tile, width })}`)
        ).arrayBuffer(),
      ),
      width,
    );
    verifyReceipt(text, bundle[index % 256]!, policy);
  }
  const r = await runLoad(
    [0, 1].map(() => ({
      kind: 'get' as const,
      base: log.base,
      connections: 32,
      durationMs: quick ? 1500 : 10_000,
      paths: [],
      receiptsOfSize: size,
      expectPrefix: 'c2sp.org/tlog-proof@v1\n',
    })),
  );
  if (r.errors > 0) throw new Error(`receipts: ${r.errors} failed requests; first: ${r.firstError}`);
  return { rate: (r.requests / r.elapsedMs) * 1000, lat: summarise(r.latencies) };
}

/** Samples the server's memory (with its PostgreSQL: PSS summed over its processes) and tree size every 500 ms (memory row). */
export class RssSampler {
  readonly samples: Sample[] = [];
  private running = true;
  private readonly loop: Promise<void>;

  constructor(log: BenchLog) {
    const t0 = performance.now();
    this.loop = (async () => {
      while (this.running) {
        const rss = await pssOfTree(log.service.pid);
        const size = await log.size().catch(() => undefined);
        if (rss !== undefined && size !== undefined)
          this.samples.push({ size: Number(size), rss, t: performance.now() - t0 });
        await new Promise((r) => setTimeout(r, 500));
      }
    })();
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
  }
}

/** The memory row: max RSS, and flat = the last quarter of the size range not above the second by more than 32 MiB. */
export function memoryRows(
  store: Store,
  samples: Sample[],
  fromSize: number,
  toSize: number,
  sections: string[],
): Row[] {
  const grow = samples.filter((s) => s.size >= fromSize);
  const q = (a: number, b: number) =>
    grow.filter(
      (s) => s.size >= fromSize + a * (toSize - fromSize) && s.size <= fromSize + b * (toSize - fromSize),
    );
  const maxRss = Math.max(...samples.map((s) => s.rss));
  const second = Math.max(...q(0.25, 0.5).map((s) => s.rss));
  const last = Math.max(...q(0.75, 1).map((s) => s.rss));
  const growth = last - second;
  const flat = Number.isFinite(growth) && growth <= 32 * MiB;
  sections.push(memorySection(store, samples));
  return [
    {
      bench: 'memory',
      store,
      what: `log${store === 'embedded' ? ' + its PostgreSQL' : ''}: sum of PSS over its processes, max over the run (tree grew to ${toSize} entries)`,
      figure: maxRss / MiB,
      unit: 'MiB',
      goal: '< 300 MiB and flat',
      met: maxRss < 300 * MiB && flat,
      note: `growth, last vs second quarter of ${fromSize} -> ${toSize}: ${Number.isFinite(growth) ? (growth / MiB).toFixed(0) : '-'} MiB (${grow.length} samples)`,
    },
  ];
}

/** Receipt rows: rate at the big size and p50 growth from the small size. */
export function receiptRows(
  store: Store,
  smallSize: number,
  atSmall: ReceiptFigures,
  bigSize: number,
  atBig: ReceiptFigures,
): Row[] {
  const growthP50 = atBig.lat.p50 / atSmall.lat.p50;
  return [
    {
      bench: 'receipts',
      store,
      what: `GET /v1/receipt/<random index>, 64 connections, ${bigSize} entries`,
      figure: atBig.rate,
      unit: 'req/s',
      goal: '>= 10,000/s',
      met: atBig.rate >= 10_000,
      note: `p50 ${atBig.lat.p50.toFixed(2)} ms, p99 ${atBig.lat.p99.toFixed(2)} ms; at ${smallSize}: ${Math.round(atSmall.rate)}/s`,
    },
    {
      bench: 'receipts',
      store,
      what: `p50 at ${bigSize} / p50 at ${smallSize} entries (${atBig.lat.p50.toFixed(2)} / ${atSmall.lat.p50.toFixed(2)} ms)`,
      figure: growthP50,
      unit: 'x',
      goal: '<= 2x',
      met: growthP50 <= 2,
    },
  ];
}

/** `vigil audit` over the whole log (every signature), then a rerun with nothing new. */
export async function auditRows(log: BenchLog, ceilings: Ceilings): Promise<Row[]> {
  const stateDir = trackDir(await fs.mkdtemp(path.join(os.tmpdir(), 'vigil-bench-audit-')));
  try {
    const size = Number(await log.size());
    const policyFile = path.join(stateDir, 'policy');
    await fs.writeFile(policyFile, `log ${log.vkey}\nquorum none\n`);
    const args = [
      'audit',
      '--log',
      `${log.base}/`,
      '--policy',
      policyFile,
      '--state',
      path.join(stateDir, 'state'),
      '--json',
    ];
    const t0 = performance.now();
    await runScript(vigilMain, args);
    const auditSeconds = (performance.now() - t0) / 1000;
    const t1 = performance.now();
    await runScript(vigilMain, args);
    const rerunSeconds = (performance.now() - t1) / 1000;
    const auditRate = size / auditSeconds;
    return [
      {
        bench: 'audit',
        store: log.store,
        what: `vigil audit over ${size} entries (${auditSeconds.toFixed(1)} s, every signature)`,
        figure: auditRate,
        unit: 'entries/s',
        ceiling: { name: 'Ed25519 verify, measured just before', value: ceilings.verify },
        goal: 'ratio >= 0.7',
        met: auditRate / ceilings.verify >= 0.7,
      },
      {
        bench: 'audit',
        store: log.store,
        what: 'rerun with nothing new (process start included)',
        figure: rerunSeconds * 1000,
        unit: 'ms',
        goal: '< 1 s',
        met: rerunSeconds < 1,
      },
    ];
  } finally {
    await fs.rm(stateDir, { recursive: true, force: true });
    untrackDir(stateDir);
  }
}

function memorySection(store: string, samples: Sample[]): string {
  const lines = [
    `### Log memory while ingesting (${store} store; PSS summed over the log and its PostgreSQL)`,
    '',
    '| tree size | PSS |',
    '|---|---|',
  ];
  const step = Math.max(1, Math.floor(samples.length / 10));
  for (let i = 0; i < samples.length; i += step)
    lines.push(`| ${samples[i]!.size} | ${(samples[i]!.rss / MiB).toFixed(0)} MiB |`);
  const lastSample = samples[samples.length - 1];
  if (lastSample !== undefined && (samples.length - 1) % step !== 0)
    lines.push(`| ${lastSample.size} | ${(lastSample.rss / MiB).toFixed(0)} MiB |`);
  return lines.join('\n');
}
