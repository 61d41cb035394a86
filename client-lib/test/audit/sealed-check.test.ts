// The auditor opens and checks sealed values (DESIGN.md "Readers and sealed payloads"; contract
// "Client"): with real sealed values from sealValue, a matching S, a wrong S, a size that lies, a value
// the log withholds, erased values with and without the operator's log.erasure record, a commitment
// list in a $blob, records only the operator may sign, and a range answer longer than its values.
// The pure check first, then runAudit against the in-test log (test/helpers/fake-log.ts).
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import t from 'tap';
import {
  LogClient,
  base64Encode,
  canonicalJson,
  checkSealedAnswer,
  formatEntry,
  generateKey,
  hexEncode,
  parsePolicy,
  recordHash,
  runAudit,
  sealValue,
  sha256,
  signRecord,
  utf8,
  type AuditOptions,
  type Sealed,
} from '../../src/index.js';
import { workerPoolSignatureVerifier } from '../../src/audit/node-verifier.js';
import { fileAuditStorage } from '../../src/node-client.js';
import { useNodeCrypto } from '../../src/node.js';
import { startFakeLog, type FakeLog } from '../helpers/fake-log.js';

useNodeCrypto();

const ORIGIN = 'fake.example/log';
const OPERATOR = `${ORIGIN}/operator`;
const NAME = 'emitter.example/a';
const TOKEN = 'vigil_rt_' + 'A'.repeat(43);
/** A marker planted in every sealed value: no report, problem or state may ever hold it. */
const MARKER = 'MARKER-7f3a-secret';

let saltCounter = 0;
function seal(value: unknown): Sealed {
  const salt = new Uint8Array(16);
  salt[0] = ++saltCounter;
  salt[1] = saltCounter >> 8;
  return sealValue(value, salt);
}

/** A stream of signed entries of one emitter; `next` appends records to it. */
function writer(emitter: string, signerKey: string, stream: string) {
  let seq = 0;
  let prev: string | undefined;
  return (fields: Record<string, unknown>): Uint8Array => {
    const record: Record<string, unknown> = {
      v: 1,
      stream,
      seq: seq++,
      ...(prev !== undefined ? { prev } : {}),
      time: new Date().toISOString(),
      ...fields,
    };
    prev = recordHash(record);
    return formatEntry({
      received: new Date().toISOString(),
      emitter,
      peer: 'log',
      record,
      sig: signRecord(record, signerKey),
    });
  };
}

async function setup(t: { teardown(fn: () => unknown): void }) {
  const operator = generateKey(OPERATOR);
  const key = generateKey(NAME);
  const log: FakeLog = await startFakeLog({ origin: ORIGIN, emitters: new Map([[NAME, key.verifierKey]]) });
  log.operator = { name: OPERATOR, vkey: operator.verifierKey };
  log.readers.add(TOKEN);
  const stateDir = await fs.mkdtemp(path.join(os.tmpdir(), 'vigil-audit-sealed-'));
  t.teardown(async () => {
    await log.close();
    await fs.rm(stateDir, { recursive: true, force: true });
  });
  const opts: AuditOptions = {
    client: new LogClient(log.url, { readerToken: TOKEN }),
    policy: parsePolicy(log.policy),
    storage: fileAuditStorage(stateDir),
    openSealed: true,
  };
  const op = writer(OPERATOR, operator.signerKey, 'operator-stream');
  const em = writer(NAME, key.signerKey, 'emitter-stream');
  log.appendRaw([
    op({ kind: 'emitter.add', name: OPERATOR, vkey: operator.verifierKey }),
    op({ kind: 'emitter.add', name: NAME, vkey: key.verifierKey }),
  ]);
  /** Appends an mcp.message-like record sealing `values` (S stored by the log); returns them. */
  const message = (...values: unknown[]): Sealed[] => {
    const sealed = values.map((v) => seal(v));
    for (const s of sealed) log.sealed.set(s.ref.$sealed.sha256, s.bytes);
    log.appendRaw([
      em({ kind: 'mcp.message', message: { jsonrpc: '2.0', params: sealed.map((s) => s.ref) } }),
    ]);
    return sealed;
  };
  const erasure = (commitments: string[] | unknown, count: number) =>
    op({
      kind: 'log.erasure',
      reason: 'subject request 12',
      by: 'alice',
      target: { session: 's-1' },
      count,
      commitments,
    });
  return { log, opts, op, em, message, erasure, stateDir };
}

const at = (r: { newProblems: { code: string; index?: string }[] }) =>
  r.newProblems.map((p) => `${p.code}@${p.index ?? '-'}`);

t.test('checkSealedAnswer with real sealed values', async (t) => {
  const a = seal({ text: MARKER });
  const b = seal('yes');
  const other = seal({ text: 'something else' });
  // A size lie: the ref commits to S's hash but claims another size.
  const lying = { $sealed: { sha256: a.ref.$sealed.sha256, size: a.ref.$sealed.size + 1 } };
  const gone = seal(42);
  const missing = seal([1, 2, 3]);
  const refs = [
    { index: 5n, ref: a.ref },
    { index: 6n, ref: b.ref },
    { index: 7n, ref: lying },
    { index: 8n, ref: gone.ref },
    { index: 9n, ref: missing.ref },
  ];
  const answer = {
    sealed: new Map([
      [a.ref.$sealed.sha256, a.bytes],
      [b.ref.$sealed.sha256, other.bytes],
    ]),
    erased: new Map([[gone.ref.$sealed.sha256, 12n]]),
  };
  const c = checkSealedAnswer(refs, answer);
  t.equal(c.opened, 1, 'only the matching value counts as opened');
  t.same(
    c.problems.map((p) => `${p.code}@${p.index}`),
    ['SEALED_MISMATCH@6', 'SEALED_MISMATCH@7', 'SEALED_MISSING@9'],
  );
  t.match(c.problems[0]!.message, b.ref.$sealed.sha256, 'the mismatch names the commitment');
  t.match(c.problems[1]!.message, `commitment says ${a.ref.$sealed.size + 1}`);
  t.same(c.claims, [{ sha256: gone.ref.$sealed.sha256, index: '8', erasure: '12' }]);
  t.notMatch(JSON.stringify(c), MARKER, 'no opened value in the outcome');
});

t.test('a log that serves every sealed value: clean, one request per tile', async (t) => {
  const { log, opts, message, stateDir } = await setup(t);
  for (let i = 0; i < 300; i++) message({ text: `${MARKER} ${i}` }, i);
  // Signatures on worker threads, as the CLI checks them: tiles in flight, problems still in order.
  const pool = workerPoolSignatureVerifier(2);
  t.teardown(() => pool.close());
  const r = await runAudit({ ...opts, verifySignature: pool });
  t.same(at(r), []);
  t.equal(r.ok, true);
  t.same(r.sealed, { opened: true, values: 600, matched: 600, erased: 0 });
  t.same(
    log.requests.filter((p) => p.startsWith('v1/sealed')),
    ['v1/sealed', 'v1/sealed'],
    'entries 0..301 are two tiles: two range requests',
  );
  const ranges = log.authorizations.filter((a) => a.path === 'v1/sealed').map((a) => a.url);
  t.same(ranges, ['/v1/sealed?start=0&end=256', '/v1/sealed?start=256&end=302']);
  t.notMatch(JSON.stringify(r), MARKER);
  t.notMatch(await fs.readFile(path.join(stateDir, 'audit-state.json'), 'utf8'), MARKER, 'nor in the state');
  // The next run reads only what is new.
  message('later');
  const second = await runAudit(opts);
  t.same(second.sealed, { opened: true, values: 1, matched: 1, erased: 0 });
  t.equal(
    log.authorizations.filter((a) => a.path === 'v1/sealed').at(-1)?.url,
    '/v1/sealed?start=302&end=303',
  );
});

t.test('a wrong S, a withheld S and a size lie are problems at their entry', async (t) => {
  const { log, opts, em, message } = await setup(t);
  message('fine'); // entry 2
  const [tampered] = message({ text: MARKER }); // entry 3
  const [withheld] = message('withheld'); // entry 4
  log.sealed.set(tampered!.ref.$sealed.sha256, seal({ text: 'forged' }).bytes);
  log.sealed.delete(withheld!.ref.$sealed.sha256);
  // entry 5: a record whose ref claims the wrong size for a correctly hashed S
  const s = seal('sized');
  log.sealed.set(s.ref.$sealed.sha256, s.bytes);
  log.appendRaw([
    em({
      kind: 'app.event',
      value: { $sealed: { sha256: s.ref.$sealed.sha256, size: s.ref.$sealed.size - 1 } },
    }),
  ]);
  const r = await runAudit(opts);
  t.same(at(r), ['SEALED_MISMATCH@3', 'SEALED_MISSING@4', 'SEALED_MISMATCH@5']);
  t.match(r.newProblems[0]!.message, tampered!.ref.$sealed.sha256);
  t.equal(r.ok, false);
  t.same(r.sealed, { opened: true, values: 4, matched: 1, erased: 0 });
  t.notMatch(JSON.stringify(r), MARKER);
  t.notMatch(JSON.stringify(r), 'forged');
});

t.test('erased values: listed when an operator log.erasure record names them, else a problem', async (t) => {
  const { log, opts, em, message, erasure } = await setup(t);
  const [a] = message({ text: MARKER }); // entry 2
  const [b] = message('b'); // entry 3
  const [c] = message('c'); // entry 4
  log.appendRaw([erasure([a!.ref.$sealed.sha256], 1)]); // entry 5
  log.appendRaw([em({ kind: 'app.event' })]); // entry 6
  for (const [s, index] of [
    [a, 5n],
    [b, 6n], // points at an ordinary entry
    [c, 5n], // a record that does not name it
  ] as const) {
    log.sealed.delete(s!.ref.$sealed.sha256);
    log.erased.set(s!.ref.$sealed.sha256, index);
  }
  const r = await runAudit(opts);
  t.same(at(r), ['SEALED_ERASURE_UNRECORDED@3', 'SEALED_ERASURE_UNRECORDED@4']);
  t.match(r.newProblems[0]!.message, 'entry 6 is not a log.erasure record');
  t.match(r.newProblems[1]!.message, 'does not name it');
  t.same(r.sealed, { opened: true, values: 3, matched: 0, erased: 3 });
  t.equal(r.erasures.length, 1);
  t.match(r.erasures[0], {
    index: '5',
    reason: 'subject request 12',
    by: 'alice',
    target: { session: 's-1' },
    count: 1,
  });
  t.type(r.erasures[0]!.time, 'string');
});

t.test('an erasure record beyond the audited tree is checked by the run that reaches it', async (t) => {
  const { log, opts, message, erasure } = await setup(t);
  const [a] = message('a'); // entry 2
  log.sealed.delete(a!.ref.$sealed.sha256);
  log.erased.set(a!.ref.$sealed.sha256, 3n); // the record is not in the tree yet
  t.same(at(await runAudit(opts)), [], 'not yet a problem');
  log.appendRaw([erasure([a!.ref.$sealed.sha256], 1)]); // entry 3
  const r = await runAudit(opts);
  t.same(at(r), []);
  t.equal(r.erasures[0]?.index, '3');

  const [b] = message('b'); // entry 4
  log.sealed.delete(b!.ref.$sealed.sha256);
  log.erased.set(b!.ref.$sealed.sha256, 6n);
  t.same(at(await runAudit(opts)), []);
  message('c'); // entry 5
  message('d'); // entry 6: the log claimed a record here, and it is not one
  t.same(at(await runAudit(opts)), ['SEALED_ERASURE_UNRECORDED@4']);
});

t.test('a commitment list in a $blob (more than 500 erased)', async (t) => {
  const { log, opts, message, erasure } = await setup(t);
  const [a] = message('a'); // entry 2
  const [b] = message('b'); // entry 3
  const list = [
    a!.ref.$sealed.sha256,
    ...Array.from({ length: 600 }, (_, i) => hexEncode(sha256(utf8(`x${i}`)))),
  ];
  const bytes = utf8(canonicalJson(list));
  const hex = hexEncode(sha256(bytes));
  log.blobs.set(hex, base64Encode(bytes));
  log.appendRaw([erasure({ $blob: { sha256: hex, size: bytes.length } }, list.length)]); // entry 4
  for (const s of [a, b]) {
    log.sealed.delete(s!.ref.$sealed.sha256);
    log.erased.set(s!.ref.$sealed.sha256, 4n);
  }
  const r = await runAudit(opts);
  t.same(at(r), ['SEALED_ERASURE_UNRECORDED@3'], 'a is in the list, b is not');
  t.equal(r.erasures[0]?.count, 601);
});

t.test('records only the operator signs, by another emitter', async (t) => {
  const { log, opts, em, op } = await setup(t);
  log.appendRaw([
    op({ kind: 'access.read', reader: 'bob', request: 'GET /v1/sealed', query: {}, count: 1 }),
    em({ kind: 'access.read', reader: 'bob', request: 'GET /v1/sealed', query: {}, count: 1 }),
    em({ kind: 'log.erasure', reason: 'r', by: 'x', target: { sealed: true }, count: 0, commitments: [] }),
    em({ kind: 'hold.add', hold: 'h1', scope: 'session', target: 's', reason: 'r' }),
    em({ kind: 'hold.release', hold: 'h1' }),
    em({ kind: 'retention.set', duration: 'off' }),
    em({ kind: 'reader.add', name: 'eve' }),
    em({ kind: 'reader.revoke', name: 'bob' }),
    op({ kind: 'reader.add', name: 'carol' }),
  ]);
  const r = await runAudit(opts);
  t.same(
    at(r),
    [3, 4, 5, 6, 7, 8, 9].map((i) => `OPERATOR_RECORD_FORGED@${i}`),
  );
  t.same(r.erasures, [], "a forged log.erasure record is not listed as the operator's");
});

t.test('without a token: nothing opened, and the report says so', async (t) => {
  const { log, opts, message, erasure } = await setup(t);
  const [a] = message('a');
  log.appendRaw([erasure([a!.ref.$sealed.sha256], 1)]);
  const r = await runAudit({ ...opts, client: new LogClient(log.url), openSealed: false });
  t.same(at(r), []);
  t.same(r.sealed, { opened: false, values: 1, matched: 0, erased: 0 });
  t.equal(r.erasures.length, 1, 'erasure records are public: still listed');
  t.same(
    log.requests.filter((p) => p.startsWith('v1/sealed')),
    [],
  );
});

t.test('a range answer longer than its values allow: each value is fetched alone', async (t) => {
  const { log, opts, message } = await setup(t);
  message('a', 'b'); // entry 2
  const [c] = message('c'); // entry 3
  log.sealedPadding = 100_000;
  // The log serves a longer S for c than its commitment: blamed on entry 3 alone.
  log.sealed.set(c!.ref.$sealed.sha256, new Uint8Array(c!.ref.$sealed.size + 50));
  const r = await runAudit(opts);
  t.same(at(r), ['SEALED_MISMATCH@3']);
  t.match(r.newProblems[0]!.message, 'more than the committed');
  t.same(r.sealed, { opened: true, values: 3, matched: 2, erased: 0 });
  t.same(
    log.requests.filter((p) => p.startsWith('v1/sealed/')).length,
    3,
    'one request per value after the oversized range answer',
  );
});

t.test('a range whose values pass the log budget is split, down to single values', async (t) => {
  const { log, opts, message } = await setup(t);
  message('x'.repeat(1000)); // entry 2
  message('y'.repeat(1000)); // entry 3
  message('z'.repeat(1000), 'w'.repeat(1000)); // entry 4: alone still over the budget
  log.sealedBudget = 1500;
  const r = await runAudit(opts);
  t.same(at(r), []);
  t.same(r.sealed, { opened: true, values: 4, matched: 4, erased: 0 });
  t.same(
    log.authorizations
      .filter((a) => a.path.startsWith('v1/sealed'))
      .map((a) => a.url.replace(/[0-9a-f]{64}/, 'HEX')),
    [
      '/v1/sealed?start=0&end=5',
      // 0..2 (the registry) has no sealed refs: not asked for
      '/v1/sealed?start=2&end=5',
      '/v1/sealed?start=2&end=3',
      '/v1/sealed?start=3&end=5',
      '/v1/sealed?start=3&end=4',
      '/v1/sealed?start=4&end=5',
      '/v1/sealed/HEX',
      '/v1/sealed/HEX',
    ],
  );
});

t.test('a log that lists its budget in /v1/log: ranges are split before asking', async (t) => {
  const { log, opts, message } = await setup(t);
  message('x'.repeat(1000)); // entry 2
  message('y'.repeat(1000)); // entry 3
  message('z'.repeat(1000), 'w'.repeat(1000)); // entry 4: alone still over the budget
  log.sealedBudget = 1500;
  log.listSealedBudget = true;
  const r = await runAudit(opts);
  t.same(at(r), []);
  t.same(r.sealed, { opened: true, values: 4, matched: 4, erased: 0 });
  t.same(
    log.authorizations
      .filter((a) => a.path.startsWith('v1/sealed'))
      .map((a) => a.url.replace(/[0-9a-f]{64}/, 'HEX')),
    ['/v1/sealed?start=2&end=3', '/v1/sealed?start=3&end=4', '/v1/sealed/HEX', '/v1/sealed/HEX'],
    'no request the log must refuse',
  );
});

t.test('a failed sealed read ends the run with the range named, the state unchanged', async (t) => {
  const { log, opts, message, stateDir } = await setup(t);
  message('a');
  log.readers.clear();
  await t.rejects(runAudit(opts), /sealed values of entries 0\.\.2 could not be read: .*reader token/);
  await t.rejects(fs.readFile(path.join(stateDir, 'audit-state.json')), { code: 'ENOENT' });
});
