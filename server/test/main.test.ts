// Real `vigil-server serve` processes: SIGTERM with a POST in flight, two servers on one Postgres
// database (standby answers writes 503 NOT_SEQUENCER, takes over when the sequencer dies), a
// tampered row detected at start, a PGlite-era data directory refused, and `init` on a fresh host.
import t from 'tap';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, stat } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'kysely';
import { formatEntry, hashLeaf, parseEntry } from '@vigil/client';
import { forEachStore, postgresSkipReason, createTestStore } from '../src/db/testing.js';
import type { Database } from '../src/db/schema.js';
import {
  eventually,
  prepareLog,
  recordStream,
  SERVER_MAIN,
  serverEnv,
  spawnNode,
  startServer,
  stopChild,
} from './helpers/process.js';

interface Answer {
  code?: string;
  entries?: { index: string }[];
}

type Sub = ReturnType<ReturnType<typeof recordStream>['next']>[number];

async function postEntries(
  url: string,
  entries: Sub[],
): Promise<{ status: number; body: Answer; headers: Headers }> {
  const res = await fetch(`${url}/v1/entries`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ entries }),
  });
  return { status: res.status, body: (await res.json()) as Answer, headers: res.headers };
}

forEachStore(t, async (t, store) => {
  const log = await prepareLog(store);
  const stream = recordStream(log.emitterKey, '2d3e4f5a-4444-4555-8666-777788889999');

  t.test('SIGTERM while a POST is in flight: the request completes, exit code 0', async (t) => {
    const { child, url } = await startServer(store);
    t.teardown(() => stopChild(child));
    t.equal((await postEntries(url, stream.next(2))).status, 200);
    const body = Buffer.from(JSON.stringify({ entries: stream.next(3) }));
    const { port } = new URL(url);
    const mark = child.output().length;
    const response = new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = request(
        {
          host: '127.0.0.1',
          port,
          method: 'POST',
          path: '/v1/entries',
          headers: { 'content-type': 'application/json', 'content-length': body.length },
        },
        (res) => {
          let text = '';
          res.on('data', (d: Buffer) => (text += d.toString()));
          res.on('end', () => resolve({ status: res.statusCode!, body: text }));
        },
      );
      req.on('error', reject);
      // Headers and half the body now; the rest only after the server began shutting down.
      req.write(body.subarray(0, body.length >> 1));
      void child
        .waitFor(/"url":"\/v1\/entries".*"msg":"incoming request"/, 30_000, mark)
        .then(() => {
          child.proc.kill('SIGTERM');
          return child.waitFor(/shutting down/);
        })
        .then(() => req.end(body.subarray(body.length >> 1)), reject);
    });
    const res = await response;
    t.equal(res.status, 200, res.body);
    const json = JSON.parse(res.body) as { entries: { index: string }[] };
    t.same(
      json.entries.map((e) => e.index),
      ['4', '5', '6'],
    );
    const { code, signal } = await child.exited;
    t.equal(code, 0, child.output());
    t.equal(signal, null);
  });

  t.test('a tampered entry is detected at start: the server refuses to sequence and says so', async (t) => {
    const opened = await store.open<Database>();
    try {
      const row = await opened.db
        .selectFrom('entries')
        .select(['entry'])
        .where('leaf_index', '=', 1n)
        .executeTakeFirstOrThrow();
      // A superuser bypasses the append-only triggers and rewrites entry 1 and its leaf hash
      // consistently, so only the tree (root vs the signed checkpoint) can tell.
      const entry = parseEntry(row.entry);
      const forged = formatEntry({ ...entry, peer: '203.0.113.7' });
      await opened.db.transaction().execute(async (trx) => {
        await sql`set local session_replication_role = replica`.execute(trx);
        await sql`update entries set entry = ${forged}, leaf_hash = ${hashLeaf(forged)} where leaf_index = 1`.execute(
          trx,
        );
      });
    } finally {
      await opened.close();
    }
    const { child, url } = await startServer(store);
    t.teardown(() => stopChild(child));
    await child.waitFor(/REFUSING TO SEQUENCE/);
    const health = await fetch(`${url}/healthz`);
    t.equal(health.status, 503);
    const h = (await health.json()) as { sequencer: string; reason: string };
    t.equal(h.sequencer, 'halted');
    t.match(h.reason, /stored tree does not match the newest checkpoint/);
    const post = await postEntries(url, stream.next(1));
    t.equal(post.status, 503);
    t.equal(post.body.code, 'SEQUENCER_HALTED');
    t.equal((await fetch(`${url}/checkpoint`)).status, 200, 'reads are still served');
  });
});

// Two `serve` processes on one Postgres database (DATABASE_URL: the machine's PostgreSQL in CI).
{
  const skip = postgresSkipReason();
  t.test('two servers on one Postgres database', skip ? { skip } : {}, async (t) => {
    const store = await createTestStore('postgres');
    t.teardown(() => store.cleanup());
    const log = await prepareLog(store);
    const stream = recordStream(log.emitterKey, '3e4f5a6b-5555-4666-8777-88889999aaaa');
    const a = await startServer(store);
    t.teardown(() => stopChild(a.child));
    await a.child.waitFor(/sequencer active/);
    const b = await startServer(store, ['--lock-retry', '200']);
    t.teardown(() => stopChild(b.child));
    await b.child.waitFor(/not sequencing: another instance holds the sequencing lock/);

    t.equal((await postEntries(a.url, stream.next(2))).status, 200, 'the first sequences');
    const held = stream.next(2);
    const refused = await postEntries(b.url, held);
    t.equal(refused.status, 503);
    t.equal(refused.body.code, 'NOT_SEQUENCER');
    t.ok(refused.headers.get('retry-after'), 'with Retry-After');
    const cp = await fetch(`${b.url}/checkpoint`);
    t.equal(cp.status, 200, 'the second serves reads');
    t.match(await cp.text(), /^test\.example\/log\n4\n/);
    t.equal((await fetch(`${b.url}/v1/entries/1`)).status, 200);
    t.equal((await fetch(`${b.url}/healthz`)).status, 200);

    a.child.proc.kill('SIGKILL');
    await a.child.exited;
    const taken = await eventually(
      async () => {
        const r = await postEntries(b.url, held);
        return r.status === 503 ? undefined : r;
      },
      30_000,
      'the second server to take over sequencing',
    );
    t.equal(taken.status, 200, JSON.stringify(taken.body));
    t.same(
      taken.body.entries?.map((e) => e.index),
      ['4', '5'],
    );
    t.match(b.child.output(), /took the sequencing lock/);
  });
}

t.test('a data directory of the retired PGlite store: start refuses and says how to move it', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'vigil-legacy-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await mkdir(join(dir, 'pgdata'));
  const c = spawnNode(SERVER_MAIN, ['start', '--data-dir', dir, '--port', '0']);
  const { code } = await c.exited;
  t.equal(code, 1, 'start exits 1');
  t.match(c.output(), /retired embedded store \(PGlite\).*vigil-server export.*vigil-server import/s);
  t.notOk(existsSync(join(dir, 'pg')), 'and creates nothing');
});

{
  const skip = postgresSkipReason();
  t.test(
    'init against DATABASE_URL creates a missing data directory (0700) for its key',
    skip ? { skip } : {},
    async (t) => {
      const store = await createTestStore('postgres');
      t.teardown(() => store.cleanup());
      const dataDir = join(store.dataDir, 'fresh', 'data');
      const env = { DATABASE_URL: store.databaseUrl!, VIGIL_DATA_DIR: dataDir };
      const migrate = spawnNode(SERVER_MAIN, ['migrate'], env);
      t.equal((await migrate.exited).code, 0, migrate.output());
      const init = spawnNode(SERVER_MAIN, ['init', '--origin', 'fresh.example/log'], env);
      t.equal((await init.exited).code, 0, init.output());
      t.equal((await stat(dataDir)).mode & 0o777, 0o700, 'the data directory is created with mode 0700');
      t.equal((await stat(join(dataDir, 'log.key'))).mode & 0o777, 0o600, 'the key file is 0600');
    },
  );
}

t.test('an emitter revoked with the CLI while the log runs is refused at once', async (t) => {
  const store = await createTestStore('embedded');
  t.teardown(() => store.cleanup());
  const log = await prepareLog(store);
  const stream = recordStream(log.emitterKey, '5a6b7c8d-6666-4777-8888-9999aaaabbbb');
  const { child, url } = await startServer(store);
  t.teardown(() => stopChild(child));
  t.equal((await postEntries(url, stream.next(1))).status, 200, 'accepted (and now cached) before');
  // The CLI writes the database through the running PostgreSQL's socket, then notifies the log.
  const revoke = spawnNode(SERVER_MAIN, ['emitter', 'revoke', 'em1'], serverEnv(store));
  t.equal((await revoke.exited).code, 0, revoke.output());
  const after = await postEntries(url, stream.next(1));
  t.equal(after.body.code, 'EMITTER_REVOKED', `refused right after the command (${after.status})`);
});
