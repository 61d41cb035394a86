// The auditor against the in-test tlog-tiles log: clean, incremental, gap, duplicate, broken prev,
// bad signature, unknown emitter, tampered entry, rollback, clock skew, unclosed streams.
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
  utf8,
  type AuditOptions,
} from '../../src/index.js';
import { createEmitter, fileAuditStorage } from '../../src/node-client.js';
import { useNodeCrypto } from '../../src/node.js';
import { startFakeLog, type FakeLog } from '../helpers/fake-log.js';

useNodeCrypto();

const NAME = 'emitter.example/a';
const key = generateKey(NAME, new Uint8Array(32).fill(3));

/** Signed entries of one stream with the given seqs (prev chained over the records actually built). */
function streamEntries(
  stream: string,
  seqs: number[],
  options: {
    kinds?: Record<number, string>;
    time?: string;
    badSigAt?: number;
    emitter?: string;
    skipPrevAt?: number;
  } = {},
): Uint8Array[] {
  let prev: string | undefined;
  return seqs.map((seq) => {
    const record: Record<string, unknown> = {
      v: 1,
      stream,
      seq,
      ...(prev !== undefined && seq !== options.skipPrevAt ? { prev } : {}),
      time: options.time ?? new Date().toISOString(),
      kind: options.kinds?.[seq] ?? (seq === 0 ? 'stream.open' : 'app.event'),
    };
    if (seq === options.skipPrevAt) record.prev = 'AAAA';
    prev = recordHash(record);
    const sig =
      seq === options.badSigAt
        ? signRecord({ ...record, seq: 99 }, key.signerKey)
        : signRecord(record, key.signerKey);
    return formatEntry({
      received: new Date().toISOString(),
      emitter: options.emitter ?? NAME,
      peer: '127.0.0.1',
      record,
      sig,
    });
  });
}

async function setup(t: {
  teardown(fn: () => unknown): void;
}): Promise<{ log: FakeLog; opts: AuditOptions; stateDir: string }> {
  const log = await startFakeLog({ emitters: new Map([[NAME, key.verifierKey]]) });
  const stateDir = await fs.mkdtemp(path.join(os.tmpdir(), 'vigil-audit-'));
  t.teardown(async () => {
    await log.close();
    await fs.rm(stateDir, { recursive: true, force: true });
  });
  return {
    log,
    stateDir,
    opts: {
      client: new LogClient(log.url),
      policy: parsePolicy(log.policy),
      storage: fileAuditStorage(stateDir),
    },
  };
}

const close = { kinds: { 3: 'stream.close' } };

t.test('a clean log audits clean, and a second run reads only new tiles', async (t) => {
  const { log, opts, stateDir } = await setup(t);
  const spoolDir = await fs.mkdtemp(path.join(os.tmpdir(), 'vigil-audit-spool-'));
  t.teardown(() => fs.rm(spoolDir, { recursive: true, force: true }));
  const em = await createEmitter({ logUrl: log.url, key: key.signerKey, spoolDir, policy: log.policy });
  for (let i = 0; i < 300; i++) await em.emit({ kind: 'app.event', i });
  await em.close();
  const r1 = await runAudit(opts);
  t.equal(r1.ok, true);
  t.same(r1.problems, []);
  t.equal(r1.size, '302');
  t.equal(r1.entriesChecked, '302');
  t.same(r1.emitters, { [NAME]: 302 });
  t.same(r1.streams, { total: 1, closed: 1, open: [] });

  log.requests.length = 0;
  const r2 = await runAudit(opts);
  t.equal(r2.ok, true);
  t.equal(r2.entriesChecked, '0');
  t.same(
    log.requests.filter((p) => p.startsWith('tile/')),
    [],
    'nothing new: no tiles read',
  );

  log.appendRaw(streamEntries('s2', [0, 1, 2, 3], close));
  log.requests.length = 0;
  const r3 = await runAudit(opts);
  t.equal(r3.ok, true);
  t.equal(r3.entriesChecked, '4');
  t.same(
    log.requests.filter((p) => p.startsWith('tile/entries')),
    ['tile/entries/001.p/50'],
    'only the bundle holding the new entries',
  );
  t.ok((await fs.readdir(stateDir)).includes('audit-state.json'));
});

t.test('a record dropped from a stream is a gap naming the entry', async (t) => {
  const { log, opts } = await setup(t);
  log.appendRaw(streamEntries('s1', [0, 1, 3, 4], { kinds: { 4: 'stream.close' } }));
  const r = await runAudit(opts);
  t.equal(r.ok, false);
  t.same(
    r.problems.map((p) => [p.code, p.index]),
    [['SEQ_GAP', '2']],
  );
  t.match(r.problems[0]!.message, /jumps from seq 1 \(entry 1\) to 3; 1 record\(s\) missing/);
  const again = await runAudit(opts);
  t.equal(again.ok, false, 'a later run still reports the gap');
  t.same(again.newProblems, []);
});

t.test('duplicates, broken prev chains, bad signatures, unknown emitters, skew', async (t) => {
  const { log, opts } = await setup(t);
  const other = generateKey('emitter.example/b');
  log.appendRaw([
    ...streamEntries('dup', [0, 1, 1, 2, 3], close), // 0..4 (seq 2 chains to the second seq 1)
    ...streamEntries('prev', [0, 1, 2, 3], { ...close, skipPrevAt: 2 }), // 5..8
    ...streamEntries('sig', [0, 1, 2, 3], { ...close, badSigAt: 1 }), // 9..12
    formatEntry({
      received: new Date().toISOString(),
      emitter: 'emitter.example/b',
      peer: 'x',
      record: { v: 1, stream: 'u', seq: 0, time: new Date().toISOString(), kind: 'stream.close' },
      sig: signRecord({ v: 1 }, other.signerKey),
    }), // 13
    ...streamEntries('skew', [0, 1, 2, 3], {
      ...close,
      time: new Date(Date.now() + 3_600_000).toISOString(),
    }), // 14..17
  ]);
  const r = await runAudit({ ...opts, maxSkewMs: 60_000 });
  t.same(
    r.problems.map((p) => `${p.code}@${p.index}`),
    [
      'SEQ_DUPLICATE@2',
      'PREV_MISMATCH@3',
      'PREV_MISMATCH@7',
      'SIGNATURE_INVALID@10',
      'EMITTER_UNKNOWN@13',
      'CLOCK_SKEW@14',
      'CLOCK_SKEW@15',
      'CLOCK_SKEW@16',
      'CLOCK_SKEW@17',
    ],
  );
});

t.test('an altered entry is named; the state does not advance past a broken tree', async (t) => {
  const { log, opts, stateDir } = await setup(t);
  log.appendRaw(streamEntries('s', [0, 1, 2, 3], close));
  const r1 = await runAudit(opts);
  t.equal(r1.ok, true);
  log.appendRaw(streamEntries('s2', [0, 1, 2, 3], close));
  const altered = utf8(new TextDecoder().decode(log.entries[5]!).replace('"seq":1', '"seq":7'));
  log.tamper.set(5n, altered);
  const r2 = await runAudit(opts);
  t.equal(r2.ok, false);
  t.same(r2.newProblems.map((p) => `${p.code}@${p.index ?? '-'}`).slice(0, 2), [
    'LEAF_HASH_MISMATCH@5',
    'SIGNATURE_INVALID@5',
  ]);
  t.ok(r2.newProblems.some((p) => p.code === 'ROOT_MISMATCH'));
  const state = JSON.parse(await fs.readFile(path.join(stateDir, 'audit-state.json'), 'utf8')) as {
    size: string;
  };
  t.equal(state.size, '4', 'state still at the last good size');
  log.tamper.clear();
  const r3 = await runAudit(opts);
  t.equal(r3.ok, true, 'rechecked from the last good size');
  t.equal(r3.entriesChecked, '4');
});

t.test('an entry altered after it was audited is caught when its bundle is read again', async (t) => {
  const { log, opts } = await setup(t);
  log.appendRaw(streamEntries('s', [0, 1, 2, 3], close));
  t.equal((await runAudit(opts)).ok, true);
  log.tamper.set(1n, utf8(new TextDecoder().decode(log.entries[1]!).replace('app.event', 'app.other')));
  log.appendRaw(streamEntries('s2', [0, 1, 2, 3], close));
  const r = await runAudit(opts);
  t.equal(r.ok, false);
  t.same(
    r.newProblems.map((p) => `${p.code}@${p.index}`),
    ['LEAF_HASH_MISMATCH@1'],
  );
  t.match(r.newProblems[0]!.message, /entry 1 changed since the last audit/);
});

t.test('a rolled-back checkpoint is caught by the stored state', async (t) => {
  const { log, opts } = await setup(t);
  log.appendRaw(streamEntries('s', [0, 1, 2, 3], close));
  const small = log.notes.get(4n)!;
  log.appendRaw(streamEntries('s2', [0, 1, 2, 3], close));
  t.equal((await runAudit(opts)).ok, true);
  log.checkpointOverride = small;
  const r = await runAudit(opts);
  t.equal(r.ok, false);
  t.equal(r.newProblems[0]!.code, 'CHECKPOINT_ROLLBACK');
  t.match(r.newProblems[0]!.message, /presented size 4, already verified size 8/);
  t.equal(r.size, '8');
});

t.test('unclosed streams are listed, and fail only with failOnUnclosed', async (t) => {
  const { log, opts } = await setup(t);
  log.appendRaw(streamEntries('open', [0, 1]));
  const r = await runAudit(opts);
  t.equal(r.ok, true);
  t.same(r.streams.open, [{ stream: 'open', emitter: NAME, lastIndex: '1', lastSeq: 1 }]);
  const strict = await runAudit({ ...opts, failOnUnclosed: true });
  t.equal(strict.ok, false);
  t.same(
    strict.problems.map((p) => `${p.code}@${p.index}`),
    ['STREAM_UNCLOSED@1'],
  );
});

t.test('emitter keys from an independent list override the log', async (t) => {
  const { log, opts } = await setup(t);
  log.appendRaw(streamEntries('s', [0, 1, 2, 3], close));
  const r = await runAudit({ ...opts, emitterKeys: new Map([[NAME, generateKey(NAME).verifierKey]]) });
  t.same(
    r.problems.map((p) => p.code),
    ['SIGNATURE_INVALID', 'SIGNATURE_INVALID', 'SIGNATURE_INVALID', 'SIGNATURE_INVALID'],
  );
});
