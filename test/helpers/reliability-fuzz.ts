// Seeded property-based fuzzing helpers for the log and witness endpoints: a reproducible PRNG, random
// and mutated JSON, text (notes, proofs), headers and sizes, plus a heap probe. Set VIGIL_FUZZ_SEED to
// replay a run; every fuzz test prints the seed it used.
import { randomBytes } from 'node:crypto';
import v8 from 'node:v8';
import vm from 'node:vm';
import {
  base64Encode,
  consistencyProof,
  formatCheckpoint,
  generateKey,
  rootFromLeafHashes,
  signNote,
} from '@vigil/client';

/** sfc32: small, fast, good enough for test-case generation; fully determined by the seed. */
export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  readonly seed: number;

  constructor(seed: number) {
    this.seed = seed;
    this.a = 0x9e3779b9;
    this.b = 0x243f6a88;
    this.c = 0xb7e15162;
    this.d = seed >>> 0;
    for (let i = 0; i < 16; i++) this.next();
  }

  /** A uniform 32-bit unsigned integer. */
  next(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }

  /** An integer in [0, n). */
  int(n: number): number {
    return Math.floor((this.next() / 0x1_0000_0000) * n);
  }

  bool(p = 0.5): boolean {
    return this.next() / 0x1_0000_0000 < p;
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)] as T;
  }

  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = this.int(256);
    return out;
  }

  /** A size biased towards small values and boundaries (0, 1, 255, 256, 65535, ...). */
  size(max: number): number {
    const r = this.int(10);
    if (r < 5) return this.int(Math.min(max, 16) + 1);
    if (r < 8) return this.int(max + 1);
    return Math.min(max, this.pick([0, 1, 2, 63, 64, 255, 256, 257, 1023, 1024, 65535, 65536]));
  }
}

/** The seed for this run: VIGIL_FUZZ_SEED if set (to replay), else random. */
export function fuzzSeed(env: NodeJS.ProcessEnv = process.env): number {
  const given = env.VIGIL_FUZZ_SEED;
  if (given !== undefined && given !== '') {
    const n = Number(given);
    if (!Number.isInteger(n) || n < 0 || n > 0xffff_ffff)
      throw new Error(`VIGIL_FUZZ_SEED ${given} is not a uint32`);
    return n;
  }
  return randomBytes(4).readUInt32BE(0);
}

const WEIRD_STRINGS = [
  '',
  ' ',
  '\n',
  '\r\n',
  '\u0000',
  '\ud800',
  '\ufeff',
  '💥',
  '../../etc/passwd',
  '%00',
  '%',
  'null',
  'true',
  '-1',
  '-0',
  '0',
  '01',
  '+5',
  '1e3',
  '18446744073709551616',
  '9223372036854775807',
  '9223372036854775808',
  '340282366920938463463374607431768211456',
  'NaN',
  'Infinity',
  '0x10',
  'AAAA',
  'A'.repeat(44),
  '="',
  "'; drop table entries; --",
  '$blob',
  '__proto__',
  'constructor',
  '<script>',
  'vigil.test/log',
  '2026-01-01T00:00:00.000Z',
];

const WEIRD_NUMBERS = [
  0,
  -0,
  1,
  -1,
  0.5,
  2 ** 31,
  2 ** 53,
  2 ** 53 + 2,
  -(2 ** 63),
  1e308,
  -1e308,
  Number.MIN_VALUE,
];

/** A random string: weird constants, random unicode, or random ASCII. */
export function randomString(rng: Rng, maxLength = 64): string {
  const r = rng.int(4);
  if (r === 0) return rng.pick(WEIRD_STRINGS);
  if (r === 1) {
    let s = '';
    const n = rng.size(maxLength);
    for (let i = 0; i < n; i++) {
      const r2 = rng.int(8);
      // Mostly BMP text, some astral characters, and the odd lone surrogate (invalid UTF-16).
      if (r2 === 0) s += String.fromCharCode(0xd800 + rng.int(0x800));
      else if (r2 === 1) s += String.fromCodePoint(0x10000 + rng.int(0x100000));
      else s += String.fromCharCode(rng.int(0xd800));
    }
    return s;
  }
  let s = '';
  const n = rng.size(maxLength);
  for (let i = 0; i < n; i++) s += String.fromCharCode(32 + rng.int(95));
  return s;
}

/** A random JSON value (depth-bounded; occasionally deep nesting to probe recursion limits). */
export function randomJson(rng: Rng, depth = 0): unknown {
  if (depth === 0 && rng.int(50) === 0) {
    // Deep nesting: [[[[...]]]]
    let v: unknown = 1;
    const n = rng.pick([50, 100, 500]);
    for (let i = 0; i < n; i++) v = [v];
    return v;
  }
  const r = rng.int(depth > 3 ? 5 : 8);
  switch (r) {
    case 0:
      return null;
    case 1:
      return rng.bool();
    case 2:
      return rng.pick(WEIRD_NUMBERS);
    case 3:
    case 4:
      return randomString(rng);
    case 5: {
      const n = rng.size(8);
      return Array.from({ length: n }, () => randomJson(rng, depth + 1));
    }
    default: {
      const n = rng.size(8);
      const out: Record<string, unknown> = {};
      for (let i = 0; i < n; i++)
        out[rng.bool(0.7) ? rng.pick(JSON_KEYS) : randomString(rng, 12)] = randomJson(rng, depth + 1);
      return out;
    }
  }
}

/** Field names the endpoints actually read, so mutations reach past the first check. */
export const JSON_KEYS = [
  'entries',
  'emitter',
  'record',
  'sig',
  'blobs',
  'v',
  'stream',
  'seq',
  'prev',
  'time',
  'kind',
  'index',
  'size',
  'proof',
  '__proto__',
  'constructor',
];

/** Replaces, deletes or retypes one value somewhere inside a JSON value (a structural mutation). */
export function mutateJson(rng: Rng, value: unknown): unknown {
  if (value === null || typeof value !== 'object' || rng.int(4) === 0) {
    return rng.bool(0.3) ? randomJson(rng, 2) : mutateScalar(rng, value);
  }
  if (Array.isArray(value)) {
    const copy = [...value];
    const op = rng.int(4);
    if (copy.length === 0 || op === 0) copy.push(randomJson(rng, 2));
    else if (op === 1) copy.splice(rng.int(copy.length), 1);
    else if (op === 2) copy.push(...copy.slice(0, rng.int(copy.length) + 1));
    else {
      const i = rng.int(copy.length);
      copy[i] = mutateJson(rng, copy[i]);
    }
    return copy;
  }
  const copy: Record<string, unknown> = { ...(value as Record<string, unknown>) };
  const keys = Object.keys(copy);
  const op = rng.int(4);
  if (keys.length === 0 || op === 0)
    copy[rng.bool() ? rng.pick(JSON_KEYS) : randomString(rng, 8)] = randomJson(rng, 2);
  else if (op === 1) delete copy[rng.pick(keys)];
  else {
    const k = rng.pick(keys);
    copy[k] = mutateJson(rng, copy[k]);
  }
  return copy;
}

function mutateScalar(rng: Rng, value: unknown): unknown {
  if (typeof value === 'string') {
    if (rng.bool()) return mutateText(rng, value);
    return rng.pick<unknown>([Number(value), value.length, null, [value], { v: value }, value + value]);
  }
  if (typeof value === 'number')
    return rng.pick<unknown>([String(value), value + 1, -value, value * 2 ** 40, null]);
  return randomJson(rng, 3);
}

/** A character-, line- or byte-level mutation of a text (a note, a proof, a URL, a decimal). */
export function mutateText(rng: Rng, text: string): string {
  const lines = text.split('\n');
  switch (rng.int(12)) {
    case 0: {
      const i = rng.int(text.length + 1);
      return text.slice(0, i) + String.fromCharCode(rng.int(128)) + text.slice(i);
    }
    case 1: {
      const i = rng.int(Math.max(text.length, 1));
      return text.slice(0, i) + text.slice(i + 1);
    }
    case 2: {
      const i = rng.int(Math.max(text.length, 1));
      const c = text.charCodeAt(i) ^ (1 << rng.int(7));
      return text.slice(0, i) + String.fromCharCode(c) + text.slice(i + 1);
    }
    case 3:
      return text.slice(0, rng.int(text.length + 1));
    case 4: {
      const i = rng.int(lines.length);
      lines.splice(i, 0, lines[i] ?? '');
      return lines.join('\n');
    }
    case 5: {
      lines.splice(rng.int(lines.length), 1);
      return lines.join('\n');
    }
    case 6: {
      const i = rng.int(lines.length);
      const j = rng.int(lines.length);
      [lines[i], lines[j]] = [lines[j] ?? '', lines[i] ?? ''];
      return lines.join('\n');
    }
    case 7:
      return text.replace(
        /[0-9]+/,
        rng.pick(['-1', '01', '+1', '18446744073709551616', '', ' 1', '1 ', '9'.repeat(40)]),
      );
    case 8:
      return text + randomString(rng, 32);
    case 9:
      return text.replace(/\n/g, rng.pick(['\r\n', '\n\n', '', ' \n']));
    case 10: {
      const i = rng.int(lines.length);
      lines[i] = randomString(rng, 80);
      return lines.join('\n');
    }
    default:
      return text.repeat(rng.int(4) + 2);
  }
}

/** Content types to send, legitimate and not. */
export const CONTENT_TYPES = [
  undefined,
  'application/json',
  'application/json; charset=utf-8',
  'application/json; charset=latin1',
  'text/plain; charset=utf-8',
  'text/plain',
  'text/x.tlog.size',
  'application/octet-stream',
  'multipart/form-data; boundary=x',
  'application/x-www-form-urlencoded',
  'application/json, text/plain',
  '',
  ';;;',
  'a'.repeat(2000),
];

/** Extra request headers worth fuzzing (never an authorization header with a real secret). */
export function randomHeaders(rng: Rng): Record<string, string> {
  const out: Record<string, string> = {};
  const n = rng.int(4);
  for (let i = 0; i < n; i++) {
    const name = rng.pick([
      'accept',
      'accept-encoding',
      'content-encoding',
      'x-forwarded-for',
      'if-none-match',
      'range',
      'authorization',
      'transfer-encoding-x',
      'x-request-id',
      'cookie',
    ]);
    out[name] = rng.pick([
      'gzip',
      'br, deflate',
      'bytes=0-1',
      'bytes=-5',
      '*/*',
      'text/plain',
      'Bearer x',
      '::1',
      '1.2.3.4, 5.6.7.8',
      randomString(rng, 40).replace(/[^\x20-\x7e]/g, 'x'),
    ]);
  }
  return out;
}

/**
 * Heap used after a full garbage collection, in bytes. Uses the --expose-gc flag set at run time
 * through v8, so tests need no node options.
 */
export function heapAfterGc(): number {
  v8.setFlagsFromString('--expose-gc');
  const gc = vm.runInNewContext('gc') as () => void;
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}

/** One response as the fuzzer checks it. */
export interface FuzzOutcome {
  statusCode: number;
  contentType: string | undefined;
  body: string;
}

/**
 * The invariant every response must hold: not 5xx, and a JSON error body of exactly
 * `{code: UPPER_SNAKE, message}` whenever the status is 4xx and the body is JSON. Returns a reason
 * string when broken, undefined when fine.
 */
export function checkOutcome(r: FuzzOutcome): string | undefined {
  if (r.statusCode >= 500) return `status ${r.statusCode}: ${r.body.slice(0, 300)}`;
  if (r.statusCode >= 400 && (r.contentType ?? '').startsWith('application/json')) {
    let body: unknown;
    try {
      body = JSON.parse(r.body);
    } catch {
      return `status ${r.statusCode} with a JSON content type and a non-JSON body`;
    }
    const b = body as { code?: unknown; message?: unknown };
    if (typeof b.code !== 'string' || !/^[A-Z][A-Z0-9_]*$/.test(b.code) || typeof b.message !== 'string') {
      return `status ${r.statusCode} error body is not {code, message}: ${r.body.slice(0, 200)}`;
    }
  }
  return undefined;
}

/**
 * A legitimate in-memory C2SP log (leaf hashes only) for driving a witness: signed checkpoints and
 * consistency proofs from the client-lib core, so every valid request the fuzzer sends is genuinely
 * valid.
 */
export class MemoryLog {
  readonly signerKey: string;
  readonly vkey: string;
  readonly leaves: Uint8Array[] = [];

  readonly origin: string;

  constructor(origin: string, rng: Rng) {
    this.origin = origin;
    const key = generateKey(origin, rng.bytes(32));
    this.signerKey = key.signerKey;
    this.vkey = key.verifierKey;
  }

  append(n: number, rng: Rng): void {
    for (let i = 0; i < n; i++) this.leaves.push(rng.bytes(32));
  }

  get size(): number {
    return this.leaves.length;
  }

  node(level: number, index: bigint): Uint8Array {
    const width = 2 ** level;
    const start = Number(index) * width;
    return rootFromLeafHashes(this.leaves.slice(start, start + width));
  }

  /** The signed checkpoint note for the first `size` leaves. */
  note(size = this.size): string {
    const text = formatCheckpoint({
      origin: this.origin,
      size: BigInt(size),
      root: rootFromLeafHashes(this.leaves.slice(0, size)),
      extensions: [],
    });
    return signNote(text, [this.signerKey]);
  }

  proof(oldSize: number, newSize = this.size): Uint8Array[] {
    if (oldSize === 0 || oldSize === newSize) return [];
    return consistencyProof(BigInt(oldSize), BigInt(newSize), (level, index) => this.node(level, index));
  }

  /** A tlog-witness add-checkpoint body from `oldSize` to `newSize`. */
  addCheckpointBody(oldSize: number, newSize = this.size): string {
    const proof = this.proof(oldSize, newSize).map((h) => `${base64Encode(h)}\n`);
    return `old ${oldSize}\n${proof.join('')}\n${this.note(newSize)}`;
  }
}
