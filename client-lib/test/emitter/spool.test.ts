// Spool durability: order, restart resume, ack trimming, torn tail detection, mid-file corruption.
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import t from 'tap';
import {
  Spool,
  SpoolCorruptError,
  SpoolLockedError,
  formatSpoolLine,
  type SpoolItem,
} from '../../src/emitter/spool.js';

function item(seq: number, stream = 's1'): SpoolItem {
  return { emitter: 'e', record: { v: 1, stream, seq, kind: 'k', n: `x${seq}` }, sig: `sig${seq}` };
}

async function tempDir(t: { teardown(fn: () => unknown): void }): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'vigil-spool-'));
  t.teardown(() => fs.rm(dir, { recursive: true, force: true }));
  return dir;
}

async function segments(dir: string): Promise<string[]> {
  return (await fs.readdir(path.join(dir, 'segments'))).sort();
}

t.test('appends survive a restart in order; acked ones do not come back', async (t) => {
  const dir = await tempDir(t);
  const a = await Spool.open(dir);
  await Promise.all([a.append([item(0)]), a.append([item(1), item(2)]), a.append([item(3)])]);
  t.same(
    a.pending().map((i) => i.record.seq),
    [0, 1, 2, 3],
  );
  await a.ack(2);
  t.same(
    a.pending().map((i) => i.record.seq),
    [2, 3],
  );
  await a.close();

  const b = await Spool.open(dir);
  t.same(
    b.pending().map((i) => i.record.seq),
    [2, 3],
    'the unacked records come back after a restart',
  );
  await b.append([item(0, 's2')]);
  t.same(
    b.pending().map((i) => `${i.record.stream}/${i.record.seq}`),
    ['s1/2', 's1/3', 's2/0'],
    'old stream first',
  );
  await b.ack(3);
  t.equal(b.size, 0);
  t.same(await segments(dir), ['0000000000000002.spool'], 'fully shipped segments are deleted');
  await b.close();

  const c = await Spool.open(dir);
  t.equal(c.size, 0, 'nothing pending after everything was acked');
  await c.close();
});

t.test('ack beyond pending throws', async (t) => {
  const dir = await tempDir(t);
  const s = await Spool.open(dir);
  await s.append([item(0)]);
  await t.rejects(s.ack(2), RangeError);
  await s.close();
});

t.test('a torn tail is detected, quarantined and reported, never silently dropped', async (t) => {
  const dir = await tempDir(t);
  const a = await Spool.open(dir);
  await a.append([item(0), item(1)]);
  await a.close();
  const seg = path.join(dir, 'segments', '0000000000000001.spool');
  const full = formatSpoolLine(item(2));
  await fs.appendFile(seg, full.slice(0, 25)); // a write cut short by a crash
  const reported: string[] = [];
  const b = await Spool.open(dir, { onTornTail: (tt) => reported.push(`${tt.offset}:${tt.bytes}`) });
  const size = (await fs.stat(seg)).size;
  t.same(
    b.pending().map((i) => i.record.seq),
    [0, 1],
  );
  t.same(reported, [`${size}:25`], 'torn tail reported with its offset and length');
  t.equal(b.tornTails.length, 1);
  const q = await fs.readFile(b.tornTails[0]!.quarantinedTo, 'utf8');
  t.equal(q, full.slice(0, 25), 'the torn bytes are kept in quarantine');
  await b.close();
});

t.test('a complete last line with a bad checksum is a torn tail too', async (t) => {
  const dir = await tempDir(t);
  const a = await Spool.open(dir);
  await a.append([item(0)]);
  await a.close();
  const seg = path.join(dir, 'segments', '0000000000000001.spool');
  await fs.appendFile(seg, formatSpoolLine(item(1)).replace('x1', 'y1'));
  const b = await Spool.open(dir);
  t.equal(b.tornTails.length, 1);
  t.same(
    b.pending().map((i) => i.record.seq),
    [0],
  );
  await b.close();
});

t.test('corruption followed by valid records refuses to open', async (t) => {
  const dir = await tempDir(t);
  const a = await Spool.open(dir);
  await a.append([item(0), item(1), item(2)]);
  await a.close();
  const seg = path.join(dir, 'segments', '0000000000000001.spool');
  const text = await fs.readFile(seg, 'utf8');
  await fs.writeFile(seg, text.replace('x1', 'z1'));
  await t.rejects(Spool.open(dir), SpoolCorruptError);
  await t.rejects(Spool.open(dir), { message: /corrupt at byte \d+ with valid records after it/ });
});

t.test('a live owner locks the spool; a dead one is taken over', async (t) => {
  const dir = await tempDir(t);
  await fs.mkdir(dir, { recursive: true });
  await fs.writeFile(path.join(dir, 'LOCK'), `${process.ppid}\n`);
  await t.rejects(Spool.open(dir), SpoolLockedError);
  await fs.writeFile(path.join(dir, 'LOCK'), '999999999\n');
  const s = await Spool.open(dir);
  t.ok(s, 'stale lock taken over');
  await s.close();
});

t.test('segments roll over and are trimmed once shipped', async (t) => {
  const dir = await tempDir(t);
  const s = await Spool.open(dir, { segmentBytes: 200 });
  for (let i = 0; i < 6; i++) await s.append([item(i)]);
  t.ok((await segments(dir)).length >= 3, 'rolled to new segments');
  await s.ack(6);
  t.ok((await segments(dir)).length <= 1, 'shipped segments deleted');
  await s.close();
  const r = await Spool.open(dir);
  t.equal(r.size, 0);
  await r.close();
});
