// End to end, the DBA attacks on emitter keys (DESIGN.md "Log server", Emitter administration: the keys
// an auditor checks against come from the tree, not from a mutable table), on a log on Postgres:
//   - a superuser swaps an emitter's vkey in the `emitters` table and submits a record signed by the
//     attacker key: the log refuses it (its registry in the tree holds the real key), and the next
//     incremental `vigil audit --state` flags the key the database now serves, naming the index of the
//     emitter's registration;
//   - a superuser deletes an entry row (append-only trigger off): `vigil audit` names the cause (the
//     log's 500 on the entry bundle, with the tile and its entries), exits 2 and prints no stack trace.
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import pg from 'pg';
import t from 'tap';
import { generateKey, operatorNameFor, signRecord } from '@vigil/client';
import { useNodeCrypto } from '@vigil/client/node';
import { storeSkipReason } from '@vigil/server';
import { auditHelpers, exits } from '../helpers/audit.js';
import { startLog, until } from '../helpers/log.js';

useNodeCrypto();

const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'vigil-e2e-registry-'));
t.teardown(() => fs.rm(tmp, { recursive: true, force: true }));
const { emitSome, audit } = auditHelpers(tmp);
const pgUrl = process.env.TEST_DATABASE_URL;
// Skipped only when this pass runs the embedded store alone, or outside CI without TEST_DATABASE_URL.
const pgSkip = storeSkipReason('postgres') ?? false;

interface Report {
  ok: boolean;
  newProblems: { code: string; index?: string; message: string }[];
}

async function superuser<T>(url: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

t.test('a swapped emitter key: refused by the log, flagged by the audit', { skip: pgSkip }, async (t) => {
  if (pgUrl === undefined) throw new Error('TEST_DATABASE_URL must be set in CI');
  const log = await startLog({ postgresUrl: pgUrl });
  t.teardown(() => log.stop());
  const victim = 'e2e.example/victim';
  await emitSome(log, victim, 3);
  const state = path.join(tmp, 'state-swap');
  const clean = await audit(log, '--state', state);
  exits(t, clean, 0, 'the first audit is clean');

  // The registration the auditor will name: the victim's emitter.add in the tree.
  const info = (await (await fetch(`${log.url}v1/log`)).json()) as {
    operator?: { name: string; vkey: string };
  };
  t.equal(info.operator?.name, operatorNameFor(log.origin), '/v1/log names the operator emitter');
  const reader = await log.addReader('auditor');
  const search = (await (
    await fetch(`${log.url}v1/search?emitter=${encodeURIComponent(operatorNameFor(log.origin))}`, {
      headers: { authorization: `Bearer ${reader}` },
    })
  ).json()) as { entries: { index: string; entry: { record: Record<string, unknown> } }[] };
  const registration = search.entries.find(
    (e) => e.entry.record.kind === 'emitter.add' && e.entry.record.name === victim,
  );
  t.ok(registration, "the victim's registration is a record in the tree");

  // The DBA swaps the key.
  const attacker = generateKey(victim);
  const swapped = await superuser(log.databaseUrl!, (c) =>
    c.query('UPDATE emitters SET vkey = $1 WHERE name = $2', [attacker.verifierKey, victim]),
  );
  t.equal(swapped.rowCount, 1, 'the emitters row now holds the attacker key');

  // A record forged under the attacker key. Until the log's emitter cache (a few seconds) re-reads
  // the row, the forged signature fails against the real key; after that, the table says attacker.
  const record = {
    v: 1,
    stream: randomUUID(),
    seq: 0,
    time: new Date().toISOString(),
    kind: 'app.event',
    forged: true,
  };
  const body = JSON.stringify({
    entries: [{ emitter: victim, record, sig: signRecord(record, attacker.signerKey) }],
  });
  let answer: { status: number; code?: string; message?: string } = { status: 0 };
  await until('the log reads the swapped row', async () => {
    const res = await fetch(`${log.url}v1/entries`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body,
    });
    const json = (await res.json()) as { code?: string; message?: string };
    answer = { status: res.status, ...json };
    return !(res.status === 403 && json.code === 'SIGNATURE_INVALID');
  });
  t.equal(answer.status, 403, `the forged record is refused (${JSON.stringify(answer)})`);
  t.equal(answer.code, 'EMITTER_KEY_MISMATCH', 'because the tree registered another key');
  await until('the log records the swapped row as an incident', async () => {
    const { incidents } = (await (await fetch(`${log.url}v1/incidents`)).json()) as {
      incidents: { kind: string; emitter: string; index: string | null }[];
    };
    return incidents.some(
      (i) => i.kind === 'emitter_key_mismatch' && i.emitter === victim && i.index === registration?.index,
    );
  });

  // The next incremental audit: the database serves a key the tree never registered.
  const r = await audit(log, '--state', state, '--json');
  exits(t, r, 1, 'the audit after the swap exits 1');
  const report = JSON.parse(r.stdout) as Report;
  t.ok(
    report.newProblems.some((p) => p.code === 'EMITTER_KEY_MISMATCH' && p.index === registration?.index),
    `EMITTER_KEY_MISMATCH names the registration at entry ${registration?.index}: ${JSON.stringify(report.newProblems)}`,
  );
  t.notOk(
    report.newProblems.some((p) => p.code === 'SIGNATURE_INVALID'),
    'no forged entry reached the tree',
  );
});

t.test('a deleted entry row: the audit names the cause, no stack trace', { skip: pgSkip }, async (t) => {
  if (pgUrl === undefined) throw new Error('TEST_DATABASE_URL must be set in CI');
  const log = await startLog({ postgresUrl: pgUrl });
  t.teardown(() => log.stop());
  // Two bundles: the first one's signature checks are in flight when the second one's read fails.
  await emitSome(log, 'e2e.example/deleted', 520);
  const gone = await superuser(log.databaseUrl!, async (c) => {
    await c.query('ALTER TABLE entries DISABLE TRIGGER ALL');
    const res = await c.query('DELETE FROM entries WHERE leaf_index = 300');
    await c.query('ALTER TABLE entries ENABLE TRIGGER ALL');
    return res.rowCount;
  });
  t.equal(gone, 1, 'entry row 300 deleted');
  const r = await audit(log);
  exits(t, r, 2, 'the audit cannot run: exit 2');
  t.match(
    r.stderr,
    /^vigil: entry bundle 1 \(entries 256\.\.\d+\) could not be read: \S+tile\/entries\/001(\.p\/\d+)?: 500 /,
    'names the bundle, its entries and the URL',
  );
  t.match(r.stderr, /500/, "names the log's answer");
  t.notMatch(r.stderr, /signature verifier closed/, 'not the verifier shutting down');
  t.notMatch(r.stderr + r.stdout, /\n\s+at /, 'no stack trace');
});
