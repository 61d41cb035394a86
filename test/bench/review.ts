// Forensic review on one store (DESIGN.md "Forensic review"): `vigil transcript` of a session of
// 10,000 records (1,000 with --quick), every receipt verified against the policy and every sealed value
// opened and checked, against fetching the same records raw in the same run (`GET /v1/search` pages of
// the session, no verification, no opening). Runs alternate (ABAB...) so drift on a shared machine
// hits both. The records are MCP-shaped tools/call requests with 1 KiB of sealed arguments
// (test/bench/gen.ts, shape 'mcp-sealed').
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { newEmitters, ingestJobs } from './lib/ingest.js';
import { runLoad } from './lib/load.js';
import { serverMain, startBenchLog, vigilMain } from './lib/log-server.js';
import { trackDir, untrackDir } from './lib/procs.js';
import { phase, type Row } from './lib/report.js';
import { runScript } from './lib/service.js';

export interface ReviewBenchOptions {
  store: 'embedded' | 'postgres';
  postgresUrl: string | undefined;
  quick: boolean;
}

const ARG_BYTES = 1024;
/** Results per search page, the most the log answers (and what `vigil transcript` asks for). */
const PAGE = 1000;

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** Every result of the session, page by page, as the log sends them; the number of results. */
async function fetchRaw(base: string, token: string, session: string): Promise<number> {
  let n = 0;
  let after: string | undefined;
  for (;;) {
    const q = new URLSearchParams({ session, limit: String(PAGE) });
    if (after !== undefined) q.set('after', after);
    const res = await fetch(`${base}/v1/search?${q.toString()}`, {
      headers: { authorization: `Bearer ${token}` },
    });
    if (res.status !== 200) throw new Error(`GET /v1/search: HTTP ${res.status}: ${await res.text()}`);
    const body = (await res.json()) as { entries: unknown[]; next?: string };
    n += body.entries.length;
    if (body.next === undefined || body.entries.length === 0) return n;
    after = body.next;
  }
}

export async function benchReview(o: ReviewBenchOptions): Promise<Row[]> {
  const q = o.quick;
  const log = await startBenchLog(o.store, o.postgresUrl);
  const dir = trackDir(await fs.mkdtemp(path.join(os.tmpdir(), 'vigil-bench-review-')));
  try {
    const [emitter] = newEmitters(1, 'review');
    await log.addEmitters([emitter!]);
    const records = q ? 1000 : 10_000;
    const session = `bench-review-${Date.now()}`;
    // One stream: its stream.open (no session) and records - 1 tools/call requests of the session.
    const seeded = await runLoad(
      ingestJobs(log.base, [emitter!], {
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
    if (seeded.errors > 0 || seeded.items !== records)
      throw new Error(
        `ingest of the session: ${seeded.items} of ${records} records, ${seeded.errors} errors`,
      );
    const token = /vigil_rt_[A-Za-z0-9_-]+/.exec(
      await runScript(serverMain, ['reader', 'add', 'bench-review', '--data-dir', log.dataDir], log.env),
    )?.[0];
    if (token === undefined) throw new Error('vigil-server reader add printed no token');
    const policyFile = path.join(dir, 'policy');
    await fs.writeFile(policyFile, `log ${log.vkey}\nquorum none\n`);
    phase('review: session ingested');

    const inSession = records - 1;
    const rounds = q ? 1 : 3;
    const transcript: number[] = [];
    const raw: number[] = [];
    for (let i = 0; i < rounds; i++) {
      const t0 = performance.now();
      const out = await runScript(
        vigilMain,
        ['transcript', session, '--log', log.base, '--policy', policyFile, '--json'],
        { VIGIL_READER_TOKEN: token },
      );
      transcript.push((performance.now() - t0) / 1000);
      // One line per call and a summary line; every record verified and opened (exit 0 says so).
      const last = JSON.parse(out.slice(out.lastIndexOf('\n', out.length - 2) + 1)) as {
        summary?: { items: number; failed: number };
      };
      if (last.summary?.items !== inSession || last.summary.failed !== 0)
        throw new Error(`transcript: ${JSON.stringify(last.summary)}, want ${inSession} items, none failed`);
      if (!out.includes('"arguments":{"message":"xxxx'))
        throw new Error('transcript: the sealed arguments were not opened');
      const t1 = performance.now();
      const n = await fetchRaw(log.base, token, session);
      raw.push((performance.now() - t1) / 1000);
      if (n !== inSession) throw new Error(`raw search: ${n} results, want ${inSession}`);
    }
    phase('review: transcript and raw fetch');
    const t = median(transcript);
    const r = median(raw);
    return [
      {
        bench: 'transcript',
        store: o.store,
        what: `\`vigil transcript --json\` of a session of ${inSession} tools/call records (${ARG_BYTES} B sealed arguments): every receipt verified, every value opened and checked; the CLI process${rounds > 1 ? `, median of ${rounds} runs` : ''}`,
        figure: t,
        unit: 's',
        ceiling: {
          name: 'the same records fetched raw (search pages, no verification, no opening)',
          value: r,
        },
        goal: '-',
        met: undefined,
        note: `${Math.round(inSession / t)} records/s; transcript runs ${transcript.map((x) => x.toFixed(2)).join(', ')} s; raw ${raw.map((x) => x.toFixed(2)).join(', ')} s`,
      },
    ];
  } finally {
    await log.close();
    await fs.rm(dir, { recursive: true, force: true });
    untrackDir(dir);
  }
}
