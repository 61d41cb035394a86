// Property-based fuzzing of every witness endpoint (POST /add-checkpoint, GET /<hash>/checkpoint,
// /v1/evidence, /v1/witness, /healthz, unknown routes and methods): random and mutated notes, proofs,
// old sizes, JSON, content types, headers and sizes. Properties: no 5xx, every JSON error is
// {code, message}, no heap growth, the witness never cosigns a checkpoint the legitimate log did not
// sign, garbage never becomes evidence, and valid requests are still served throughout and afterwards.
// In process through app.inject for throughput (10,000+ cases), then a short pass over real HTTP with
// raw malformed requests. Replay a run with VIGIL_FUZZ_SEED=<seed printed below>.
import net from 'node:net';
import t, { type Test } from 'tap';
import {
  bytesEqual,
  cosignerVerifierKey,
  generateKey,
  hexEncode,
  parseCheckpoint,
  sha256,
  utf8,
  verifyCosignature,
} from '@vigil/client';
import { useNodeCrypto } from '@vigil/client/node';
import { createTestStore } from '@vigil/server';
import { buildApp, createWitnessStore, loadConfig, migrateWitness, type WitnessStore } from '@vigil/witness';
import type { FastifyInstance } from 'fastify';
import {
  CONTENT_TYPES,
  checkOutcome,
  fuzzSeed,
  heapAfterGc,
  MemoryLog,
  mutateJson,
  mutateText,
  randomHeaders,
  randomJson,
  randomString,
  Rng,
} from '../helpers/reliability-fuzz.js';

useNodeCrypto();

const CASES = Number(process.env.VIGIL_FUZZ_CASES ?? 10_000);
const seed = fuzzSeed();
t.comment(`fuzz-witness seed ${seed} (replay: VIGIL_FUZZ_SEED=${seed}), ${CASES} cases`);

interface Req {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE' | 'PATCH' | 'OPTIONS' | 'HEAD';
  url: string;
  headers: Record<string, string>;
  body?: string | Buffer;
}

/** Everything a fuzz run needs: the app, its store, the legitimate log it trusts, and the seed. */
interface Fixture {
  app: FastifyInstance;
  store: WitnessStore;
  log: MemoryLog;
  /** Notes the log really signed, by size (a replay source). */
  signed: Map<number, string>;
  witnessVkey: string;
  close(): Promise<void>;
}

async function openFixture(rng: Rng, bodyLimit = 65_536): Promise<Fixture> {
  const testStore = await createTestStore('embedded');
  const opened = await testStore.open();
  await migrateWitness(opened.db as never);
  const store = createWitnessStore(opened.db as never);
  const log = new MemoryLog('fuzz.test/log', rng);
  await store.addLog({ origin: log.origin, vkey: log.vkey, url: null, pullIntervalMs: 5000 });
  // A second, push-only log the fuzzer never feeds: its state must stay at size 0.
  const other = new MemoryLog('fuzz.test/other', rng);
  await store.addLog({ origin: other.origin, vkey: other.vkey, url: null, pullIntervalMs: 5000 });
  const witnessKey = generateKey('fuzz.test/witness', rng.bytes(32));
  // Rate limits high enough that the fuzzer's own requests are never refused for volume.
  const config = loadConfig({
    LOG_LEVEL: 'silent',
    WITNESS_RATE_LIMIT: '1000000',
    WITNESS_RATE_BURST: '1000000',
    // Likewise for its malformed and forged requests, which the witness charges to their address.
    WITNESS_FAILURE_RATE_LIMIT: '1000000',
    WITNESS_FAILURE_RATE_BURST: '1000000',
    WITNESS_BODY_LIMIT: String(bodyLimit),
  });
  const app = await buildApp(config, { store, signerKey: witnessKey.signerKey });
  await app.ready();
  return {
    app,
    store,
    log,
    signed: new Map(),
    witnessVkey: cosignerVerifierKey(witnessKey.signerKey),
    async close() {
      await app.close();
      await opened.close();
      await testStore.cleanup();
    },
  };
}

// Reported to the lead: the witness answers 500 to `GET /v1/evidence?origin=<text with NUL>` (the
// NUL reaches Postgres, which rejects 0x00 in text); it should answer 200 with no evidence, or
// 400. Kept apart so the rest of the fuzz stays strict; the dedicated test below fails until fixed.

/** Percent-encodes a random string: its UTF-8 bytes (lone surrogates included) or, at times, raw bytes. */
function enc(s: string): string {
  return [...Buffer.from(s, 'utf8')].map((b) => `%${b.toString(16).padStart(2, '0')}`).join('');
}

const originHash = (origin: string) => hexEncode(sha256(utf8(origin)));

/** The witness's current size for the fuzzed log (the store is the truth, the model follows it). */
async function witnessedSize(f: Fixture): Promise<number> {
  return Number((await f.store.latest(f.log.origin))?.size ?? 0n);
}

/** One random request. `current` is the witness's size, so mutations start from a valid request. */
function randomRequest(rng: Rng, f: Fixture, current: number): Req {
  const kind = rng.int(100);
  const headers = rng.bool(0.1) ? randomHeaders(rng) : {};
  const text = 'text/plain; charset=utf-8';
  const newSize = current + 1 + rng.int(3);
  while (f.log.size < newSize) f.log.append(1, rng);
  if (kind < 35) {
    // A valid add-checkpoint body, mutated one to three times.
    let body = f.log.addCheckpointBody(current, newSize);
    for (let i = rng.int(3); i >= 0; i--) body = mutateText(rng, body);
    return { method: 'POST', url: '/add-checkpoint', headers: { 'content-type': text, ...headers }, body };
  }
  if (kind < 45) {
    // Well-formed, truly signed by the log, but with a wrong old size, a proof for other sizes, a
    // shuffled, truncated or extended proof, or a replayed older checkpoint.
    const note = f.log.note(newSize);
    const proof = f.log.proof(current, newSize).map((h) => Buffer.from(h).toString('base64'));
    const variant = rng.int(6);
    let old = current;
    let lines = proof;
    if (variant === 0) old = rng.pick([current + 1, Math.max(0, current - 1), newSize, newSize + 1, 0]);
    else if (variant === 1) lines = [...proof].reverse();
    else if (variant === 2) lines = proof.slice(0, -1);
    else if (variant === 3) lines = [...proof, Buffer.from(rng.bytes(32)).toString('base64')];
    else if (variant === 4)
      lines = f.log.proof(Math.max(1, current - 1), newSize).map((h) => Buffer.from(h).toString('base64'));
    else {
      const sizes = [...f.signed.keys()];
      const replay = sizes.length > 0 ? rng.pick(sizes) : 0;
      const body = `old ${rng.pick([current, replay, 0])}\n\n${f.signed.get(replay) ?? note}`;
      return { method: 'POST', url: '/add-checkpoint', headers: { 'content-type': text }, body };
    }
    const body = `old ${old}\n${lines.map((l) => `${l}\n`).join('')}\n${note}`;
    return { method: 'POST', url: '/add-checkpoint', headers: { 'content-type': text }, body };
  }
  if (kind < 55) {
    // Random bodies, content types and sizes (rarely beyond the body limit).
    const r = rng.int(5);
    const body =
      r === 0
        ? Buffer.from(rng.bytes(rng.size(4096)))
        : r === 1
          ? JSON.stringify(randomJson(rng))
          : r === 2
            ? 'x'.repeat(rng.pick([70_000, 200_000]))
            : r === 3
              ? `old 0\n${'AAAA\n'.repeat(rng.pick([62, 63, 64, 1000]))}\n${f.log.note(newSize)}`
              : randomString(rng, 512);
    const type = rng.pick(CONTENT_TYPES);
    return {
      method: 'POST',
      url: '/add-checkpoint',
      headers: { ...(type === undefined ? {} : { 'content-type': type }), ...headers },
      body,
    };
  }
  if (kind < 60) {
    // Mutated JSON sent where text is expected (and vice versa below).
    return {
      method: 'POST',
      url: '/add-checkpoint',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(mutateJson(rng, { old: String(current), proof: [], note: f.log.note(newSize) })),
    };
  }
  if (kind < 85) {
    // The read endpoints with random paths and queries.
    const path = rng.pick([
      () => `/${originHash(f.log.origin)}/checkpoint`,
      () => `/${originHash('fuzz.test/other')}/checkpoint`,
      () => `/${enc(mutateText(rng, originHash(f.log.origin)))}/checkpoint`,
      () => `/${[...rng.bytes(rng.size(40))].map((b) => `%${b.toString(16)}`).join('')}/checkpoint`,
      () => `/${enc(randomString(rng, 80))}/checkpoint`,
      () => `/v1/evidence?origin=${enc(randomString(rng, 40))}`,
      () => `/v1/evidence?origin=${enc(f.log.origin)}&origin=x`,
      () => `/v1/evidence?${enc(randomString(rng, 20))}=${enc(randomString(rng, 20))}`,
      () => '/v1/witness',
      () => '/healthz',
      () => `/healthz?${'a=1&'.repeat(rng.int(2000))}`,
    ])();
    return { method: 'GET', url: path, headers };
  }
  // Random methods on random and real routes.
  const method = rng.pick<Req['method']>(['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD']);
  const url = rng.pick([
    '/add-checkpoint',
    '/v1/witness',
    '/v1/evidence',
    '/healthz',
    '/metrics',
    '/admin',
    '/v1/logs',
    `/${enc(randomString(rng, 30))}`,
    '//',
    '/%2e%2e/%2e%2e/etc/passwd',
    `/add-checkpoint?${randomString(rng, 20).replace(/[^a-z=&]/gi, '')}`,
  ]);
  const hasBody = method !== 'GET' && method !== 'HEAD' && rng.bool();
  return {
    method,
    url,
    headers: hasBody ? { 'content-type': rng.pick(['application/json', 'text/plain']), ...headers } : headers,
    ...(hasBody ? { body: JSON.stringify(randomJson(rng)) } : {}),
  };
}

/** Sends a valid extending checkpoint and asserts it is cosigned (the witness still serves). */
async function sendValid(t: Test, f: Fixture, rng: Rng): Promise<void> {
  const current = await witnessedSize(f);
  const newSize = Math.max(current + 1 + rng.int(4), f.log.size);
  while (f.log.size < newSize) f.log.append(1, rng);
  const res = await f.app.inject({
    method: 'POST',
    url: '/add-checkpoint',
    headers: { 'content-type': 'text/plain; charset=utf-8' },
    payload: f.log.addCheckpointBody(current, newSize),
  });
  if (res.statusCode !== 200)
    t.fail(`valid add-checkpoint ${current} -> ${newSize}: ${res.statusCode} ${res.body}`);
  else {
    const note = f.log.note(newSize);
    f.signed.set(newSize, note);
    verifyCosignature(`${note}${res.body}`, f.witnessVkey);
  }
}

/** The properties checked at the end of a run. */
async function checkEndState(t: Test, f: Fixture): Promise<void> {
  const latest = await f.store.latest(f.log.origin);
  t.ok(latest !== undefined, 'the witness cosigned the log');
  if (latest !== undefined) {
    // Whatever the fuzzer sent, the witness only ever moved along the legitimate tree.
    const cp = parseCheckpoint(latest.note.slice(0, latest.note.indexOf('\n\n') + 1));
    const truth = parseCheckpoint(f.log.note(Number(cp.size)).split('\n\n')[0] + '\n');
    t.ok(bytesEqual(cp.root, truth.root), `the witnessed root at size ${cp.size} is the log's real root`);
  }
  t.equal((await f.store.latest('fuzz.test/other'))?.size ?? 0n, 0n, 'the unfed log stayed at size 0');
  t.same(await f.store.listEvidence(), [], 'garbage and replays never became evidence');
  const health = await f.app.inject({ method: 'GET', url: '/healthz' });
  t.equal(health.statusCode, 200, 'healthz still answers');
}

t.test('in process: every endpoint, seeded random and mutated input', async (t) => {
  const rng = new Rng(seed);
  const f = await openFixture(rng);
  t.teardown(() => f.close());
  await sendValid(t, f, rng);
  const statuses = new Map<number, number>();
  // Distinct problems (by route and kind), each with its first case, so a report stays readable.
  const failures = new Map<string, string>();
  let baseline = 0;
  let current = 0;
  const started = Date.now();
  for (let i = 0; i < CASES; i++) {
    if (i === Math.floor(CASES / 5)) baseline = heapAfterGc();
    if (i % 50 === 0) {
      await sendValid(t, f, rng);
      current = await witnessedSize(f);
    }
    const req = randomRequest(rng, f, current);
    const res = await f.app.inject({
      method: req.method,
      url: req.url,
      headers: req.headers,
      ...(req.body === undefined ? {} : { payload: req.body }),
    });
    // Only a 200 from add-checkpoint moves the witness; re-read its size from the store then.
    if (res.statusCode === 200 && req.method === 'POST') current = await witnessedSize(f);
    statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1);
    const problem = checkOutcome({
      statusCode: res.statusCode,
      contentType: res.headers['content-type'] as string | undefined,
      body: res.body,
    });
    if (problem !== undefined && req.method !== 'HEAD') {
      const key = `${req.method} ${req.url.split('?')[0]!.slice(0, 40)}: ${problem.slice(0, 60)}`;
      if (!failures.has(key))
        failures.set(key, `case ${i} ${req.method} ${req.url.slice(0, 100)}: ${problem}`);
    }
    // A mutation may still verify (an extra unknown signature line): the witness then cosigns the
    // legitimate checkpoint, which checkEndState proves by comparing roots.
  }
  const elapsed = Date.now() - started;
  const growth = heapAfterGc() - baseline;
  t.same([...failures.values()], [], `no 5xx and every JSON error is {code, message} (seed ${seed})`);
  t.comment(
    `${CASES} cases in ${elapsed} ms; statuses ${JSON.stringify(Object.fromEntries(statuses))}; heap growth ${(growth / 1e6).toFixed(1)} MB`,
  );
  t.ok(growth < 16e6, `heap grew ${(growth / 1e6).toFixed(1)} MB over the run (limit 16 MB)`);
  for (const status of [400, 403, 404, 409, 422])
    t.ok((statuses.get(status) ?? 0) > 0, `the fuzzer reached ${status}`);
  await sendValid(t, f, rng);
  await checkEndState(t, f);
});

/** Sends raw bytes on a fresh TCP connection and returns what the server answered (up to close). */
function raw(port: number, bytes: string | Buffer, timeoutMs = 5000): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    let out = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(
        new Error(`raw request got no close within ${timeoutMs} ms: ${JSON.stringify(out.slice(0, 200))}`),
      );
    }, timeoutMs);
    socket.on('data', (d) => (out += d.toString('latin1')));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(out);
    });
    socket.end(bytes);
  });
}

t.test('real HTTP: random requests, malformed HTTP, oversized headers and bodies', async (t) => {
  const rng = new Rng(seed ^ 0x5a5a5a5a);
  const f = await openFixture(rng);
  t.teardown(() => f.close());
  await f.app.listen({ host: '127.0.0.1', port: 0 });
  const address = f.app.server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  const base = `http://127.0.0.1:${address.port}`;
  await sendValid(t, f, rng);
  const failures: string[] = [];
  for (let i = 0; i < 300; i++) {
    const req = randomRequest(rng, f, await witnessedSize(f));
    if (req.method === 'HEAD' || req.method === 'OPTIONS') continue;
    const res = await fetch(`${base}${req.url}`, {
      method: req.method,
      headers: req.headers,
      ...(req.body === undefined || req.method === 'GET' ? {} : { body: req.body }),
    }).catch((err: unknown) => ({ status: 0, err }) as const);
    if ('err' in res) {
      failures.push(`case ${i}: connection failed: ${String(res.err)}`);
      continue;
    }
    const body = await res.text();
    const problem = checkOutcome({
      statusCode: res.status,
      contentType: res.headers.get('content-type') ?? undefined,
      body,
    });
    if (problem !== undefined) failures.push(`case ${i} ${req.method} ${req.url.slice(0, 80)}: ${problem}`);
  }
  t.same(failures.slice(0, 10), [], 'no 5xx and no dropped connection over real HTTP');

  const port = address.port;
  const malformed: [string, string | Buffer, RegExp][] = [
    ['garbage request line', 'HELLO\r\n\r\n', /^HTTP\/1\.1 400|^$/],
    ['bad HTTP version', 'GET /healthz HTTP/9.9\r\n\r\n', /^HTTP\/1\.1 (400|505)|^$/],
    ['header without colon', 'GET /healthz HTTP/1.1\r\nHost: x\r\nbroken\r\n\r\n', /^HTTP\/1\.1 400|^$/],
    [
      'headers over 16 KiB',
      `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(70_000)}\r\n\r\n`,
      /^HTTP\/1\.1 431|^$/,
    ],
    [
      'bad chunked body',
      'POST /add-checkpoint HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Type: text/plain\r\n\r\nzz\r\nabc\r\n0\r\n\r\n',
      /^HTTP\/1\.1 400|^$/,
    ],
    [
      'content-length and chunked',
      'POST /add-checkpoint HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
      /^HTTP\/1\.1 400|^$/,
    ],
    [
      'declared body over the limit',
      `POST /add-checkpoint HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 10000000\r\nConnection: close\r\n\r\n${'a'.repeat(1000)}`,
      /^HTTP\/1\.1 413/,
    ],
    ['NUL in the path', 'GET /heal\u0000thz HTTP/1.1\r\nHost: x\r\n\r\n', /^HTTP\/1\.1 400|^$/],
  ];
  for (const [name, bytes, expect] of malformed) {
    const answer = await raw(port, bytes);
    t.match(answer.split('\r\n')[0] ?? '', expect, `${name}: refused with a 4xx or a closed connection`);
    t.notMatch(answer, /^HTTP\/1\.1 5/, `${name}: no 5xx`);
  }
  const after = await fetch(`${base}/healthz`);
  t.equal(after.status, 200, 'the witness still serves after malformed HTTP');
  await sendValid(t, f, rng);
  await checkEndState(t, f);
});

t.test('GET /v1/evidence with a NUL in the origin is not a 5xx', async (t) => {
  const f = await openFixture(new Rng(seed));
  t.teardown(() => f.close());
  const res = await f.app.inject({ method: 'GET', url: '/v1/evidence?origin=a%00b' });
  t.equal(res.statusCode, 200, `status ${res.statusCode}`);
  t.same(res.json(), { evidence: [] });
});
