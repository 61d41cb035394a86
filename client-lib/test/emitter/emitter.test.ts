// Emitter against the in-test log: order, receipts, stream.open/close, 503/429 Retry-After, network
// drops, commit-then-drop (idempotent resend), a bad receipt (alarm, spool kept), restart resume.
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import t from 'tap';
import { generateKey, parseEntry, type Entry } from '../../src/index.js';
import { createEmitter, type EmitterOptions } from '../../src/node-client.js';
import { formatSpoolLine } from '../../src/emitter/spool.js';
import { useNodeCrypto } from '../../src/node.js';
import { startFakeLog, type FakeLog } from '../helpers/fake-log.js';

useNodeCrypto();

async function setup(t: {
  teardown(fn: () => unknown): void;
}): Promise<{ log: FakeLog; key: string; spoolDir: string; opts: EmitterOptions }> {
  const k = generateKey('emitter.example/a');
  const log = await startFakeLog({ emitters: new Map([['emitter.example/a', k.verifierKey]]) });
  const spoolDir = await fs.mkdtemp(path.join(os.tmpdir(), 'vigil-emitter-'));
  t.teardown(async () => {
    await log.close();
    await fs.rm(spoolDir, { recursive: true, force: true });
  });
  return {
    log,
    key: k.signerKey,
    spoolDir,
    opts: {
      logUrl: log.url,
      key: k.signerKey,
      spoolDir,
      policy: log.policy,
      backoff: { baseMs: 5, maxMs: 50 },
    },
  };
}

function entries(log: FakeLog): Entry[] {
  return log.entries.map((e) => parseEntry(e));
}

function streamSeqs(log: FakeLog): string[] {
  return entries(log).map(
    (e) => `${(e.record.stream as string).slice(0, 8)}/${e.record.seq as number}/${e.record.kind as string}`,
  );
}

t.test('records reach the log in order with stream.open first and stream.close last', async (t) => {
  const { log, opts } = await setup(t);
  const em = await createEmitter({ ...opts, open: { command: 'test' } });
  const receipts: bigint[] = [];
  em.on('receipt', (r) => receipts.push(r.index));
  for (let i = 0; i < 20; i++) await em.emit({ kind: 'app.event', n: i });
  await em.close();
  const es = entries(log);
  t.equal(es.length, 22);
  t.same(
    es.map((e) => e.record.seq),
    [...Array(22).keys()],
  );
  t.equal(es[0]!.record.kind, 'stream.open');
  t.equal(es[0]!.record.command, 'test');
  t.equal(es[0]!.record.pid, process.pid);
  t.type(es[0]!.record.host, 'string');
  t.equal(es[21]!.record.kind, 'stream.close');
  t.ok(es.every((e) => e.record.stream === em.stream && e.emitter === 'emitter.example/a'));
  t.ok(es.every((e) => /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/.test(e.record.time as string)));
  t.equal(es[1]!.record.prev !== undefined && es[0]!.record.prev === undefined, true);
  t.same(
    receipts.sort((a, b) => Number(a - b)),
    [...Array(22).keys()].map(BigInt),
  );
});

t.test('reserved fields and a missing kind are refused', async (t) => {
  const { opts } = await setup(t);
  const em = await createEmitter(opts);
  await t.rejects(em.emit({ kind: 'x', seq: 5 }), { code: 'RECORD_INVALID' });
  await t.rejects(em.emit({ kind: '' }), { code: 'RECORD_INVALID' });
  await em.close();
});

t.test('sync mode resolves with a verified receipt', async (t) => {
  const { opts } = await setup(t);
  const em = await createEmitter({ ...opts, mode: 'sync' });
  const r = await em.emit({ kind: 'app.event' });
  t.ok(r);
  t.equal(r!.seq, 1);
  t.equal(r!.index, 1n);
  t.match(r!.receipt, /^c2sp.org\/tlog-proof@v1\n/);
  await em.close();
});

t.test(
  '503 and 429 with Retry-After are honoured; network drops retried; nothing lost or doubled',
  async (t) => {
    const { log, opts } = await setup(t);
    log.faults.push(
      { kind: 'status', status: 503, retryAfter: '1' },
      { kind: 'drop' },
      { kind: 'status', status: 429, retryAfter: '0' },
      { kind: 'status', status: 500 },
    );
    const warnings: string[] = [];
    const started = Date.now();
    const em = await createEmitter({ ...opts, onWarning: (w) => warnings.push(w.message) });
    await em.emit({ kind: 'app.event', n: 1 });
    await em.flush();
    t.ok(Date.now() - started >= 1000, 'waited for Retry-After: 1');
    t.equal(log.posts, 5, 'four faulted attempts and one success');
    t.equal(warnings.length, 4);
    t.match(warnings[0], /503/);
    await em.close();
    t.same(
      entries(log).map((e) => e.record.seq),
      [0, 1, 2],
    );
  },
);

t.test('a batch committed but not answered is resent and answered idempotently', async (t) => {
  const { log, opts } = await setup(t);
  log.faults.push({ kind: 'commit-then-drop' });
  const em = await createEmitter(opts);
  await em.emit({ kind: 'app.event' });
  await em.close();
  t.same(
    entries(log).map((e) => e.record.seq),
    [0, 1, 2],
    'no duplicates in the log',
  );
  t.ok(log.posts >= 2);
});

t.test(
  'a receipt that fails verification is an alarm, not a retry; the spool keeps the records',
  async (t) => {
    const { log, opts, spoolDir } = await setup(t);
    log.faults.push({ kind: 'bad-receipt' });
    const errors: Error[] = [];
    const em = await createEmitter({ ...opts, onError: (e) => errors.push(e) });
    await t.rejects(em.flush(), { name: 'EmitterAlarm', code: 'RECEIPT_INVALID' });
    t.equal(errors.length, 1);
    t.equal(log.posts, 1, 'no retry after a bad receipt');
    t.equal(em.backlog, 1, 'record not trimmed');
    await em.shutdown();
    const lines = (await fs.readdir(path.join(spoolDir, 'segments'))).length;
    t.ok(lines >= 1);
  },
);

t.test('an unknown emitter is retried until it is registered', async (t) => {
  const { log, opts } = await setup(t);
  const saved = log.emitters.get('emitter.example/a')!;
  log.emitters.delete('emitter.example/a');
  const em = await createEmitter(opts);
  const warned = new Promise<void>((resolve) => em.on('warning', () => resolve()));
  await warned;
  log.emitters.set('emitter.example/a', saved);
  await em.close();
  t.equal(log.entries.length, 2);
});

t.test('after a crash the old stream ships first, then the new one; nothing lost or doubled', async (t) => {
  const { log, opts, spoolDir } = await setup(t);
  // Log down for the first run: every POST fails.
  for (let i = 0; i < 1000; i++) log.faults.push({ kind: 'status', status: 503, retryAfter: '0' });
  const first = await createEmitter(opts);
  for (let i = 0; i < 5; i++) await first.emit({ kind: 'app.event', n: i });
  await first.shutdown(); // crash: no stream.close
  t.equal(log.entries.length, 0);
  // A torn write at the end of the first run's segment.
  const seg = path.join(spoolDir, 'segments', (await fs.readdir(path.join(spoolDir, 'segments'))).sort()[0]!);
  await fs.appendFile(
    seg,
    formatSpoolLine({ emitter: 'x', record: { v: 1, stream: 's', seq: 9 }, sig: 'x' }).slice(0, 30),
  );
  log.faults.length = 0;
  const warnings: string[] = [];
  const second = await createEmitter({ ...opts, onWarning: (w) => warnings.push(w.message) });
  t.match(warnings.join('\n'), /torn tail of 30 bytes/);
  t.equal(second.tornTails.length, 1);
  await second.emit({ kind: 'app.event', n: 100 });
  await second.close();
  const es = entries(log);
  t.same(
    es.map((e) => [e.record.stream === first.stream ? 'old' : 'new', e.record.seq]),
    [
      ['old', 0],
      ['old', 1],
      ['old', 2],
      ['old', 3],
      ['old', 4],
      ['old', 5],
      ['new', 0],
      ['new', 1],
      ['new', 2],
    ],
  );
  t.equal(streamSeqs(log).at(-1)!.endsWith('stream.close'), true);
});

t.test('two emitters cannot share a spool', async (t) => {
  const { opts } = await setup(t);
  const a = await createEmitter(opts);
  await t.rejects(createEmitter(opts), { name: 'SpoolLockedError' });
  await a.close();
});

t.test('without a policy the log key is trusted on first use, with a warning', async (t) => {
  const { opts } = await setup(t);
  const warnings: string[] = [];
  const { policy: _p, ...rest } = opts;
  const em = await createEmitter({ ...rest, onWarning: (w) => warnings.push(w.message) });
  await em.close();
  t.match(warnings.join('\n'), /trust on first use/);
});

t.test('blobs are spooled and submitted with their record', async (t) => {
  const { log, opts } = await setup(t);
  const em = await createEmitter(opts);
  const bytes = new TextEncoder().encode('a large payload');
  const hex = 'ab'.repeat(32);
  await em.emit(
    { kind: 'mcp.message', body: { $blob: { sha256: hex, size: bytes.length } } },
    { blobs: { [hex]: bytes } },
  );
  await em.close();
  t.equal(log.blobs.get(hex), Buffer.from(bytes).toString('base64'));
});
