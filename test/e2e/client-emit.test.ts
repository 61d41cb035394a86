// End to end: the emitter against the real log process. Records survive a log crash (kill -9) and
// restart, connection refusals while it is down, and an emitter crash with a non-empty spool; the
// audit afterwards finds every record exactly once, in order, with nothing else.
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import t from 'tap';
import { LogClient, decodeEntryBundle, generateKey, parseEntry, parsePolicy, runAudit } from '@vigil/client';
import { createEmitter, memoryAuditStorage, useNodeCrypto } from '@vigil/client/node';
import { startLog, type LogProcess } from '../helpers/log.js';

useNodeCrypto();

const log = await startLog();
t.teardown(() => log.stop());

async function entriesOf(log: LogProcess): Promise<{ stream: string; seq: number; kind: string }[]> {
  const client = new LogClient(log.url);
  const report = await runAudit({ client, policy: parsePolicy(log.policy), storage: memoryAuditStorage() });
  if (!report.ok) throw new Error(`audit not clean: ${JSON.stringify(report.problems)}`);
  const size = BigInt(report.size);
  const out: { stream: string; seq: number; kind: string }[] = [];
  for (let tile = 0n; tile * 256n < size; tile++) {
    const width = Number(size - tile * 256n >= 256n ? 256n : size - tile * 256n);
    for (const e of decodeEntryBundle(await client.readEntryBundle(tile, width))) {
      const r = parseEntry(e).record;
      out.push({ stream: r.stream as string, seq: r.seq as number, kind: r.kind as string });
    }
  }
  return out;
}

t.test('emit through a log crash and restart without loss or duplicates', async (t) => {
  const k = generateKey('e2e.example/emitter');
  await log.addEmitter('e2e.example/emitter', k.verifierKey);
  const spoolDir = await fs.mkdtemp(path.join(os.tmpdir(), 'vigil-e2e-spool-'));
  t.teardown(() => fs.rm(spoolDir, { recursive: true, force: true }));
  const warnings: string[] = [];
  const em = await createEmitter({
    logUrl: log.url,
    key: k.signerKey,
    spoolDir,
    policy: log.policy,
    backoff: { baseMs: 20, maxMs: 200 },
    onWarning: (w) => warnings.push(w.message),
  });
  for (let i = 0; i < 30; i++) await em.emit({ kind: 'app.event', i });
  await em.flush();
  t.equal(await log.kill('SIGKILL'), 128, 'log crashed');
  // While the log is down, emits still resolve (durable in the spool); shipping gets refusals.
  for (let i = 30; i < 60; i++) await em.emit({ kind: 'app.event', i });
  t.ok(em.backlog > 0, 'records wait in the spool');
  await log.restart();
  for (let i = 60; i < 90; i++) await em.emit({ kind: 'app.event', i });
  await em.close();
  t.ok(
    warnings.some((w) => /cannot reach|ECONNREFUSED|fetch failed/.test(w)),
    'network errors were retried',
  );
  const es = (await entriesOf(log)).filter((e) => e.stream === em.stream);
  t.same(
    es.map((e) => e.seq),
    [...Array(92).keys()],
    'every record exactly once, in order',
  );
  t.equal(es[0]!.kind, 'stream.open');
  t.equal(es[91]!.kind, 'stream.close');
});

t.test('an emitter crash leaves its spool; the next run ships it first', async (t) => {
  const k = generateKey('e2e.example/crashy');
  await log.addEmitter('e2e.example/crashy', k.verifierKey);
  const spoolDir = await fs.mkdtemp(path.join(os.tmpdir(), 'vigil-e2e-spool-'));
  t.teardown(() => fs.rm(spoolDir, { recursive: true, force: true }));
  const opts = {
    logUrl: log.url,
    key: k.signerKey,
    spoolDir,
    policy: log.policy,
    backoff: { baseMs: 20, maxMs: 200 },
  };
  await log.kill('SIGKILL');
  const first = await createEmitter(opts);
  for (let i = 0; i < 10; i++) await first.emit({ kind: 'app.event', i });
  await first.shutdown(); // the emitter "crashes" with 11 records spooled
  await log.restart();
  const second = await createEmitter(opts);
  await second.emit({ kind: 'app.event', i: 100 });
  await second.close();
  const es = (await entriesOf(log)).filter((e) => e.stream === first.stream || e.stream === second.stream);
  t.same(
    es.map((e) => `${e.stream === first.stream ? 'old' : 'new'}/${e.seq}`),
    [...[...Array(11).keys()].map((i) => `old/${i}`), 'new/0', 'new/1', 'new/2'],
  );
});

t.test('sync mode resolves with a receipt from the real log', async (t) => {
  const k = generateKey('e2e.example/sync');
  await log.addEmitter('e2e.example/sync', k.verifierKey);
  const spoolDir = await fs.mkdtemp(path.join(os.tmpdir(), 'vigil-e2e-spool-'));
  t.teardown(() => fs.rm(spoolDir, { recursive: true, force: true }));
  const em = await createEmitter({
    logUrl: log.url,
    key: k.signerKey,
    spoolDir,
    policy: log.policy,
    mode: 'sync',
  });
  const r = await em.emit({ kind: 'app.call', tool: 'x' });
  t.equal(r?.seq, 1);
  t.match(r?.receipt, new RegExp(`^c2sp.org/tlog-proof@v1\nindex ${r?.index}\n`));
  await em.close();
});
