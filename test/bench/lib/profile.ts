// Summarises a V8 CPU profile (node --cpu-prof) by self time per category, to say where the time
// goes at peak ingest: signature checks, hashing, SQL, JSON, HTTP, logging, GC, idle.
import * as fs from 'node:fs/promises';
import * as path from 'node:path';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

const CATEGORIES: [string, (fn: string, url: string) => boolean][] = [
  ['idle', (fn) => fn === '(idle)'],
  ['garbage collection', (fn) => fn === '(garbage collector)'],
  [
    'signature checks (Ed25519)',
    (fn, url) =>
      (url.includes('internal/crypto/sig') || /ed25519|verify/i.test(fn)) && !url.includes('merkle'),
  ],
  [
    'hashing (SHA-256, Merkle)',
    (fn, url) =>
      url.includes('internal/crypto/hash') ||
      url.includes('/merkle/') ||
      url.includes('/tiles/') ||
      /^hash|digest/.test(fn),
  ],
  [
    'SQL (driver, kysely)',
    (fn, url) => /[/]pg[/]|pg-protocol|pg-pool|kysely|[/]db[/]/.test(url) || fn.startsWith('wasm-function'),
  ],
  [
    'JSON (parse, stringify, canonicalise)',
    (fn, url) =>
      fn === 'parse' ||
      fn === 'stringify' ||
      url.includes('canonicalize') ||
      url.includes('record.js') ||
      url.includes('encoding.js'),
  ],
  [
    'HTTP (fastify, node http, sockets)',
    (_fn, url) =>
      /fastify|find-my-way|avvio|light-my-request|_http|node:net|internal\/stream|node:stream|internal\/streams|undici|zod/.test(
        url,
      ),
  ],
  ['logging (pino)', (_fn, url) => url.includes('pino')],
  [
    'sockets and streams (HTTP and database connections)',
    (fn, url) =>
      url.includes('stream_base_commons') ||
      url.includes('node:events') ||
      (url === '' &&
        /^(writev|writeBuffer|writeUtf8String|writeLatin1String|onStreamRead|shutdown)$/.test(fn)),
  ],
  [
    'start-up (module loading)',
    (fn, url) => url.includes('internal/modules') || fn === 'compileSourceTextModule',
  ],
  [
    'file I/O',
    (fn, url) =>
      url.includes('internal/fs') || /^(openFileHandle|open|read|fsync|close|writeFileUtf8)$/.test(fn),
  ],
  ['sequencer and routes (server code)', (_fn, url) => url.includes('server/dist/src')],
  ['V8/native (program)', (fn) => fn === '(program)'],
];

export interface ProfileSummary {
  totalMs: number;
  categories: { name: string; ms: number; share: number }[];
  top: { fn: string; where: string; category: string; ms: number; share: number }[];
}

export function summariseProfile(profile: CpuProfile): ProfileSummary {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfMs = new Map<number, number>();
  for (let i = 0; i < profile.samples.length; i++) {
    const id = profile.samples[i]!;
    selfMs.set(id, (selfMs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0) / 1000);
  }
  const cats = new Map<string, number>();
  const fns = new Map<string, { fn: string; where: string; category: string; ms: number }>();
  let total = 0;
  for (const [id, ms] of selfMs) {
    const node = byId.get(id);
    if (node === undefined) continue;
    const { functionName, url, lineNumber } = node.callFrame;
    const fn = functionName === '' ? '(anonymous)' : functionName;
    const cat = CATEGORIES.find(([, match]) => match(fn, url))?.[0] ?? 'other JavaScript';
    cats.set(cat, (cats.get(cat) ?? 0) + ms);
    const where =
      url === ''
        ? ''
        : `${url.replace(/^file:\/\/.*?\/(node_modules|server|client-lib|witness)\//, '$1/')}:${lineNumber + 1}`;
    const key = `${fn} ${where}`;
    const f = fns.get(key) ?? { fn, where, category: cat, ms: 0 };
    f.ms += ms;
    fns.set(key, f);
    total += ms;
  }
  return {
    totalMs: total,
    categories: [...cats].map(([name, ms]) => ({ name, ms, share: ms / total })).sort((a, b) => b.ms - a.ms),
    top: [...fns.values()]
      .sort((a, b) => b.ms - a.ms)
      .slice(0, 15)
      .map((f) => ({ ...f, share: f.ms / total })),
  };
}

/** Reads the largest .cpuprofile in `dir` (the server's; CLI helpers write small ones too). */
export async function readLargestProfile(dir: string): Promise<CpuProfile | undefined> {
  let best: { file: string; size: number } | undefined;
  for (const f of await fs.readdir(dir)) {
    if (!f.endsWith('.cpuprofile')) continue;
    const st = await fs.stat(path.join(dir, f));
    if (best === undefined || st.size > best.size) best = { file: f, size: st.size };
  }
  if (best === undefined) return undefined;
  return JSON.parse(await fs.readFile(path.join(dir, best.file), 'utf8')) as CpuProfile;
}

/** A markdown section for BENCHMARKS.md. */
export function formatProfile(title: string, s: ProfileSummary): string {
  const lines = [
    `### ${title}`,
    '',
    `Self time of the server process from start to exit (${(s.totalMs / 1000).toFixed(1)} s, start-up included), node --cpu-prof. Native work (OpenSSL, the WASM Postgres) is charged to the JavaScript function that called it.`,
    '',
    '| category | self time | share |',
    '|---|---|---|',
  ];
  for (const c of s.categories)
    lines.push(`| ${c.name} | ${(c.ms / 1000).toFixed(2)} s | ${(c.share * 100).toFixed(1)}% |`);
  lines.push(
    '',
    'Top functions by self time:',
    '',
    '| function | where | category | share |',
    '|---|---|---|---|',
  );
  for (const f of s.top)
    lines.push(
      `| \`${f.fn}\` | ${f.where.replace(/\|/g, '\\|')} | ${f.category} | ${(f.share * 100).toFixed(1)}% |`,
    );
  return lines.join('\n');
}
