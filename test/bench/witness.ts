// Witness throughput: POST /add-checkpoint with consistency proofs against a real witness process.
// One chain of checkpoints per origin (each request extends the previous one, as a log would send
// them); the chains run concurrently from a separate generator process. Every checkpoint is signed
// and every proof computed before the timed part.
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  consistencyProof,
  formatCheckpoint,
  generateKey,
  hashChildren,
  hashLeaf,
  rootFromNodes,
  signNote,
} from '@vigil/client';
import { formatAddCheckpointRequest } from '@vigil/witness';
import { runLoad, type HttpReq } from './lib/load.js';
import { createDatabase } from './lib/pg.js';
import { trackDir, untrackDir } from './lib/procs.js';
import type { Row } from './lib/report.js';
import { runScript, spawnService } from './lib/service.js';
import { summarise } from './lib/stats.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const witnessMain = path.join(root, 'witness/dist/src/main.js');

/** All complete subtree hashes of a tree of `size` leaves, level by level. */
function buildTree(size: number): Uint8Array[][] {
  const levels: Uint8Array[][] = [[]];
  for (let i = 0; i < size; i++) levels[0]!.push(hashLeaf(new TextEncoder().encode(`leaf ${i}`)));
  while (levels[levels.length - 1]!.length > 1) {
    const below = levels[levels.length - 1]!;
    const next: Uint8Array[] = [];
    for (let i = 0; i + 1 < below.length; i += 2) next.push(hashChildren(below[i]!, below[i + 1]!));
    levels.push(next);
  }
  return levels;
}

export interface WitnessBenchOptions {
  store: 'embedded' | 'postgres';
  postgresUrl?: string;
  origins: number;
  steps: number;
  durationMs: number;
}

export async function benchWitness(o: WitnessBenchOptions): Promise<Row[]> {
  const step = 3;
  const levels = buildTree(o.steps * step);
  const getNode = (level: number, index: bigint): Uint8Array => {
    const h = levels[level]?.[Number(index)];
    if (h === undefined) throw new Error(`no node ${level}/${index}`);
    return h;
  };
  const dataDir = trackDir(await fs.mkdtemp(path.join(os.tmpdir(), 'vigil-bench-witness-')));
  const db = o.store === 'postgres' ? await createDatabase(o.postgresUrl!) : undefined;
  const env = { DATABASE_URL: db?.url, LOG_LEVEL: 'info' };
  let service: Awaited<ReturnType<typeof spawnService>> | undefined;
  let stopCode: number | null | undefined;
  let rows: Row[] = [];
  try {
    if (db !== undefined) await runScript(witnessMain, ['migrate', '--data-dir', dataDir], env);
    await runScript(witnessMain, ['init', '--name', 'bench.witness/w1', '--data-dir', dataDir], env);
    // Every origin gets its own log key; checkpoints are signed before the timed part.
    const chains: HttpReq[][] = [];
    const logs: { origin: string; vkey: string }[] = [];
    for (let k = 0; k < o.origins; k++) {
      const origin = `bench.log/${k}`;
      const { signerKey, verifierKey } = generateKey(origin);
      logs.push({ origin, vkey: verifierKey });
      const chain: HttpReq[] = [];
      let oldSize = 0n;
      for (let s = 1; s <= o.steps; s++) {
        const size = BigInt(s * step);
        const note = signNote(
          formatCheckpoint({ origin, size, root: rootFromNodes(size, getNode), extensions: [] }),
          [signerKey],
        );
        const proof = oldSize === 0n ? [] : consistencyProof(oldSize, size, getNode);
        chain.push({
          method: 'POST',
          path: '/add-checkpoint',
          body: formatAddCheckpointRequest({ oldSize, proof, note }),
          contentType: 'text/plain; charset=utf-8',
        });
        oldSize = size;
      }
      chains.push(chain);
    }
    for (const l of logs)
      await runScript(witnessMain, ['log', 'add', l.origin, l.vkey, '--data-dir', dataDir], env);
    service = await spawnService(
      witnessMain,
      [
        'serve',
        '--data-dir',
        dataDir,
        '--host',
        '127.0.0.1',
        '--port',
        '0',
        '--rate-limit',
        '1000000',
        '--rate-burst',
        '1000000',
      ],
      { env },
    );
    const result = await runLoad([
      { kind: 'chains', base: service.base, connections: o.origins, durationMs: o.durationMs, chains },
    ]);
    if (result.errors > 0)
      throw new Error(
        `witness refused ${result.errors} add-checkpoint requests; first: ${result.firstError}`,
      );
    if (result.requests === 0) throw new Error('witness answered no add-checkpoint request');
    const rate = (result.requests / result.elapsedMs) * 1000;
    const lat = summarise(result.latencies);
    rows = [
      {
        bench: 'witness',
        store: o.store,
        what: `add-checkpoint with proofs, ${o.origins} origins concurrently (${result.requests} requests)`,
        figure: rate,
        unit: 'cosignatures/s',
        goal: '>= 2,000/s',
        met: rate >= 2000,
        note: `p50 ${lat.p50.toFixed(1)} ms, p99 ${lat.p99.toFixed(1)} ms`,
      },
    ];
  } finally {
    stopCode = await service?.stop();
    await db?.drop();
    await fs.rm(dataDir, { recursive: true, force: true });
    untrackDir(dataDir);
  }
  if (stopCode !== undefined && stopCode !== 0) throw new Error(`witness exited ${stopCode} on SIGTERM`);
  return rows;
}
