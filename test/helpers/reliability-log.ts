// Crash and fork checks shared by the reliability tests: signed record streams, a log created through
// the real `vigil-server` CLI on a test store, and the invariants every test checks after a fault:
// every acknowledged record present, nothing duplicated, the stored tree matching the newest
// checkpoint, and every signed checkpoint consistent with every other (proofs computed from the
// log's tiles with the core, never taken from the log's proof endpoint).
import {
  bytesEqual,
  base64Decode,
  consistencyProof,
  decodeEntryBundle,
  hashLeaf,
  openNote,
  parseCheckpoint,
  parseEntry,
  recordHash,
  rootFromNodes,
  signRecord,
  tileNodeReader,
  tilePath,
  verifyConsistency,
  type Checkpoint,
} from '@vigil/client';
import { runNode, serverMain } from './log.js';

/** A signed record stream of one emitter: seq from 0, each record chained to the previous by `prev`. */
export class RecordStream {
  readonly emitter: string;
  readonly stream: string;
  private readonly signerKey: string;
  private seq = 0;
  private prev: string | undefined;

  constructor(emitter: string, signerKey: string, stream: string) {
    this.emitter = emitter;
    this.signerKey = signerKey;
    this.stream = stream;
  }

  /** The next `n` submissions (emitter, record, sig), advancing the stream. */
  next(n: number, extra: Record<string, unknown> = {}): Submission[] {
    const out: Submission[] = [];
    for (let i = 0; i < n; i++) {
      const record: Record<string, unknown> = {
        v: 1,
        stream: this.stream,
        seq: this.seq,
        time: new Date().toISOString(),
        kind: this.seq === 0 ? 'stream.open' : 'app.event',
        ...(this.prev !== undefined ? { prev: this.prev } : {}),
        ...extra,
      };
      this.prev = recordHash(record);
      this.seq++;
      out.push({ emitter: this.emitter, record, sig: signRecord(record, this.signerKey) });
    }
    return out;
  }
}

export interface Submission {
  emitter: string;
  record: Record<string, unknown>;
  sig: string;
}

/** What a log acknowledged for one record: its index and leaf hash (from the POST answer). */
export interface Acked {
  index: bigint;
  leafHash: Uint8Array;
  stream: string;
  seq: number;
}

/** The body of a POST /v1/entries answer. */
export interface PostAnswer {
  entries: { index: string; leafHash: string; receipt: string; entry: string }[];
  checkpoint: string;
}

/** Turns a 200 answer to a POST of `subs` into acknowledgements. */
export function ackedFrom(subs: Submission[], answer: PostAnswer): Acked[] {
  if (answer.entries.length !== subs.length)
    throw new Error(`answer has ${answer.entries.length} entries for ${subs.length} records`);
  return answer.entries.map((e, i) => ({
    index: BigInt(e.index),
    leafHash: base64Decode(e.leafHash),
    stream: subs[i]!.record.stream as string,
    seq: subs[i]!.record.seq as number,
  }));
}

/** Runs a `vigil-server` subcommand on a store; throws with its output on a non-zero exit. */
export async function serverCli(
  args: string[],
  store: { dataDir: string; databaseUrl?: string | undefined },
): Promise<string> {
  const r = await runNode(serverMain, [...args, '--data-dir', store.dataDir], {
    DATABASE_URL: store.databaseUrl,
    LOG_LEVEL: 'warn',
  });
  if (r.code !== 0)
    throw new Error(`vigil-server ${args.join(' ')} exited ${r.code}: ${r.stderr}${r.stdout}`);
  return r.stdout;
}

/**
 * Creates a log on a test store through the real CLI (migrate, init, emitter add), with the store
 * closed (the embedded PostgreSQL belongs to one process at a time). Returns the log's vkey (from `init`'s output).
 */
export async function initStoreLog(
  store: { dataDir: string; databaseUrl?: string | undefined },
  origin: string,
  emitters: { name: string; vkey: string }[],
): Promise<string> {
  await serverCli(['migrate'], store);
  const out = await serverCli(['init', '--origin', origin], store);
  const m = / with key (\S+)/.exec(out);
  if (m === null) throw new Error(`init printed no key: ${out}`);
  for (const e of emitters) await serverCli(['emitter', 'add', e.name, e.vkey], store);
  return m[1]!;
}

/** Reads a path of the log (`tile/0/000`, `checkpoint`): status and bytes. */
export type LogGet = (path: string) => Promise<{ status: number; bytes: Uint8Array }>;

/** A LogGet over HTTP for a log at `url` (with a trailing slash). */
export function httpGet(url: string): LogGet {
  return async (path) => {
    const res = await fetch(`${url}${path}`);
    return { status: res.status, bytes: new Uint8Array(await res.arrayBuffer()) };
  };
}

/** A LogGet through Fastify's inject (in-process). */
export function injectGet(app: {
  inject(o: { url: string }): Promise<{ statusCode: number; rawPayload: Buffer }>;
}): LogGet {
  return async (path) => {
    const r = await app.inject({ url: `/${path}` });
    return { status: r.statusCode, bytes: new Uint8Array(r.rawPayload) };
  };
}

async function must(get: LogGet, path: string): Promise<Uint8Array> {
  const r = await get(path);
  if (r.status !== 200) throw new Error(`GET ${path}: ${r.status} ${new TextDecoder().decode(r.bytes)}`);
  return r.bytes;
}

/** What checkLogInvariants found (for further assertions and messages). */
export interface LogState {
  checkpoint: Checkpoint;
  note: string;
  /** Every entry of the tree, in order. */
  entries: Uint8Array[];
  /** Pairs of checkpoints whose consistency was verified. */
  pairsChecked: number;
}

/**
 * Checks a log against what it acknowledged and every checkpoint it signed; throws an Error naming the
 * first broken invariant:
 *  1. GET /checkpoint is signed by `vkey`, and the root computed from the tiles equals its root;
 *  2. the entry bundles hold `size` entries, each hashing to its level-0 tile hash;
 *  3. no (emitter, stream, seq) appears twice;
 *  4. every acknowledged record is at its index with its leaf hash;
 *  5. every note in `notes` is signed by `vkey`, no two have the same size and different roots, and
 *     every consecutive pair (by size) plus `samples` random other pairs are consistent, with proofs
 *     computed from the tiles (complete subtrees are the same at every size, so one tree's tiles serve
 *     every pair), each also consistent with the current checkpoint.
 */
export async function checkLogInvariants(
  get: LogGet,
  vkey: string,
  acked: Acked[],
  notes: string[],
  samples = 20,
): Promise<LogState> {
  const note = new TextDecoder().decode(await must(get, 'checkpoint'));
  const checkpoint = parseCheckpoint(openNote(note, [vkey]).text);
  const size = checkpoint.size;
  const readTile = (level: number, index: bigint, width: number) =>
    must(get, tilePath({ level, index, width }));
  const nodes = tileNodeReader(size, readTile);
  if (size > 0n) {
    const root = await rootFromNodes(size, nodes);
    if (!bytesEqual(root, checkpoint.root)) throw new Error(`tiles give another root at size ${size}`);
  }

  // 2. entries and their leaf hashes
  const entries: Uint8Array[] = [];
  for (let i = 0n; i * 256n < size; i++) {
    const width = size - i * 256n >= 256n ? 256 : Number(size - i * 256n);
    const bundle = decodeEntryBundle(await must(get, tilePath({ level: 'entries', index: i, width })), width);
    entries.push(...bundle);
  }
  if (BigInt(entries.length) !== size) throw new Error(`${entries.length} entries for size ${size}`);
  for (let i = 0; i < entries.length; i++) {
    const leaf = await nodes(0, BigInt(i));
    if (!bytesEqual(hashLeaf(entries[i]!), leaf))
      throw new Error(`entry ${i} does not hash to its tile hash`);
  }

  // 3. duplicates
  const seen = new Map<string, number>();
  entries.forEach((bytes, i) => {
    const e = parseEntry(bytes);
    const key = `${e.emitter} ${String(e.record.stream)} ${String(e.record.seq)}`;
    const first = seen.get(key);
    if (first !== undefined) throw new Error(`duplicate record ${key} at ${first} and ${i}`);
    seen.set(key, i);
  });

  // 4. acknowledged records
  for (const a of acked) {
    if (a.index >= size) throw new Error(`acknowledged index ${a.index} is beyond size ${size}`);
    const bytes = entries[Number(a.index)]!;
    if (!bytesEqual(hashLeaf(bytes), a.leafHash))
      throw new Error(`acknowledged record ${a.stream}/${a.seq} is not at index ${a.index}`);
    const e = parseEntry(bytes);
    if (e.record.stream !== a.stream || e.record.seq !== a.seq)
      throw new Error(`index ${a.index} holds ${String(e.record.stream)}/${String(e.record.seq)}`);
  }

  // 5. every signed checkpoint consistent with every other
  const bySize = new Map<bigint, { cp: Checkpoint; note: string }>();
  for (const n of [...notes, note]) {
    const cp = parseCheckpoint(openNote(n, [vkey]).text);
    const other = bySize.get(cp.size);
    if (other && !bytesEqual(other.cp.root, cp.root)) throw new Error(`two roots signed at size ${cp.size}`);
    bySize.set(cp.size, { cp, note: n });
  }
  const sorted = [...bySize.values()].map((v) => v.cp).sort((a, b) => (a.size < b.size ? -1 : 1));
  if (sorted[sorted.length - 1]!.size !== size)
    throw new Error(`a checkpoint of size ${sorted[sorted.length - 1]!.size} exceeds the log's ${size}`);
  const pairs: [Checkpoint, Checkpoint][] = [];
  for (let i = 1; i < sorted.length; i++) pairs.push([sorted[i - 1]!, sorted[i]!]);
  for (const cp of sorted) pairs.push([cp, checkpoint]);
  for (let k = 0; k < samples && sorted.length > 2; k++) {
    const i = Math.floor(Math.random() * sorted.length);
    const j = Math.floor(Math.random() * sorted.length);
    pairs.push(i < j ? [sorted[i]!, sorted[j]!] : [sorted[j]!, sorted[i]!]);
  }
  let pairsChecked = 0;
  for (const [a, b] of pairs) {
    if (a.size === 0n) continue;
    const proof = await consistencyProof(a.size, b.size, nodes);
    try {
      verifyConsistency(a.size, b.size, a.root, b.root, proof);
    } catch (err) {
      throw new Error(`checkpoints ${a.size} and ${b.size} are inconsistent: ${(err as Error).message}`);
    }
    pairsChecked++;
  }
  return { checkpoint, note, entries, pairsChecked };
}
