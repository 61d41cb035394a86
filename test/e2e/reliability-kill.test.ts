// The real log process (embedded store) killed with SIGKILL under a steady submission load, three
// times, together with its embedded PostgreSQL (the whole process group, as a power cut would: the
// next start finds a postmaster.pid naming a dead or zombie process and recovers, and PostgreSQL's
// crash recovery replays the WAL). The load is an emitter that retries a request until it is acknowledged (same bytes), as the
// real emitter does. After each restart: every acknowledged record is present once, nothing is
// duplicated, the tree matches the newest checkpoint, and every checkpoint the log handed out in an
// answer is consistent with every other (proofs computed from the tiles with the core).
// Then a slow client (slowloris: headers one byte a second) is cut off by the server's header timeout
// (main.ts: headersTimeout 20 s, checked every 30 s by Node: closed within 50 s).
import { existsSync, readFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import t from 'tap';
import { generateKey } from '@vigil/client';
import { useNodeCrypto } from '@vigil/client/node';
import { processState } from '@vigil/store';
import { startLog, until } from '../helpers/log.js';
import {
  ackedFrom,
  checkLogInvariants,
  httpGet,
  RecordStream,
  type Acked,
  type PostAnswer,
  type Submission,
} from '../helpers/reliability-log.js';

useNodeCrypto();

const EMITTER = 'kill.test/emitter';

t.test('kill -9 of the log under load, three times', async (t) => {
  t.setTimeout(400_000);
  const key = generateKey(EMITTER);
  const log = await startLog({ origin: 'kill.test/log' });
  t.teardown(() => log.stop());
  await log.addEmitter(EMITTER, key.verifierKey);
  const acked: Acked[] = [];
  const notes: string[] = [];
  let failures = 0;
  let stop = false;
  // Two emitters' streams in parallel, each retrying its pending request until acknowledged.
  const load = [randomUUID(), randomUUID()].map(async (id) => {
    const stream = new RecordStream(EMITTER, key.signerKey, id);
    let pending: Submission[] = stream.next(5);
    while (!stop) {
      try {
        const res = await fetch(`${log.url}v1/entries`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ entries: pending }),
        });
        if (res.status === 200) {
          const answer = (await res.json()) as PostAnswer;
          acked.push(...ackedFrom(pending, answer));
          notes.push(answer.checkpoint);
          pending = stream.next(1 + (acked.length % 7));
          continue;
        }
        const body = await res.text();
        if (res.status < 500) throw new Error(`load refused: ${res.status} ${body}`);
        failures++;
      } catch (err) {
        if (err instanceof Error && err.message.startsWith('load refused')) throw err;
        failures++; // connection refused or reset: the log is down; retry the same records
      }
      await new Promise((r) => setTimeout(r, 20)); // retry pacing while the log is down
    }
  });
  const loadDone = Promise.all(load);
  for (let round = 1; round <= 3; round++) {
    const before = acked.length;
    await until(`round ${round}: 40 more acknowledged records`, () => acked.length >= before + 40, 60_000);
    const postmaster = Number.parseInt(readFileSync(join(log.dataDir, 'pg', 'postmaster.pid'), 'utf8'), 10);
    const code = await log.kill('SIGKILL');
    t.equal(code, 128, `round ${round}: log killed with SIGKILL under load`);
    await until(`round ${round}: its postmaster ${postmaster} is dead too`, () => {
      const state = processState(postmaster);
      return state === undefined || state === 'Z';
    });
    t.ok(
      existsSync(join(log.dataDir, 'pg', 'postmaster.pid')),
      `round ${round}: a stale postmaster.pid is left`,
    );
    await log.restart();
    const after = acked.length;
    await until(`round ${round}: load resumes after restart`, () => acked.length >= after + 20, 60_000);
    const snapshot = [...acked];
    const state = await checkLogInvariants(httpGet(log.url), log.vkey, snapshot, [...notes]);
    t.ok(
      state.pairsChecked > 0,
      `round ${round}: ${snapshot.length} acknowledged records present once, tree of ${state.checkpoint.size} ` +
        `matches its checkpoint, ${state.pairsChecked} checkpoint pairs consistent (${failures} failed attempts so far)`,
    );
    t.ok(state.checkpoint.size >= BigInt(snapshot.length), `round ${round}: no acknowledged record lost`);
  }
  stop = true;
  await loadDone;
  const final = await checkLogInvariants(httpGet(log.url), log.vkey, acked, notes);
  t.equal(
    final.checkpoint.size,
    // Plus the operator's two registry records (itself and the emitter), never submitted by a client.
    BigInt(acked.length) + 2n,
    'every record in the log was acknowledged exactly once',
  );

  await t.test('a slowloris client is cut off by the header timeout', async (t) => {
    const started = Date.now();
    const socket = net.connect(log.port, '127.0.0.1');
    socket.on('error', () => undefined);
    let received = '';
    socket.on('data', (d) => (received += d.toString('latin1')));
    const closed = new Promise<number>((resolve) => socket.on('close', () => resolve(Date.now() - started)));
    socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ');
    // One byte a second, never finishing the headers.
    const drip = setInterval(() => {
      if (!socket.destroyed) socket.write('a');
    }, 1000);
    const limit = 20_000 + 30_000 + 5_000;
    const timer = setTimeout(() => socket.destroy(new Error('not cut off')), limit + 10_000);
    const elapsed = await closed;
    clearInterval(drip);
    clearTimeout(timer);
    t.ok(elapsed < limit, `the server closed the connection after ${elapsed} ms (bound ${limit} ms)`);
    t.ok(elapsed >= 15_000, `not before the header timeout (${elapsed} ms)`);
    t.match(received, /^$|^HTTP\/1\.1 408/, 'with nothing or a 408');
    const health = await fetch(`${log.url}healthz`);
    t.equal(health.status, 200, 'the log still serves others');
  });
});
