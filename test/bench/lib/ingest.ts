// Emitter keys and ingest jobs for the log benchmarks (lib/load.ts runs them).
import { generateKey } from '@vigil/client';
import { split, type GenJob } from './load.js';

export interface Ceilings {
  /** Ed25519 verifies/s, node:crypto, all cores. */
  verify: number;
  sha256Node: number;
  sha256Leaf: number;
}

export interface BenchEmitter {
  name: string;
  signerKey: string;
  vkey: string;
}

let emitterCounter = 0;
export function newEmitters(n: number, prefix: string): BenchEmitter[] {
  return Array.from({ length: n }, () => {
    const name = `bench/${prefix}${emitterCounter++}`;
    const { signerKey, verifierKey } = generateKey(name);
    return { name, signerKey, vkey: verifierKey };
  });
}

/** Ingest load: the emitters split over `processes` generators, one lane per emitter stream. */
export function ingestJobs(
  base: string,
  emitters: BenchEmitter[],
  o: {
    processes: number;
    batchSize: number;
    batches: number;
    recordBytes: number;
    durationMs: number;
    entriesPerSecond?: number;
    closeStreams?: boolean;
    /** Concurrent streams per emitter key (default 1). */
    streamsPerEmitter?: number;
    shape?: 'plain' | 'mcp' | 'mcp-sealed';
    session?: string;
  },
): GenJob[] {
  const spe = o.streamsPerEmitter ?? 1;
  const parts = split(emitters, o.processes);
  return parts.map((part) => ({
    kind: 'ingest',
    base,
    connections: part.length * spe,
    durationMs: o.durationMs,
    emitters: part.map((e) => ({ name: e.name, signerKey: e.signerKey })),
    streamsPerEmitter: spe,
    batchSize: o.batchSize,
    batches: o.batches,
    recordBytes: o.recordBytes,
    closeStreams: o.closeStreams ?? false,
    ...(o.shape !== undefined ? { shape: o.shape } : {}),
    ...(o.session !== undefined ? { session: o.session } : {}),
    ...(o.entriesPerSecond !== undefined
      ? { requestsPerSecond: o.entriesPerSecond / o.batchSize / parts.length }
      : {}),
  }));
}
