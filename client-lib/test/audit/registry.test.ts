// The auditor learns emitter keys from the tree (DESIGN.md "Log server", Emitter administration): the
// operator emitter's emitter.add / emitter.revoke records, signed by the operator whose key is the root
// of trust. Against the in-test tlog-tiles log, which accepts whatever entries a test appends: a log
// that accepted a record under a key its database swapped in, a changed operator key, registry records
// not signed by the operator, records after a revocation, and a log older than the registry.
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import t from 'tap';
import {
  LogClient,
  formatEntry,
  generateKey,
  parsePolicy,
  recordHash,
  runAudit,
  signRecord,
  type AuditOptions,
} from '../../src/index.js';
import { fileAuditStorage } from '../../src/node-client.js';
import { useNodeCrypto } from '../../src/node.js';
import { startFakeLog, type FakeLog } from '../helpers/fake-log.js';

useNodeCrypto();

const ORIGIN = 'fake.example/log';
const OPERATOR = `${ORIGIN}/operator`;
const NAME = 'emitter.example/a';

/** A stream of signed entries of one emitter; `next` appends records to it. */
function writer(emitter: string, signerKey: string, stream: string) {
  let seq = 0;
  let prev: string | undefined;
  return (fields: Record<string, unknown>, signWith = signerKey): Uint8Array => {
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
      sig: signRecord(record, signWith),
    });
  };
}

async function setup(t: { teardown(fn: () => unknown): void }) {
  const operator = generateKey(OPERATOR);
  const key = generateKey(NAME);
  const log: FakeLog = await startFakeLog({ origin: ORIGIN, emitters: new Map([[NAME, key.verifierKey]]) });
  const stateDir = await fs.mkdtemp(path.join(os.tmpdir(), 'vigil-audit-registry-'));
  t.teardown(async () => {
    await log.close();
    await fs.rm(stateDir, { recursive: true, force: true });
  });
  const opts: AuditOptions = {
    client: new LogClient(log.url),
    policy: parsePolicy(log.policy),
    storage: fileAuditStorage(stateDir),
  };
  const op = writer(OPERATOR, operator.signerKey, 'operator-stream');
  const add = (name: string, vkey: string, signWith?: string) =>
    op({ kind: 'emitter.add', name, vkey }, signWith);
  const revoke = (name: string, vkey: string) => op({ kind: 'emitter.revoke', name, vkey });
  const em = writer(NAME, key.signerKey, 'emitter-stream');
  return { log, opts, operator, key, add, revoke, em };
}

const at = (r: { newProblems: { code: string; index?: string }[] }) =>
  r.newProblems.map((p) => `${p.code}@${p.index ?? '-'}`);

t.test('a record accepted under a key the database swapped in is flagged at its index', async (t) => {
  const { log, opts, operator, key, add, em } = await setup(t);
  log.operator = { name: OPERATOR, vkey: operator.verifierKey };
  log.appendRaw([
    add(OPERATOR, operator.verifierKey),
    add(NAME, key.verifierKey),
    em({ kind: 'stream.open' }),
    em({ kind: 'app.event' }),
  ]);
  const first = await runAudit(opts);
  t.same(at(first), [], 'the first run is clean');
  // The DBA swaps the key the log serves and verifies with; the log accepts a forged record.
  const attacker = generateKey(NAME);
  log.emitters.set(NAME, attacker.verifierKey);
  log.appendRaw([em({ kind: 'app.event', forged: true }, attacker.signerKey)]);
  const second = await runAudit(opts);
  t.equal(second.ok, false);
  t.same(
    at(second),
    ['SIGNATURE_INVALID@4', 'EMITTER_KEY_MISMATCH@1'],
    'the forged entry and the registration',
  );
});

t.test('a changed operator key between runs is a problem', async (t) => {
  const { log, opts, operator, key, add, em } = await setup(t);
  log.operator = { name: OPERATOR, vkey: operator.verifierKey };
  log.appendRaw([
    add(OPERATOR, operator.verifierKey),
    add(NAME, key.verifierKey),
    em({ kind: 'stream.open' }),
  ]);
  t.same(at(await runAudit(opts)), []);
  const other = generateKey(OPERATOR);
  log.operator = { name: OPERATOR, vkey: other.verifierKey };
  const r = await runAudit(opts);
  t.same(at(r), ['OPERATOR_KEY_CHANGED@-']);
  t.match(r.newProblems[0]!.message, other.verifierKey);
  log.operator = undefined;
  t.same(
    (await runAudit(opts)).problems.map((p) => p.code),
    ['OPERATOR_KEY_CHANGED'],
    'a log that stops presenting its operator: still the one problem',
  );
});

t.test('--operator-key is the root of trust', async (t) => {
  const { log, opts, operator, add, em } = await setup(t);
  // The log presents an impostor operator that registered the emitter with the attacker's key.
  const impostor = generateKey(OPERATOR);
  const attacker = generateKey(NAME);
  log.operator = { name: OPERATOR, vkey: impostor.verifierKey };
  log.emitters.set(NAME, attacker.verifierKey);
  log.appendRaw([
    add(OPERATOR, impostor.verifierKey, impostor.signerKey),
    add(NAME, attacker.verifierKey, impostor.signerKey),
    em({ kind: 'stream.open' }, attacker.signerKey),
  ]);
  const r = await runAudit({ ...opts, operatorKey: operator.verifierKey });
  t.same(at(r), ['OPERATOR_KEY_CHANGED@-', 'SIGNATURE_INVALID@0', 'SIGNATURE_INVALID@1']);
  t.equal(r.ok, false);
});

t.test('registry records not signed by the operator change nothing', async (t) => {
  const { log, opts, operator, key, add, em } = await setup(t);
  log.operator = { name: OPERATOR, vkey: operator.verifierKey };
  const stranger = generateKey('stranger.example/b');
  log.appendRaw([
    add(OPERATOR, operator.verifierKey),
    add(NAME, key.verifierKey),
    add('stranger.example/b', stranger.verifierKey, generateKey(OPERATOR).signerKey),
    writer('stranger.example/b', stranger.signerKey, 's2')({ kind: 'stream.open' }),
    em({ kind: 'stream.open' }),
  ]);
  t.same(at(await runAudit(opts)), ['SIGNATURE_INVALID@2', 'EMITTER_UNREGISTERED@3']);
});

t.test('records after a revocation, and a second registration of a name', async (t) => {
  const { log, opts, operator, key, add, revoke, em } = await setup(t);
  log.operator = { name: OPERATOR, vkey: operator.verifierKey };
  log.appendRaw([
    add(OPERATOR, operator.verifierKey),
    add(NAME, key.verifierKey),
    em({ kind: 'stream.open' }),
    revoke(NAME, key.verifierKey),
    em({ kind: 'app.event' }),
    add(NAME, generateKey(NAME).verifierKey),
  ]);
  // The last: /v1/log still lists the emitter as active, the tree revoked it at entry 3.
  t.same(at(await runAudit(opts)), ['EMITTER_REVOKED@4', 'REGISTRY_INVALID@5', 'EMITTER_REVOKED@3']);
});

t.test('a log older than the registry: keys pinned at first use, then the registry takes over', async (t) => {
  const { log, opts, operator, key, add, em } = await setup(t);
  log.appendRaw([em({ kind: 'stream.open' }), em({ kind: 'app.event' })]);
  t.same(at(await runAudit(opts)), [], 'legacy entries checked with the key /v1/log serves');
  // The log migrates: its operator registers itself and the existing emitter after the old entries.
  log.operator = { name: OPERATOR, vkey: operator.verifierKey };
  log.appendRaw([add(OPERATOR, operator.verifierKey), add(NAME, key.verifierKey), em({ kind: 'app.event' })]);
  t.same(at(await runAudit(opts)), [], 'the registered key is the pinned one');
});

t.test('a log older than the registry whose served key is swapped', async (t) => {
  const { log, opts, em } = await setup(t);
  log.appendRaw([em({ kind: 'stream.open' })]);
  t.same(at(await runAudit(opts)), []);
  const attacker = generateKey(NAME);
  log.emitters.set(NAME, attacker.verifierKey);
  log.appendRaw([em({ kind: 'app.event' }, attacker.signerKey)]);
  t.same(at(await runAudit(opts)), ['SIGNATURE_INVALID@1', 'EMITTER_KEY_CHANGED@0']);
});
