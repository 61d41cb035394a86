// One record the log refuses for good must not stop the ones behind it, in this run or the next on
// the same spool; and the emitter never builds a record or a POST over the log's limits.
import crypto from 'node:crypto';
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import t from 'tap';
import { generateKey, parseEntry } from '../../src/index.js';
import { createEmitter, type EmitterOptions } from '../../src/node-client.js';
import { useNodeCrypto } from '../../src/node.js';
import { sealValue } from '../../src/sealed.js';
import { startFakeLog, type FakeLog } from '../helpers/fake-log.js';

useNodeCrypto();

async function setup(t: {
  teardown(fn: () => unknown): void;
}): Promise<{ log: FakeLog; opts: EmitterOptions }> {
  const k = generateKey('emitter.example/r');
  const log = await startFakeLog({ emitters: new Map([['emitter.example/r', k.verifierKey]]) });
  const spoolDir = await fs.mkdtemp(path.join(os.tmpdir(), 'vigil-refusal-'));
  t.teardown(async () => {
    await log.close();
    await fs.rm(spoolDir, { recursive: true, force: true });
  });
  return {
    log,
    opts: {
      logUrl: log.url,
      key: k.signerKey,
      spoolDir,
      policy: log.policy,
      backoff: { baseMs: 5, maxMs: 50 },
    },
  };
}

type Rec = Record<string, unknown>;
const records = (log: FakeLog): Rec[] => log.entries.map((e) => parseEntry(e).record);
const poison = (r: Rec): { status: number; code: string } | undefined =>
  r['kind'] === 'poison' ? { status: 422, code: 'RECORD_INVALID' } : undefined;

t.test(
  'the bytes of stream.open (openBlobs) travel with every stream.open, also after a rotation',
  async (t) => {
    const { log, opts } = await setup(t);
    log.refuse = poison;
    const sealed = sealValue(['--token', 'x'], new Uint8Array(16).fill(3));
    const hex = sealed.ref.$sealed.sha256;
    const emitter = await createEmitter({
      ...opts,
      lingerMs: 0,
      onError: () => {},
      open: { args: sealed.ref },
      openBlobs: { [hex]: sealed.bytes },
    });
    await emitter.flush();
    t.equal(
      log.blobs.get(hex),
      Buffer.from(sealed.bytes).toString('base64'),
      'the first stream.open carried S',
    );
    log.blobs.clear();
    await t.rejects(emitter.emit({ kind: 'poison' }, { mode: 'sync' }), { code: 'RECORD_REFUSED' });
    await emitter.emit({ kind: 'app.c' }, { mode: 'sync' });
    const opens = records(log).filter((r) => r['kind'] === 'stream.open');
    t.equal(opens.length, 2, 'a new stream was opened');
    t.same(opens[1]!['args'], sealed.ref);
    t.equal(
      log.blobs.get(hex),
      Buffer.from(sealed.bytes).toString('base64'),
      'the rotated stream.open carried S',
    );
    await emitter.close();
  },
);

t.test(
  'a refused record of the current stream: new stream, refusal recorded, the rest re-sent',
  async (t) => {
    const { log, opts } = await setup(t);
    log.refuse = poison;
    const alarms: Error[] = [];
    const emitter = await createEmitter({ ...opts, lingerMs: 50, onError: (e) => alarms.push(e) });
    const first = emitter.stream;
    await emitter.emit({ kind: 'app.a' });
    const refused = emitter.emit({ kind: 'poison' }, { mode: 'sync' });
    const later = emitter.emit({ kind: 'app.c' }, { mode: 'sync' });
    await t.rejects(refused, { code: 'RECORD_REFUSED' }, 'the refused record is not acknowledged');
    const receipt = await later;
    t.ok(receipt !== undefined, 'the record behind it is acknowledged (as its re-sent copy)');
    await emitter.flush();
    t.equal(emitter.alarm, undefined, 'shipping did not stop');
    t.not(emitter.stream, first, 'the emitter moved to a new stream');
    const kinds = records(log).map((r) => `${String(r['kind'])}@${r['stream'] === first ? 1 : 2}`);
    t.same(kinds, ['stream.open@1', 'app.a@1', 'stream.open@2', 'record.refused@2', 'app.c@2']);
    const all = records(log);
    t.match(all[2], { rotated: { stream: first, seq: 2, code: 'RECORD_INVALID' } });
    t.match(all[3], {
      refused: { stream: first, seq: 2, kind: 'poison', status: 422, code: 'RECORD_INVALID' },
      behind: 1,
    });
    t.match(all[4], { resent: { stream: first, seq: 3 } });
    t.match(alarms, [{ code: 'RECORD_REFUSED' }], 'the refusal is alarmed');
    const aside = await fs.readdir(path.join(opts.spoolDir, 'refused'));
    t.same(aside, [`${first}.2.spool`], 'the refused records are kept for the operator');
    await emitter.emit({ kind: 'app.d' }, { mode: 'sync' });
    await emitter.close();
    t.equal(records(log).at(-1)?.['kind'], 'stream.close');
  },
);

t.test(
  'a refused record in the spool: the next run on the same spool sets it aside and goes on',
  async (t) => {
    const { log, opts } = await setup(t);
    // Run 1: the log is down; the records stay spooled (as after a crash).
    const down = await createEmitter({ ...opts, logUrl: 'http://127.0.0.1:9/', lingerMs: 0 });
    const old = down.stream;
    await down.emit({ kind: 'app.a' });
    await down.emit({ kind: 'poison' });
    await down.emit({ kind: 'app.c' });
    await down.shutdown();
    // Run 2, same spool, the log refuses the poison record for good.
    log.refuse = poison;
    const run2 = await createEmitter(opts);
    await run2.emit({ kind: 'app.next' }, { mode: 'sync' });
    await run2.close();
    t.equal(run2.alarm, undefined);
    const all = records(log);
    const kinds = (stream: 'old' | 'new'): string[] =>
      all.filter((r) => (r['stream'] === old) === (stream === 'old')).map((r) => String(r['kind']));
    t.same(kinds('old'), ['stream.open', 'app.a'], 'the old stream is in the log up to the refused record');
    // app.next may be spooled before or after the refusal is handled; the rest is in this order.
    t.same(
      kinds('new').filter((k) => k !== 'app.next'),
      ['stream.open', 'record.refused', 'app.c', 'stream.close'],
    );
    t.ok(kinds('new').includes('app.next'), 'the next record is in the log');
    t.match(
      all.find((r) => r['kind'] === 'record.refused'),
      { refused: { stream: old, seq: 2, kind: 'poison' }, behind: 1 },
    );
    t.match(
      all.find((r) => r['kind'] === 'app.c'),
      { resent: { stream: old, seq: 3 } },
    );
    // Run 3 on the same spool: nothing left to ship, nothing wedged.
    const run3 = await createEmitter(opts);
    await run3.close();
    t.equal(run3.alarm, undefined);
    t.equal(records(log).at(-1)?.['kind'], 'stream.close');
  },
);

t.test('a refusal of the emitter itself still raises the alarm', async (t) => {
  const { log, opts } = await setup(t);
  log.refuse = () => ({ status: 403, code: 'EMITTER_REVOKED' });
  const emitter = await createEmitter(opts);
  await t.rejects(emitter.emit({ kind: 'app.a' }, { mode: 'sync' }), { code: 'EMITTER_REVOKED' });
  await emitter.shutdown();
});

t.test('records and POSTs stay within the limits the log announces', async (t) => {
  const { log, opts } = await setup(t);
  log.maxBodyBytes = 1024 * 1024;
  const emitter = await createEmitter({ ...opts, lingerMs: 0 });
  await emitter.emit({ kind: 'app.warm' }, { mode: 'sync' }); // the emitter has learned the limits
  const blob = (n: number, fill: number): Record<string, Uint8Array> => {
    const bytes = new Uint8Array(n).fill(fill);
    return { [Buffer.from(require256(bytes)).toString('hex')]: bytes };
  };
  await t.rejects(
    emitter.emit({ kind: 'app.huge' }, { blobs: blob(900 * 1024, 1) }),
    { code: 'RECORD_INVALID', message: /the log takes at most 1048576/ },
    'a record whose POST could never fit is refused before it takes a seq',
  );
  await t.rejects(emitter.emit({ kind: 'app.wide', pad: 'x'.repeat(70_000) }), { code: 'RECORD_INVALID' });
  for (let i = 0; i < 6; i++) {
    const bytes = new Uint8Array(300 * 1024).fill(i + 2);
    const hex = Buffer.from(require256(bytes)).toString('hex');
    await emitter.emit(
      { kind: 'app.part', part: { $blob: { sha256: hex, size: bytes.length } } },
      { blobs: { [hex]: bytes } },
    );
  }
  await emitter.close();
  t.equal(emitter.alarm, undefined);
  t.ok(
    Math.max(...log.bodySizes) <= 1024 * 1024,
    `every POST within the limit (${Math.max(...log.bodySizes)})`,
  );
  t.same(
    records(log).map((r) => r['seq']),
    records(log).map((_, i) => i),
    'no seq was taken by the refused records',
  );
  t.equal(records(log).filter((r) => r['kind'] === 'app.part').length, 6);
});

function require256(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(crypto.createHash('sha256').update(bytes).digest());
}
