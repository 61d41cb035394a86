// Parent side of the load generators (../gen.ts): forks one process per job, lets every generator
// prepare (sign) before the timed part, starts them together, and merges their results.
import { fork, type ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { track } from './procs.js';

export interface HttpReq {
  method: 'GET' | 'POST';
  path: string;
  body?: string;
  contentType?: string;
}

interface BaseJob {
  /** e.g. http://127.0.0.1:41234 */
  base: string;
  /** Concurrent lanes (HTTP connections). */
  connections: number;
  durationMs: number;
  maxRequests?: number;
  /** Open-loop pacing for this generator as a whole. */
  requestsPerSecond?: number;
  /** Sent as `Authorization: Bearer <token>` with every request (a reader's reads). */
  bearer?: string;
}

/** Emitters submitting signed records in batches; one lane per emitter stream. */
export interface IngestJob extends BaseJob {
  kind: 'ingest';
  emitters: { name: string; signerKey: string }[];
  /** Concurrent streams (lanes) per emitter key; default 1. */
  streamsPerEmitter?: number;
  batchSize: number;
  /** Batches prepared per emitter (the run stops earlier at durationMs). */
  batches: number;
  /** Canonical size of each payload record. */
  recordBytes: number;
  /** End each stream with stream.close (seeding, so that the audit sees closed streams). */
  closeStreams: boolean;
  /**
   * `mcp`: each payload record is an `mcp.message` tools/call request as capture writes it, with
   * `recordBytes` of arguments in clear and the salted `wire` commitment (S beside it);
   * `mcp-sealed`: the same with `params` sealed too (capture's default). Default: `bench.payload`.
   */
  shape?: 'plain' | 'mcp' | 'mcp-sealed';
  /** Every payload record of every stream in this one MCP session (the erase benchmark). */
  session?: string;
}

/** Sequences of dependent requests (e.g. one add-checkpoint chain per origin). */
export interface ChainsJob extends BaseJob {
  kind: 'chains';
  chains: HttpReq[][];
}

/** Random GETs over a list of paths or over /v1/receipt/<index below receiptsOfSize>. */
export interface GetJob extends BaseJob {
  kind: 'get';
  paths: string[];
  receiptsOfSize?: number;
  expectBytes?: number;
  expectPrefix?: string;
}

export type GenJob = IngestJob | ChainsJob | GetJob;

export interface GenResult {
  requests: number;
  items: number;
  errors: number;
  firstError: string | undefined;
  elapsedMs: number;
  /** Milliseconds per successful request. */
  latencies: number[];
}

const genScript = path.join(path.dirname(fileURLToPath(import.meta.url)), '../gen.js');

function waitFor(child: ChildProcess, type: string, timeoutMs: number): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`load generator did not answer ${type} within ${timeoutMs} ms`));
    }, timeoutMs);
    const onMessage = (msg: { type: string; result?: unknown; message?: string }) => {
      if (msg.type === type) {
        cleanup();
        resolve(msg.result);
      } else if (msg.type === 'error') {
        cleanup();
        reject(new Error(`load generator failed: ${msg.message}`));
      }
    };
    const onExit = (code: number | null) => {
      cleanup();
      reject(new Error(`load generator exited ${code} while waiting for ${type}`));
    };
    const cleanup = () => {
      clearTimeout(timer);
      child.off('message', onMessage);
      child.off('exit', onExit);
    };
    child.on('message', onMessage);
    child.on('exit', onExit);
  });
}

/**
 * Runs the jobs in parallel, one generator process each: prepare all, then go together. The merged
 * result's elapsedMs is the longest generator's; rates are items / elapsed.
 */
export async function runLoad(
  jobs: GenJob[],
  options: { prepareTimeoutMs?: number } = {},
): Promise<GenResult> {
  const children = jobs.map(() =>
    track(fork(genScript, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })),
  );
  try {
    await Promise.all(
      children.map((c, i) => {
        const ready = waitFor(c, 'ready', options.prepareTimeoutMs ?? 600_000);
        c.send({ type: 'prepare', job: jobs[i] });
        return ready;
      }),
    );
    const results = (await Promise.all(
      children.map((c, i) => {
        const done = waitFor(c, 'result', jobs[i]!.durationMs + 120_000);
        c.send({ type: 'go' });
        return done;
      }),
    )) as GenResult[];
    return mergeResults(results);
  } finally {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  }
}

export function mergeResults(results: GenResult[]): GenResult {
  const latencies: number[] = [];
  for (const r of results) for (const l of r.latencies) latencies.push(l);
  return {
    requests: results.reduce((s, r) => s + r.requests, 0),
    items: results.reduce((s, r) => s + r.items, 0),
    errors: results.reduce((s, r) => s + r.errors, 0),
    firstError: results.find((r) => r.firstError !== undefined)?.firstError,
    elapsedMs: Math.max(...results.map((r) => r.elapsedMs)),
    latencies,
  };
}

/** Splits `items` into `n` nearly equal parts (round-robin). */
export function split<T>(items: readonly T[], n: number): T[][] {
  const parts: T[][] = Array.from({ length: n }, () => []);
  items.forEach((item, i) => parts[i % n]!.push(item));
  return parts.filter((p) => p.length > 0);
}
