// An emitter process killed with SIGKILL at an arbitrary point loses no acknowledged record: the
// next run on the same spool ships everything, and the log holds each record exactly once.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { generateKey, parseEntry } from '../../src/index.js';
import { createEmitter } from '../../src/node-client.js';
import { useNodeCrypto } from '../../src/node.js';
import { startFakeLog } from '../helpers/fake-log.js';

useNodeCrypto();
const child = path.join(path.dirname(fileURLToPath(import.meta.url)), '../helpers/emit-child.js');

for (const round of [1, 2, 3]) {
  t.test(`kill -9 during emission, round ${round}`, async (t) => {
    const k = generateKey('emitter.example/crash');
    const log = await startFakeLog({ emitters: new Map([['emitter.example/crash', k.verifierKey]]) });
    const spoolDir = await fs.mkdtemp(path.join(os.tmpdir(), 'vigil-crash-'));
    t.teardown(async () => {
      await log.close();
      await fs.rm(spoolDir, { recursive: true, force: true });
    });
    // Every other round the log is down too, so the whole backlog sits in the spool.
    if (round % 2 === 0)
      for (let i = 0; i < 100_000; i++) log.faults.push({ kind: 'status', status: 503, retryAfter: '0' });
    const c = spawn(process.execPath, [child, log.url, spoolDir, log.policy], {
      env: { ...process.env, VIGIL_TEST_KEY: k.signerKey },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    const target = 50 * round;
    await new Promise<void>((resolve, reject) => {
      c.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        if ((out.match(/^acked /gm) ?? []).length >= target) resolve();
      });
      c.on('exit', () => reject(new Error(`child exited early: ${out.slice(-500)}`)));
    });
    c.kill('SIGKILL');
    await new Promise((r) => c.once('close', r));
    const acked = [...out.matchAll(/^acked (\S+) (\d+)$/gm)].map((m) => Number(m[2]));
    const stream = /^stream (\S+)$/m.exec(out)![1]!;
    const lastAcked = Math.max(...acked);
    log.faults.length = 0;
    const em = await createEmitter({ logUrl: log.url, key: k.signerKey, spoolDir, policy: log.policy });
    await em.close();
    const entries = log.entries.map((e) => parseEntry(e).record);
    const old = entries.filter((r) => r.stream === stream).map((r) => r.seq as number);
    t.same(old, [...Array(old.length).keys()], 'the crashed stream is in the log in order, no duplicates');
    t.ok(
      old.length - 1 >= lastAcked,
      `every acknowledged record is there (acked seq ${lastAcked}, log has ${old.length})`,
    );
    t.equal(entries.filter((r) => r.stream === em.stream).length, 2, 'then the new run: open and close');
  });
}
