// How the emitter's shipper schedules POSTs (latency work): a sync record does not wait behind the POST
// in flight, spool-mode records share a POST while they linger, a sync record or flush() ends the
// linger, and an entry the log answers with must be exactly our record (checked without a bundle fetch).
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import t from 'tap';
import { base64Encode, formatEntry, generateKey, parseEntry, type Entry } from '../../src/index.js';
import { createEmitter, type EmitterOptions } from '../../src/node-client.js';
import { useNodeCrypto } from '../../src/node.js';
import { startFakeLog, type FakeLog } from '../helpers/fake-log.js';

useNodeCrypto();

interface Posted {
  kinds: string[];
}

async function setup(
  t: { teardown(fn: () => unknown): void },
  fetchFn?: typeof fetch,
): Promise<{ log: FakeLog; opts: EmitterOptions }> {
  const k = generateKey('emitter.example/a');
  const log = await startFakeLog({ emitters: new Map([['emitter.example/a', k.verifierKey]]) });
  const spoolDir = await fs.mkdtemp(path.join(os.tmpdir(), 'vigil-shipping-'));
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
      ...(fetchFn !== undefined ? { fetch: fetchFn } : {}),
    },
  };
}

function entries(log: FakeLog): Entry[] {
  return log.entries.map((e) => parseEntry(e));
}

function kindsOf(init: RequestInit | undefined): string[] {
  const body = JSON.parse(String(init?.body)) as { entries: { record: { kind: string } }[] };
  return body.entries.map((e) => e.record.kind);
}

/** Polls `cond` until it holds or `ms` pass. */
async function until(cond: () => boolean, ms = 5000): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) return false;
    await new Promise((r) => setImmediate(r));
  }
  return true;
}

t.test(
  'a sync record is posted at once, with everything before it, while an older POST is held',
  async (t) => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const posted: Posted[] = [];
    let held = false;
    const fetchFn: typeof fetch = async (input, init) => {
      if (init?.method === 'POST') {
        const kinds = kindsOf(init);
        posted.push({ kinds });
        // Hold the first POST carrying 'answer' before it reaches the log: the sync POST overtakes it.
        if (kinds.includes('answer') && !held) {
          held = true;
          await gate;
        }
      }
      return fetch(input, init);
    };
    const { log, opts } = await setup(t, fetchFn);
    const em = await createEmitter({ ...opts, lingerMs: 0, syncTimeoutMs: 5000 });
    await em.emit({ kind: 'answer' });
    t.ok(await until(() => held), 'the POST with the answer is out and held');
    const r = await em.emit({ kind: 'request' }, { mode: 'sync' });
    t.equal(r?.seq, 2, 'the sync emit resolved while the older POST was still held');
    t.same(posted.at(-1)!.kinds.slice(-2), ['answer', 'request'], 'the sync POST carried the answer too');
    release();
    await em.close();
    t.same(
      entries(log).map((e) => `${e.record.seq}/${e.record.kind as string}`),
      ['0/stream.open', '1/answer', '2/request', '3/stream.close'],
      'seq order on the log, the resent answer not doubled',
    );
    t.equal(em.backlog, 0);
  },
);

t.test('spool-mode records linger and share one POST', async (t) => {
  const { log, opts } = await setup(t);
  const em = await createEmitter({ ...opts, lingerMs: 300 });
  await Promise.all([1, 2, 3, 4, 5].map((n) => em.emit({ kind: 'app.event', n })));
  t.ok(await until(() => log.entries.length === 6), 'all six records on the log');
  t.equal(log.posts, 1, 'stream.open and the five events went in one POST');
  await em.close();
});

t.test('a sync record and flush() end the linger at once', async (t) => {
  const { log, opts } = await setup(t);
  const em = await createEmitter({ ...opts, lingerMs: 60_000 });
  const started = Date.now();
  await em.emit({ kind: 'answer' });
  const r = await em.emit({ kind: 'request' }, { mode: 'sync' });
  t.equal(r?.seq, 2);
  t.equal(log.posts, 1, 'stream.open, the answer and the request in one POST');
  await em.emit({ kind: 'later' });
  await em.flush();
  t.equal(log.entries.length, 4);
  t.ok(Date.now() - started < 30_000, 'neither waited for the 60 s linger');
  await em.close();
});

t.test('an entry in the answer that is not exactly our record is an alarm', async (t) => {
  const fetchFn: typeof fetch = async (input, init) => {
    const res = await fetch(input, init);
    if (init?.method !== 'POST') return res;
    // The log answers with a well-formed entry whose record differs from the one we sent.
    const sent = JSON.parse(String(init.body)) as {
      entries: { emitter: string; record: Record<string, unknown>; sig: string }[];
    };
    const body = (await res.json()) as { entries: { entry?: string }[] };
    const s = sent.entries[0]!;
    const wrong = formatEntry({
      received: '2026-01-01T00:00:00.000Z',
      emitter: s.emitter,
      peer: '',
      record: { ...s.record, extra: true },
      sig: s.sig,
    });
    body.entries[0]!.entry = base64Encode(wrong);
    return new Response(JSON.stringify(body), { status: res.status });
  };
  const { opts } = await setup(t, fetchFn);
  const em = await createEmitter(opts);
  await t.rejects(em.flush(), { name: 'EmitterAlarm', code: 'RECEIPT_INVALID' });
  t.match(em.alarm?.cause, { code: 'RECORD_INVALID', message: /does not hold record/ });
  t.equal(em.backlog, 1, 'record not trimmed');
  await em.shutdown();
});
