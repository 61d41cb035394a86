// Streams out under load: `vigil export --follow --jsonl --out FILE --state FILE` follows a log while
// the ingest load of the log benchmark runs against it (16 emitter streams, batches of 100, 1 KiB
// records, paced at a fixed rate). Every 200 ms the log's size and the stream's committed index (the
// state file's `next`) are sampled; the lag is the log's size minus that index (records) and, for
// each sampled size, the time until the stream had written past it (seconds). Then the time to catch
// up once the load stops, and a check that the file holds every record once.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { ingestJobs, newEmitters } from './lib/ingest.js';
import { runLoad } from './lib/load.js';
import { startBenchLog, vigilMain } from './lib/log-server.js';
import { track, trackDir, untrackDir } from './lib/procs.js';
import { phase, type Row } from './lib/report.js';
import { summarise } from './lib/stats.js';

export interface FollowBenchOptions {
  store: 'embedded' | 'postgres';
  postgresUrl: string | undefined;
  quick: boolean;
}

const EMITTERS = 16;
const BATCH = 100;

async function nextOf(stateFile: string): Promise<bigint> {
  try {
    return BigInt((JSON.parse(await fs.readFile(stateFile, 'utf8')) as { next: string }).next);
  } catch {
    return 0n; // not written yet (or being replaced: the rename is atomic, the read may race the first)
  }
}

export async function benchFollow(o: FollowBenchOptions): Promise<Row[]> {
  const log = await startBenchLog(o.store, o.postgresUrl);
  const dir = trackDir(await fs.mkdtemp(path.join(os.tmpdir(), 'vigil-bench-follow-')));
  try {
    const load = newEmitters(4, 'follow');
    await log.addEmitters(load);
    const policyFile = path.join(dir, 'policy');
    await fs.writeFile(policyFile, `log ${log.vkey}\nquorum none\n`);
    const out = path.join(dir, 'records.jsonl');
    const state = path.join(dir, 'follow.state');
    phase('log started, emitters registered');
    const child = track(
      spawn(
        process.execPath,
        [
          vigilMain,
          'export',
          '--follow',
          '--jsonl',
          '--log',
          `${log.base}/`,
          '--policy',
          policyFile,
          '--out',
          out,
          '--state',
          state,
          '--interval',
          '200ms',
        ],
        { stdio: ['ignore', 'ignore', 'pipe'] },
      ),
    );
    let stderr = '';
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const rate = o.quick ? 1000 : 3000;
    const durationMs = o.quick ? 5000 : 60_000;
    const samples: { at: number; size: bigint; next: bigint }[] = [];
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const [size, next] = await Promise.all([log.size(), nextOf(state)]);
        samples.push({ at: Date.now(), size, next });
        await new Promise((r) => setTimeout(r, 200));
      }
    })();
    const t0 = Date.now();
    const r = await runLoad(
      ingestJobs(log.base, load, {
        streamsPerEmitter: EMITTERS / load.length,
        processes: 2,
        batchSize: BATCH,
        batches: Math.ceil((rate * (durationMs / 1000) * 1.1) / EMITTERS / BATCH),
        recordBytes: 1024,
        durationMs,
        entriesPerSecond: rate,
      }),
    );
    const loadEnd = Date.now();
    if (r.errors > 0) throw new Error(`ingest: ${r.errors} failed requests; first: ${r.firstError}`);
    phase('ingest with the follower running');
    // Caught up: the stream reaches the size the log had when the load ended.
    const final = await log.size();
    const deadline = Date.now() + 120_000;
    while ((await nextOf(state)) < final) {
      if (child.exitCode !== null) throw new Error(`the follower exited ${child.exitCode}: ${stderr}`);
      if (Date.now() > deadline) throw new Error(`the follower did not catch up to ${final}: ${stderr}`);
      await new Promise((res) => setTimeout(res, 50));
    }
    const caughtUp = Date.now();
    sampling = false;
    await sampler;
    child.kill('SIGTERM');
    await new Promise((res) => child.once('exit', res));
    phase('caught up');
    // The file: every index once, in order, up to the state's next.
    const next = await nextOf(state);
    const text = await fs.readFile(out, 'utf8');
    let expect = 0n;
    for (const line of text.split('\n')) {
      if (line === '') continue;
      const l = JSON.parse(line) as { index: string; verified: boolean };
      if (BigInt(l.index) !== expect || l.verified !== true)
        throw new Error(`line ${expect}: index ${l.index}, verified ${String(l.verified)}`);
      expect++;
    }
    if (expect !== next) throw new Error(`the file has ${expect} lines, the state says ${next}`);
    // Lag in records at each sample during the load; in seconds: for each sampled size, until written.
    const during = samples.filter((s) => s.at >= t0 && s.at <= loadEnd);
    const lagRecords = summarise(during.map((s) => Number(s.size - s.next)));
    const lagSeconds = summarise(
      during.map((s) => {
        const done = samples.find((x) => x.at >= s.at && x.next >= s.size);
        return ((done?.at ?? caughtUp) - s.at) / 1000;
      }),
    );
    const ingestRate = (r.items / r.elapsedMs) * 1000;
    return [
      {
        bench: 'export --follow',
        store: o.store,
        what: `lag behind the log while ${Math.round(ingestRate)} entries/s are ingested (${EMITTERS} streams, 1 KiB records, ${Math.round(durationMs / 1000)} s), p50 of ${during.length} samples`,
        figure: lagRecords.p50,
        unit: 'records',
        goal: '-',
        met: undefined,
        note: `max ${lagRecords.max} records`,
      },
      {
        bench: 'export --follow',
        store: o.store,
        what: 'lag in time: from a size of the log to the stream having written past it, p50',
        figure: lagSeconds.p50,
        unit: 's',
        goal: '-',
        met: undefined,
        note: `max ${lagSeconds.max.toFixed(1)} s`,
      },
      {
        bench: 'export --follow',
        store: o.store,
        what: `catch-up after the load stops (to ${final} entries), every line verified, none twice`,
        figure: (caughtUp - loadEnd) / 1000,
        unit: 's',
        goal: '-',
        met: undefined,
      },
    ];
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
    untrackDir(dir);
    await log.close();
  }
}
