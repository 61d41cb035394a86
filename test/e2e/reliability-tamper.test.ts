// Tampering as a Postgres superuser with the append-only triggers disabled, against the real log
// process. Each case changes the database behind a stopped log, restarts it, and names the detector:
//   - entries (change a byte, delete a row, swap two rows) and tree_nodes (change a hash):
//     the server's start-up check (full rehash) halts the sequencer: /healthz 503, writes refused;
//   - restoring an older backup (entries, nodes, checkpoints and tree head rewound): the server starts
//     clean (the old state is self-consistent), and `vigil audit` with the state of an earlier run
//     reports the rollback; the log may not sign again at the old size without signing a fork.
// Every case undoes its change afterwards and checks that the log is healthy again, so the detection
// is caused by the tampering and nothing else.
import t from 'tap';
import pg from 'pg';
import { storeSkipReason } from '@vigil/server';
import { generateKey, LogClient, parsePolicy, runAudit, signRecord } from '@vigil/client';
import { memoryAuditStorage, useNodeCrypto } from '@vigil/client/node';
import { spawn } from 'node:child_process';
import { serverMain, startLog, until, type LogProcess } from '../helpers/log.js';

useNodeCrypto();

const base = process.env.TEST_DATABASE_URL;
// Skipped only when this pass runs the embedded store alone, or outside CI without TEST_DATABASE_URL.
const skip = storeSkipReason('postgres');
if (!skip && !base) throw new Error('TEST_DATABASE_URL is not set (required in CI)');

const EMITTER = 'tamper.test/emitter';
const key = generateKey(EMITTER);
const STREAM = '3f1c2b7a-1d4e-4a8b-9c0d-1e2f3a4b5c6d';

/** Submits records seq from..to-1 of one stream in one request; returns their indices. */
async function submit(
  log: LogProcess,
  from: number,
  to: number,
  prevHash: { value?: string },
): Promise<void> {
  const { recordHash } = await import('@vigil/client');
  const entries = [];
  for (let seq = from; seq < to; seq++) {
    const record: Record<string, unknown> = {
      v: 1,
      stream: STREAM,
      seq,
      time: new Date().toISOString(),
      kind: seq === 0 ? 'stream.open' : 'app.event',
      n: seq,
    };
    if (prevHash.value !== undefined) record.prev = prevHash.value;
    prevHash.value = recordHash(record);
    entries.push({ emitter: EMITTER, record, sig: signRecord(record, key.signerKey) });
  }
  const res = await fetch(`${log.url}v1/entries`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ entries }),
  });
  if (res.status !== 200) throw new Error(`submit ${from}..${to}: ${res.status} ${await res.text()}`);
}

async function health(log: LogProcess): Promise<{ status: number; body: string }> {
  const res = await fetch(`${log.url}healthz`);
  return { status: res.status, body: await res.text() };
}

/** Runs SQL as the superuser with user triggers off (what a DBA or an attacker with root can do). */
async function asSuperuser(url: string, statements: string[]): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query('set session_replication_role = replica');
    for (const s of statements) await client.query(s);
  } finally {
    await client.end();
  }
}

t.test(
  'superuser tampering with each table is detected, and the test names the detector',
  { skip },
  async (t) => {
    t.setTimeout(200_000);
    const log = await startLog({
      postgresUrl: base!,
      origin: 'tamper.test/log',
      args: ['--verify-on-start', 'full'],
    });
    t.teardown(() => log.stop());
    await log.addEmitter(EMITTER, key.verifierKey);
    const prev: { value?: string } = {};
    // 300 entries: one full level-0 tile, so tree_nodes holds a level-8 hash.
    await submit(log, 0, 150, prev);
    await submit(log, 150, 300, prev);
    const url = log.databaseUrl!;
    const policy = parsePolicy(log.policy);
    const auditState = memoryAuditStorage();
    const clean = await runAudit({ client: new LogClient(log.url), policy, storage: auditState });
    t.equal(clean.newProblems.length, 0, 'clean audit before tampering (the state is kept for later runs)');

    /**
     * Runs `vigil-server serve` on the tampered database (same data dir, port and key) until /healthz
     * answers with any status, hands the answer and the output to `check`, then stops it. The helper's
     * restart() wants a healthy log, which a tampered one must not be.
     */
    const serveTampered = async (check: (h: { status: number; body: string }, output: string) => void) => {
      const child = spawn(
        process.execPath,
        [serverMain, 'serve', '--data-dir', log.dataDir, '--host', '127.0.0.1', '--port', String(log.port)],
        { env: { ...process.env, DATABASE_URL: url, LOG_LEVEL: 'info' }, stdio: ['ignore', 'pipe', 'pipe'] },
      );
      let output = '';
      child.stdout.setEncoding('utf8').on('data', (d: string) => (output += d));
      child.stderr.setEncoding('utf8').on('data', (d: string) => (output += d));
      const exit = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
      let answer: { status: number; body: string } | undefined;
      let exited = false;
      void exit.then(() => (exited = true));
      await until(
        'tampered log answers /healthz',
        async () => {
          if (exited) return true;
          try {
            answer = await health(log);
            return true;
          } catch {
            return false;
          }
        },
        60_000,
      );
      child.kill('SIGTERM');
      await exit;
      check(answer ?? { status: 0, body: 'exited before answering' }, output);
    };

    /** Stops the log, applies `tamper`, serves the tampered store, checks, undoes, and wants health. */
    const tamperCase = async (name: string, tamper: string[], undo: string[]): Promise<void> => {
      t.equal(await log.kill('SIGTERM'), 0, `${name}: log stopped cleanly`);
      await asSuperuser(url, tamper);
      await serveTampered((h, output) => {
        t.equal(h.status, 503, `${name}: detected by the server's start-up check (/healthz 503)`);
        t.match(h.body, /halted/, `${name}: the sequencer is halted`);
        t.match(output, /REFUSING TO SEQUENCE/, `${name}: logged at error`);
      });
      await asSuperuser(url, undo);
      await log.restart();
      t.equal((await health(log)).status, 200, `${name}: healthy again once the change is undone`);
    };

    await tamperCase(
      'entries: change a byte of an entry',
      [
        'create table saved_entry as select * from entries where leaf_index = 9',
        `update entries set entry = overlay(entry placing '\\x20'::bytea from 3 for 1) where leaf_index = 9`,
      ],
      [
        'update entries e set entry = s.entry from saved_entry s where e.leaf_index = s.leaf_index',
        'drop table saved_entry',
      ],
    );
    await tamperCase(
      'entries: delete a row',
      [
        'create table saved_entry as select * from entries where leaf_index = 42',
        'delete from entries where leaf_index = 42',
      ],
      ['insert into entries select * from saved_entry', 'drop table saved_entry'],
    );
    await tamperCase(
      'entries: reorder two rows',
      [
        'create table saved_entry as select * from entries where leaf_index in (10, 11)',
        'update entries set leaf_index = -1 where leaf_index = 10',
        'update entries set leaf_index = 10 where leaf_index = 11',
        'update entries set leaf_index = 11 where leaf_index = -1',
      ],
      [
        'delete from entries where leaf_index in (10, 11)',
        'insert into entries select * from saved_entry',
        'drop table saved_entry',
      ],
    );
    await tamperCase(
      'tree_nodes: change a stored hash',
      ['create table saved_node as select * from tree_nodes', `update tree_nodes set hash = sha256(hash)`],
      ['delete from tree_nodes', 'insert into tree_nodes select * from saved_node', 'drop table saved_node'],
    );

    // Restore an older backup: rewind everything to size 150 (what a restore of an old dump gives).
    t.equal(await log.kill('SIGTERM'), 0, 'restore: log stopped');
    const c2 = new pg.Client({ connectionString: url });
    await c2.connect();
    const old = (
      await c2.query(
        'select tree_size, root_hash, note from checkpoints where tree_size <= 150 order by tree_size desc limit 1',
      )
    ).rows[0] as {
      tree_size: string;
      root_hash: Buffer;
      note: string;
    };
    await c2.end();
    t.ok(old, 'an older checkpoint exists to restore to');
    await asSuperuser(url, [
      `delete from entries where leaf_index >= ${old.tree_size}`,
      `delete from tree_nodes where (node_index + 1) * (1::int8 << level) > ${old.tree_size}`,
      `delete from cosignatures where tree_size > ${old.tree_size}`,
      `delete from checkpoints where tree_size > ${old.tree_size}`,
      `update tree_heads set tree_size = ${old.tree_size}, root_hash = '\\x${old.root_hash.toString('hex')}', note = '${old.note.replace(/'/g, "''")}'`,
    ]);
    await log.restart();
    t.equal((await health(log)).status, 200, 'restore: the server starts (an old backup is self-consistent)');
    try {
      const report = await runAudit({ client: new LogClient(log.url), policy, storage: auditState });
      t.ok(
        report.newProblems.some((p) => /ROLLBACK|CONSISTEN|SIZE/i.test(p.code)),
        `restore: vigil audit reports the rollback (${report.newProblems.map((p) => p.code).join(', ')})`,
      );
    } catch (err) {
      t.match(
        String((err as { code?: string }).code ?? err),
        /ROLLBACK|CONSISTEN|SIZE/i,
        `restore: vigil audit refuses the rolled-back log (${String(err)})`,
      );
    }
  },
);
