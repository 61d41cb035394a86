// `npm run bench` (full) and `npm run bench -- --quick` (CI smoke test, under 2 minutes).
// Runs each benchmark with its ceiling measured in the same run, prints an aligned table, and
// rewrites the generated results section of BENCHMARKS.md. Exit 1 only when a benchmark breaks (an
// error or a wrong result), never because a goal was missed on a slow machine.
//
// Options: --quick, --only <name,...> (witness, log, mcp, sealed, review, follow, console; the ceilings
// always run), --entries <n> (the large log's size), --stores <embedded,postgres>, --no-write (do not
// touch BENCHMARKS.md), --out <file>.
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { useNodeCrypto } from '@vigil/client/node';
import { ed25519VerifyCeiling, sha256Ceiling } from './ceilings.js';
import { benchFollow } from './follow.js';
import { benchReview } from './review.js';
import { benchSealed } from './sealed.js';
import { cleanupAll } from './lib/procs.js';
import { machine } from './lib/machine.js';
import { postgresServerUrl } from './lib/pg.js';
import {
  formatMarkdown,
  formatTable,
  resetPhase,
  rewriteResults,
  SkipError,
  type Outcome,
  type Row,
} from './lib/report.js';
import { benchWitness } from './witness.js';
import { benchLog, serverAvailable } from './log.js';
import type { Ceilings } from './lib/ingest.js';
import type { BenchLog } from './lib/log-server.js';
import { benchMcp } from './mcp.js';
import { benchConsole } from './console.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    only: { type: 'string' },
    'no-write': { type: 'boolean', default: false },
    entries: { type: 'string' },
    stores: { type: 'string' },
    out: { type: 'string' },
  },
  strict: true,
});
const quick = values.quick === true;
// --entries N: the size the large log grows to (default 1,000,000; quick 5,000), for a shorter full run.
const bigSize = values.entries !== undefined ? Number(values.entries) : undefined;
if (bigSize !== undefined && !(Number.isInteger(bigSize) && bigSize > 0)) {
  process.stderr.write('--entries takes a positive integer\n');
  process.exit(2);
}
const only = values.only?.split(',').map((s) => s.trim());
const selected = (name: string): boolean => only === undefined || only.includes(name);

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    cleanupAll();
    process.exit(130);
  });
}
process.on('exit', () => cleanupAll());

useNodeCrypto();
const started = Date.now();
const rows: Row[] = [];
const outcomes: Outcome[] = [];
const sections: string[] = [];
const pgUrl = postgresServerUrl();
// Postgres first: its ingest row is the headline goal.
// --stores postgres,embedded: the stores to measure (default: both when a Postgres URL is given).
const stores: ('embedded' | 'postgres')[] = (
  values.stores?.split(',').map((s) => s.trim()) ??
  (pgUrl !== undefined ? ['postgres', 'embedded'] : ['embedded'])
).filter((s): s is 'embedded' | 'postgres' => {
  if (s !== 'embedded' && s !== 'postgres') {
    process.stderr.write(`--stores takes embedded and/or postgres, not ${s}\n`);
    process.exit(2);
  }
  return true;
});
if (stores.includes('postgres') && pgUrl === undefined) {
  process.stderr.write('--stores postgres needs BENCH_DATABASE_URL or TEST_DATABASE_URL\n');
  process.exit(2);
}

/** The command as typed, without --out (where the results went is not part of the run). */
function command(): string {
  const args: string[] = [];
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--out') i++;
    else if (!argv[i]!.startsWith('--out=')) args.push(argv[i]!);
  }
  return args.length === 0 ? 'npm run bench' : `npm run bench -- ${args.join(' ')}`;
}

/**
 * Rewrites the results section of BENCHMARKS.md (or --out). Called after every benchmark, so an
 * interrupted or timed-out full run still leaves what it measured, marked as partial.
 */
async function writeResults(final: boolean): Promise<void> {
  if (values['no-write'] === true) return;
  const file = values.out ?? path.join(root, 'BENCHMARKS.md');
  const md = formatMarkdown(
    {
      mode: quick ? 'quick' : 'full',
      command: command(),
      machine: machine(),
      stores,
      date: new Date(started),
      seconds: (Date.now() - started) / 1000,
      partial: !final,
    },
    rows,
    outcomes,
    sections,
  );
  await rewriteResults(file, md);
  if (final) process.stdout.write(`wrote ${path.relative(process.cwd(), file)}\n`);
}

function print(newRows: Row[]): void {
  if (newRows.length > 0) process.stdout.write(`${formatTable(newRows)}\n\n`);
}

async function step(name: string, fn: () => Promise<Row[]>): Promise<void> {
  const t0 = Date.now();
  process.stdout.write(`== ${name}\n`);
  resetPhase();
  try {
    const r = await fn();
    rows.push(...r);
    outcomes.push({ bench: name, status: 'ok', seconds: (Date.now() - t0) / 1000 });
    print(r);
  } catch (err) {
    if (err instanceof SkipError) {
      outcomes.push({
        bench: name,
        status: 'skipped',
        message: err.message,
        seconds: (Date.now() - t0) / 1000,
      });
      process.stdout.write(`skipped: ${err.message}\n\n`);
    } else {
      outcomes.push({
        bench: name,
        status: 'broken',
        message: (err as Error).message.slice(0, 2000),
        seconds: (Date.now() - t0) / 1000,
      });
      process.stdout.write(`BROKEN: ${(err as Error).stack ?? String(err)}\n\n`);
    }
  }
  await writeResults(false);
}

const ceilings: Ceilings = { verify: Number.NaN, sha256Node: Number.NaN, sha256Leaf: Number.NaN };
await step('ceilings', async () => {
  ceilings.verify = await ed25519VerifyCeiling(quick ? 1000 : 3000);
  ceilings.sha256Node = sha256Ceiling(quick ? 300 : 1000, 65);
  ceilings.sha256Leaf = sha256Ceiling(quick ? 300 : 1000, 1200);
  if (!(ceilings.verify > 0) || !(ceilings.sha256Node > 0)) throw new Error('a ceiling measured zero');
  return [
    {
      bench: 'ceiling',
      store: '-',
      what: 'Ed25519 verify, node:crypto, all cores (worker threads)',
      figure: ceilings.verify,
      unit: 'verifies/s',
      goal: '-',
      met: undefined,
    },
    {
      bench: 'ceiling',
      store: '-',
      what: 'SHA-256 of a Merkle node (65 B), one core',
      figure: ceilings.sha256Node,
      unit: 'hashes/s',
      goal: '-',
      met: undefined,
    },
    {
      bench: 'ceiling',
      store: '-',
      what: 'SHA-256 of a 1.2 KiB leaf, one core',
      figure: ceilings.sha256Leaf,
      unit: 'hashes/s',
      goal: '-',
      met: undefined,
    },
  ];
});

if (selected('witness')) {
  for (const store of stores) {
    await step(`witness (${store})`, () =>
      benchWitness({
        store,
        postgresUrl: pgUrl,
        origins: quick ? 8 : 32,
        steps: quick ? 100 : 1000,
        durationMs: quick ? 3000 : 20_000,
      }),
    );
  }
}

const server = await serverAvailable();
for (const store of stores) {
  if (selected('log') || selected('mcp')) {
    await step(`log (${store})`, async () => {
      if (server !== true) throw new SkipError(server);
      return benchLog({
        ...(bigSize !== undefined ? { bigSize } : {}),
        store,
        postgresUrl: pgUrl,
        quick,
        ceilings,
        sections,
        // The MCP wrapper runs against the last store's log once it is big (one log start fewer):
        // the embedded one unless --stores leaves it out.
        ...(store === stores.at(-1) && selected('mcp') ? { extra: mcpRows } : {}),
      });
    });
  }
}
for (const store of stores) {
  if (selected('sealed')) {
    await step(`sealed (${store})`, async () => {
      if (server !== true) throw new SkipError(server);
      return benchSealed({ store, postgresUrl: pgUrl, quick });
    });
  }
}
for (const store of stores) {
  if (selected('review')) {
    await step(`review (${store})`, async () => {
      if (server !== true) throw new SkipError(server);
      return benchReview({ store, postgresUrl: pgUrl, quick });
    });
  }
  if (selected('follow')) {
    await step(`follow (${store})`, async () => {
      if (server !== true) throw new SkipError(server);
      return benchFollow({ store, postgresUrl: pgUrl, quick });
    });
  }
}
if (selected('console')) {
  await step('console', async () => {
    if (server !== true) throw new SkipError(server);
    return benchConsole({ quick });
  });
}
if (pgUrl === undefined) {
  outcomes.push({
    bench: 'postgres rows',
    status: 'skipped',
    message: 'no BENCH_DATABASE_URL or TEST_DATABASE_URL',
    seconds: 0,
  });
}

/** MCP rows; a failure there is reported as its own broken benchmark, not as the log's. */
async function mcpRows(log: BenchLog, logRows: Row[]): Promise<Row[]> {
  const t0 = Date.now();
  try {
    const idleAckP50 = logRows.find(
      (r) => r.bench === 'ack latency, idle' && r.what.startsWith('p50'),
    )?.figure;
    const r = await benchMcp({ log, idleAckP50 });
    outcomes.push({ bench: 'mcp wrap', status: 'ok', seconds: (Date.now() - t0) / 1000 });
    return r;
  } catch (err) {
    const skipped = err instanceof SkipError;
    outcomes.push({
      bench: 'mcp wrap',
      status: skipped ? 'skipped' : 'broken',
      message: (err as Error).message.slice(0, 2000),
      seconds: (Date.now() - t0) / 1000,
    });
    process.stdout.write(
      `${skipped ? 'skipped' : 'BROKEN'}: mcp wrap: ${(err as Error).stack ?? String(err)}\n`,
    );
    return [];
  }
}

const seconds = (Date.now() - started) / 1000;
process.stdout.write(`== summary (${Math.round(seconds)} s)\n${formatTable(rows)}\n`);
for (const o of outcomes)
  if (o.status !== 'ok')
    process.stdout.write(
      `${o.status}: ${o.bench}${o.message !== undefined ? `: ${o.message.split('\n')[0]}` : ''}\n`,
    );

await writeResults(true);
const broken = outcomes.filter((o) => o.status === 'broken');
cleanupAll();
process.exit(broken.length > 0 ? 1 : 0);
