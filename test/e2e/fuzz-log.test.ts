// Property-based fuzzing of every endpoint of the log, in process (buildApp on the embedded store, app.inject):
// random and mutated JSON submissions, records, signatures and blobs; notes for /v1/cosignatures;
// tile paths; indices and sizes; query strings; headers; content types; body sizes; unknown routes and
// methods. Properties: no 5xx, every JSON error is {code, message}, no heap growth beyond a bound, and
// valid submissions are still sequenced, with receipts that verify offline, throughout and afterwards;
// at the end the whole log passes the crash invariants (every acknowledged record once, tree matches
// the checkpoint, every checkpoint it signed consistent). Replay a run with VIGIL_FUZZ_SEED=<seed>;
// VIGIL_FUZZ_CASES sets the number of cases (default 10,000).
import { randomUUID } from 'node:crypto';
import t from 'tap';
import {
  base64Encode,
  cosign,
  cosignerVerifierKey,
  generateKey,
  hexEncode,
  parsePolicy,
  sha256,
  signRecord,
  verifyReceipt,
  base64Decode,
} from '@vigil/client';
import { useNodeCrypto } from '@vigil/client/node';
import { buildApp, createTestStore, loadConfig, type AppDeps } from '@vigil/server';
import {
  CONTENT_TYPES,
  checkOutcome,
  fuzzSeed,
  heapAfterGc,
  mutateJson,
  mutateText,
  randomHeaders,
  randomJson,
  randomString,
  Rng,
} from '../helpers/reliability-fuzz.js';
import {
  ackedFrom,
  checkLogInvariants,
  initStoreLog,
  injectGet,
  RecordStream,
  serverCli,
  type Acked,
  type PostAnswer,
  type Submission,
} from '../helpers/reliability-log.js';

useNodeCrypto();

const CASES = Number(process.env.VIGIL_FUZZ_CASES ?? 10_000);
const seed = fuzzSeed();
t.comment(`fuzz-log seed ${seed} (replay: VIGIL_FUZZ_SEED=${seed}), ${CASES} cases`);

const ORIGIN = 'fuzz.test/log';
const EMITTER = 'fuzz.test/emitter';

interface Req {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE' | 'PATCH' | 'OPTIONS' | 'HEAD';
  url: string;
  headers: Record<string, string>;
  body?: string | Buffer;
}

const enc = (s: string) =>
  [...Buffer.from(s, 'utf8')].map((b) => `%${b.toString(16).padStart(2, '0')}`).join('');

t.test('in process: every log endpoint, seeded random and mutated input', async (t) => {
  t.setTimeout(300_000);
  const rng = new Rng(seed);
  const store = await createTestStore('embedded');
  t.teardown(() => store.cleanup());
  const emitterKey = generateKey(EMITTER, rng.bytes(32));
  const otherKey = generateKey(EMITTER, rng.bytes(32));
  const witnessKey = generateKey('fuzz.test/witness', rng.bytes(32));
  const strangerKey = generateKey('fuzz.test/stranger', rng.bytes(32));
  const vkey = await initStoreLog(store, ORIGIN, [{ name: EMITTER, vkey: emitterKey.verifierKey }]);
  await serverCli(['witness', 'add', 'fuzz.test/witness', cosignerVerifierKey(witnessKey.signerKey)], store);
  // Search and the sealed values need a reader (contract "Log HTTP API"): its token is the last line.
  const readerToken = (await serverCli(['reader', 'add', 'fuzz-reader'], store)).trim().split('\n').at(-1)!;
  const reader = { authorization: `Bearer ${readerToken}` };
  const handle = await store.open();
  // Rate limits off: the fuzzer's own valid requests must never be refused for volume.
  const config = loadConfig(
    {},
    { 'data-dir': store.dataDir, 'rate-address': '0', 'rate-emitter': '0', 'max-body-bytes': '262144' },
  );
  // Server-side errors are captured so a 5xx is reported with its cause.
  const serverErrors: string[] = [];
  const app = await buildApp(config, {
    db: handle.db as unknown as AppDeps['db'],
    logger: { level: 'error', stream: { write: (line: string) => void serverErrors.push(line) } },
  });
  await app.ready();
  t.teardown(() => app.close());
  const policy = parsePolicy(`log ${vkey}\nquorum none\n`);

  const main = new RecordStream(EMITTER, emitterKey.signerKey, randomUUID());
  const acked: Acked[] = [];
  const notes: string[] = [];
  let lastAcked: { subs: Submission[]; answer: PostAnswer } | undefined;
  const json = (body: unknown): Req => ({
    method: 'POST',
    url: '/v1/entries',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });

  /** A valid submission on the main stream: must be sequenced, its receipts must verify offline. */
  const sendValid = async (n: number): Promise<void> => {
    const subs = main.next(n, rng.bool() ? { n: rng.int(1000) } : {});
    const res = await app.inject({ ...json({ entries: subs }), payload: JSON.stringify({ entries: subs }) });
    if (res.statusCode !== 200) throw new Error(`valid submission refused: ${res.statusCode} ${res.body}`);
    const answer = res.json() as PostAnswer;
    for (const e of answer.entries) verifyReceipt(e.receipt, base64Decode(e.entry), policy);
    acked.push(...ackedFrom(subs, answer));
    notes.push(answer.checkpoint);
    lastAcked = { subs, answer };
  };

  /** Fresh records on a throwaway stream: whatever a mutation makes of them, the model stays right. */
  const fresh = (n: number, key = emitterKey.signerKey): Submission[] =>
    new RecordStream(EMITTER, key, randomUUID()).next(n);

  const blobRecord = (): { sub: Submission; blob: Uint8Array; sha: string } => {
    const blob = rng.bytes(rng.size(300));
    const sha = hexEncode(sha256(blob));
    const record = {
      v: 1,
      stream: randomUUID(),
      seq: 0,
      time: new Date().toISOString(),
      kind: 'stream.open',
      payload: { $blob: { sha256: sha, size: blob.length } },
    };
    return { sub: { emitter: EMITTER, record, sig: signRecord(record, emitterKey.signerKey) }, blob, sha };
  };

  const size = (): bigint => BigInt(acked.length === 0 ? 0 : lastAcked!.answer.entries.at(-1)!.index) + 1n;

  const randomRequest = (): Req => {
    const kind = rng.int(100);
    const headers = rng.bool(0.1) ? randomHeaders(rng) : {};
    if (kind < 25) {
      // A valid submission (sometimes with a blob), mutated one to three times.
      let body: unknown;
      if (rng.bool(0.2)) {
        const b = blobRecord();
        body = { entries: [{ ...b.sub, blobs: { [b.sha]: base64Encode(b.blob) } }] };
      } else body = { entries: fresh(1 + rng.int(3)) };
      for (let i = rng.int(3); i >= 0; i--) body = mutateJson(rng, body);
      const req = json(body);
      return { ...req, headers: { ...req.headers, ...headers } };
    }
    if (kind < 37) {
      // Well-formed but wrong: replays, gaps, bad prev, foreign signatures, unknown emitters, blobs
      // missing, extra or lying, oversized entries, too many entries.
      const v = rng.int(11);
      if (v === 0 && lastAcked) return json({ entries: lastAcked.subs }); // replay: original receipts
      if (v === 1) {
        const [a, b, c] = fresh(3);
        return json({ entries: [a, c, b] }); // reordered: 409
      }
      if (v === 2) return json({ entries: fresh(3).slice(1) }); // starts at seq 1: 409
      if (v === 3) return json({ entries: fresh(1, otherKey.signerKey) }); // 403
      if (v === 4) return json({ entries: fresh(1).map((s) => ({ ...s, emitter: 'nobody' })) });
      if (v === 5) return json({ entries: [blobRecord().sub] }); // blob not supplied
      if (v === 6) {
        const b = blobRecord();
        const bytes = Uint8Array.from(b.blob);
        if (bytes.length > 0) bytes[0]! ^= 1;
        else return json({ entries: [{ ...b.sub, blobs: { [b.sha]: 'AA==' } }] });
        return json({ entries: [{ ...b.sub, blobs: { [b.sha]: base64Encode(bytes) } }] });
      }
      if (v === 7) {
        const [s] = fresh(1);
        return json({ entries: [{ ...s, blobs: { [hexEncode(rng.bytes(32))]: 'AAAA' } }] });
      }
      if (v === 8) {
        const record = { v: 1, stream: randomUUID(), seq: 0, time: 'x', kind: 'k', pad: 'x'.repeat(70_000) };
        return json({
          entries: [{ emitter: EMITTER, record, sig: signRecord(record, emitterKey.signerKey) }],
        });
      }
      if (v === 9) return json({ entries: Array.from({ length: 1001 }, () => fresh(1)[0]) });
      const [s] = fresh(1);
      return json({ entries: [{ ...s, sig: rng.pick(['', 'AAAA', s!.sig.slice(1), `${s!.sig}=`]) }] });
    }
    if (kind < 45) {
      // Random bodies, content types and sizes (some beyond the body limit).
      const r = rng.int(5);
      const body =
        r === 0
          ? Buffer.from(rng.bytes(rng.size(4096)))
          : r === 1
            ? JSON.stringify(randomJson(rng))
            : r === 2
              ? `{"entries":[${'{},'.repeat(rng.pick([10, 100_000]))}{}]}`
              : r === 3
                ? JSON.stringify({ entries: randomJson(rng) })
                : randomString(rng, 512);
      const type = rng.pick(CONTENT_TYPES);
      return {
        method: 'POST',
        url: rng.pick(['/v1/entries', '/v1/entries?wait=1', '/v1/cosignatures']),
        headers: { ...(type === undefined ? {} : { 'content-type': type }), ...headers },
        body,
      };
    }
    if (kind < 55) {
      // Notes for /v1/cosignatures: a real cosignature (accepted), mutated ones, strangers, old sizes.
      const note = lastAcked?.answer.checkpoint ?? '';
      const v = rng.int(5);
      let body: string;
      if (v === 0 || note === '')
        body = `${note}${cosign(note || 'x\n1\nAAAA\n\n', witnessKey.signerKey, 1 + rng.int(1e9))}`;
      else if (v === 1) body = `${note}${cosign(note, strangerKey.signerKey, 1 + rng.int(1e9))}`;
      else if (v === 2)
        body = mutateText(rng, `${note}${cosign(note, witnessKey.signerKey, 1 + rng.int(1e9))}`);
      else if (v === 3) body = mutateText(rng, note);
      else body = randomString(rng, 400);
      return {
        method: 'POST',
        url: '/v1/cosignatures',
        headers: {
          'content-type': rng.pick(['text/plain; charset=utf-8', 'text/plain', 'application/json']),
          ...headers,
        },
        body,
      };
    }
    if (kind < 70) {
      // Tile paths: real ones, beyond the tree, mutated, malformed.
      const n = size();
      const level = rng.pick([0, 0, 1, 2, 'entries' as const]);
      const index = rng.bool(0.7)
        ? BigInt(rng.int(Number(n / 256n) + 2))
        : BigInt(rng.pick([999, 1000, 1e6]));
      const width = rng.bool(0.5) ? 1 + rng.int(255) : 256;
      let path = `tile/${level}/${String(index).padStart(3, '0')}${width < 256 ? `.p/${width}` : ''}`;
      // A mutated path is percent-encoded where it leaves the URL-safe set (`/\x` would be a host).
      if (rng.bool(0.5)) path = mutateText(rng, path).replace(/[^A-Za-z0-9._~/-]/gu, (c) => enc(c));
      const url = rng.bool(0.8) ? `/${path}` : `/tile/${enc(randomString(rng, 40))}`;
      return { method: 'GET', url, headers };
    }
    if (kind < 90) {
      // Indices, sizes and query strings.
      const num = () =>
        rng.pick([
          () => String(rng.int(Number(size()) + 3)),
          () => enc(randomString(rng, 24)),
          () => rng.pick(['-1', '01', '+1', '1e3', '0x10', '18446744073709551616', '9'.repeat(40), '', ' 1']),
        ])();
      const url = rng.pick([
        () => `/v1/entries/${num()}`,
        () => `/v1/receipt/${num()}`,
        () => `/v1/receipt/${num()}?witnessed=${rng.pick(['1', '0', 'x'])}`,
        () => `/v1/proof/inclusion?index=${num()}&size=${num()}`,
        () => `/v1/proof/consistency?from=${num()}&to=${num()}`,
        () => `/v1/proof/consistency?from=${num()}`,
        () =>
          `/v1/search?${rng.pick(['emitter', 'stream', 'session', 'method', 'tool', 'since', 'until', 'after', 'limit', 'x'])}=${num()}&limit=${rng.pick(['1', '1000', '1001', '0', num()])}`,
        () => `/v1/search?since=${enc(randomString(rng, 30))}&until=${enc(randomString(rng, 30))}`,
        () => `/v1/search?open=${rng.pick(['1', '0', num()])}&limit=${rng.pick(['1', '5', num()])}`,
        () => `/v1/entries/${num()}?open=${rng.pick(['1', '1', '0', num()])}`,
        () =>
          `/v1/sealed/${rng.pick([hexEncode(rng.bytes(32)), enc(randomString(rng, 64)), 'A'.repeat(64)])}`,
        () => `/v1/sealed?start=${num()}&end=${num()}`,
        () => `/v1/blobs/${rng.pick([hexEncode(rng.bytes(32)), enc(randomString(rng, 64)), 'A'.repeat(64)])}`,
        () => '/v1/incidents',
        () => '/v1/log',
        () => '/checkpoint',
        () => '/checkpoint/witnessed',
        () => '/healthz',
        () => '/metrics',
        () => `/healthz?${'a=1&'.repeat(rng.int(2000))}`,
      ])();
      // The reader routes with a reader's token mostly (else they stop at the 401).
      const auth = /^\/v1\/(search|sealed)|open=/.test(url) && rng.bool(0.8) ? reader : {};
      return { method: 'GET', url, headers: { ...headers, ...auth } };
    }
    // Random methods on real and unknown routes.
    const method = rng.pick<Req['method']>(['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD']);
    const url = rng.pick([
      '/v1/entries',
      '/v1/cosignatures',
      '/checkpoint',
      '/tile/0/000',
      '/v1/log',
      '/admin',
      '/v1/emitters',
      `/${enc(randomString(rng, 30))}`,
      '//',
      '/%2e%2e/%2e%2e/etc/passwd',
    ]);
    const hasBody = method !== 'GET' && method !== 'HEAD' && rng.bool();
    return {
      method,
      url,
      headers: hasBody
        ? { 'content-type': rng.pick(['application/json', 'text/plain']), ...headers }
        : headers,
      ...(hasBody ? { body: JSON.stringify(randomJson(rng)) } : {}),
    };
  };

  await sendValid(3);
  const statuses = new Map<number, number>();
  const failures = new Map<string, string>();
  let baseline = 0;
  const started = Date.now();
  for (let i = 0; i < CASES; i++) {
    if (i === Math.floor(CASES / 5)) baseline = heapAfterGc();
    if (i % 50 === 0) await sendValid(1 + rng.int(4));
    const req = randomRequest();
    const res = await app.inject({
      method: req.method,
      url: req.url,
      headers: req.headers,
      ...(req.body === undefined ? {} : { payload: req.body }),
    });
    statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1);
    const problem = checkOutcome({
      statusCode: res.statusCode,
      contentType: res.headers['content-type'] as string | undefined,
      body: res.body,
    });
    if (problem !== undefined && req.method !== 'HEAD') {
      const key = `${req.method} ${req.url.split('?')[0]!.slice(0, 30)}: ${problem.slice(0, 60)}`;
      if (!failures.has(key)) {
        const body = typeof req.body === 'string' ? req.body.slice(0, 400) : `${req.body?.length ?? 0} bytes`;
        const cause = res.statusCode >= 500 ? ` server log: ${serverErrors.at(-1)?.slice(0, 600)}` : '';
        failures.set(
          key,
          `case ${i} ${req.method} ${req.url.slice(0, 100)} body ${body}: ${problem}${cause}`,
        );
      }
    }
  }
  const elapsed = Date.now() - started;
  const growth = heapAfterGc() - baseline;
  t.same([...failures.values()], [], `no 5xx and every JSON error is {code, message} (seed ${seed})`);
  t.comment(
    `${CASES} cases in ${elapsed} ms; statuses ${JSON.stringify(Object.fromEntries(statuses))}; heap growth ${(growth / 1e6).toFixed(1)} MB`,
  );
  t.ok(growth < 24e6, `heap grew ${(growth / 1e6).toFixed(1)} MB over the run (limit 24 MB)`);
  if (CASES >= 1000)
    for (const status of [200, 400, 403, 404, 409, 413, 415])
      t.ok((statuses.get(status) ?? 0) > 0, `the fuzzer reached ${status}`);

  // Inputs that once answered 500, each reproduced on its own: lone UTF-16 surrogates (no RFC 8785 or
  // UTF-8 form) in the signature and in the emitter name, and an index past Postgres int8.
  const [bad] = new RecordStream(EMITTER, emitterKey.signerKey, randomUUID()).next(1);
  const surrogate = await app.inject({
    method: 'POST',
    url: '/v1/entries',
    headers: { 'content-type': 'application/json' },
    payload: JSON.stringify({ entries: [{ ...bad, sig: '\ud800' }] }),
  });
  t.equal(surrogate.statusCode, 400, `lone surrogate in sig: ${surrogate.statusCode}`);
  const surrogateName = await app.inject({
    method: 'POST',
    url: '/v1/entries',
    headers: { 'content-type': 'application/json' },
    payload: JSON.stringify({ entries: [{ ...bad, emitter: 'fuzz\udaad.test' }] }),
  });
  t.equal(surrogateName.statusCode, 400, `lone surrogate in the emitter name: ${surrogateName.statusCode}`);
  const after = await app.inject({ url: '/v1/search?after=18446744073709551616', headers: reader });
  t.equal(after.statusCode, 400, `search after 2^64: ${after.statusCode}`);
  // NUL has no place in a Postgres text column: a search filter or an emitter name with one is refused,
  // a repeated filter too; a signed record with one in its method is logged whole, unsearchable by it.
  for (const url of [
    '/v1/search?method=%00&limit=1',
    '/v1/search?emitter=a%00b',
    '/v1/search?tool=a&tool=b',
  ]) {
    const res = await app.inject({ url, headers: reader });
    t.equal(res.statusCode, 400, `${url}: ${res.statusCode}`);
    t.equal((res.json() as { code: string }).code, 'REQUEST_MALFORMED', `${url}: REQUEST_MALFORMED`);
  }
  const nulName = await app.inject({
    method: 'POST',
    url: '/v1/entries',
    headers: { 'content-type': 'application/json' },
    payload: JSON.stringify({ entries: [{ ...bad, emitter: 'fuzz\u0000.test' }] }),
  });
  t.equal(nulName.statusCode, 400, `NUL in the emitter name: ${nulName.statusCode}`);
  const nulMethod = main.next(1, { method: 'tools/\u0000call', session: '\u0000', tool: 'a\u0000' });
  const nul = await app.inject({
    method: 'POST',
    url: '/v1/entries',
    headers: { 'content-type': 'application/json' },
    payload: JSON.stringify({ entries: nulMethod }),
  });
  t.equal(
    nul.statusCode,
    200,
    `a record with NUL in its method is logged: ${nul.statusCode} ${nul.body.slice(0, 200)}`,
  );
  if (nul.statusCode === 200) {
    const answer = nul.json() as PostAnswer;
    acked.push(...ackedFrom(nulMethod, answer));
    notes.push(answer.checkpoint);
  }

  // Afterwards: valid submissions are still sequenced, and the log as a whole is intact.
  await sendValid(5);
  const health = await app.inject({ url: '/healthz' });
  t.equal(health.statusCode, 200, 'healthz still answers 200');
  const state = await checkLogInvariants(injectGet(app), vkey, acked, notes);
  t.ok(
    state.pairsChecked > 0,
    `${acked.length} acknowledged records at their indices once, tree of ${state.checkpoint.size} matches its ` +
      `checkpoint, ${state.pairsChecked} checkpoint pairs consistent`,
  );
});
