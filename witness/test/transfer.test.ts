// The witness's state moves store A -> export directory -> store B (embedded and Postgres, both ways
// when both run here) and the witness carries on from where it was: same evidence, same newest
// cosigned checkpoint per log (a stale old size is 409, a proper extension is cosigned). A rolled-back
// or forged export is refused and leaves the store empty.
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import {
  createTestStore,
  storeSkipReason,
  testStoreKinds,
  TransferError,
  type TestStore,
} from '@vigil/store';
import type { WitnessDatabase } from '../src/db/schema.js';
import { migrateWitness } from '../src/db/open.js';
import { formatAddCheckpointRequest } from '../src/witness/request.js';
import { exportWitness, importWitness } from '../src/transfer.js';
import { openTestWitness, TestLog, type TestWitness } from './helpers.js';

const kinds = testStoreKinds().filter((k) => storeSkipReason(k) === undefined);
const pairs: [TestStore['kind'], TestStore['kind']][] =
  kinds.length > 1
    ? [
        [kinds[0]!, kinds[1]!],
        [kinds[1]!, kinds[0]!],
      ]
    : [[kinds[0]!, kinds[0]!]];

const add = (w: TestWitness, oldSize: number, proof: Uint8Array[], note: string) =>
  w.app.inject({
    method: 'POST',
    url: '/add-checkpoint',
    headers: { 'content-type': 'text/plain; charset=utf-8' },
    payload: formatAddCheckpointRequest({ oldSize: BigInt(oldSize), proof, note }),
  });

/** Migrates a store and imports `dir` into it; resolves to the refusal, or undefined on success. */
async function importInto(store: TestStore, dir: string): Promise<TransferError | undefined> {
  const opened = await store.open<WitnessDatabase>();
  try {
    await migrateWitness(opened.db);
    await importWitness(opened.db, dir);
    return undefined;
  } catch (err) {
    if (err instanceof TransferError) return err;
    throw err;
  } finally {
    await opened.close();
  }
}

for (const [from, to] of pairs) {
  t.test(`${from} -> export -> ${to}`, async (t) => {
    const a = await createTestStore(from);
    const b = await createTestStore(to);
    const root = await mkdtemp(join(tmpdir(), 'vigil-witness-export-'));
    t.teardown(async () => {
      await a.cleanup();
      await b.cleanup();
      await rm(root, { recursive: true, force: true });
    });
    const log1 = new TestLog('example.com/log1', 1);
    const log2 = new TestLog('example.com/log2', 2);
    const fork = new TestLog('example.com/log1', 1);
    let evidenceA: string;
    {
      const w = await openTestWitness(a);
      for (const log of [log1, log2])
        await w.store.addLog({ origin: log.origin, vkey: log.vkey, url: null, pullIntervalMs: 5000 });
      log1.append(4);
      t.equal((await add(w, 0, [], log1.checkpoint())).statusCode, 200);
      log1.append(5);
      t.equal((await add(w, 4, log1.proof(4), log1.checkpoint())).statusCode, 200);
      log2.append(3);
      t.equal((await add(w, 0, [], log2.checkpoint())).statusCode, 200);
      fork.append(9, 1);
      t.equal((await add(w, 9, [], fork.checkpoint())).statusCode, 422, 'a fork at size 9 is evidence');
      evidenceA = (await w.app.inject('/v1/evidence')).body;
      t.match(evidenceA, /fork/);
      await w.close();
    }
    const opened = await a.open<WitnessDatabase>();
    const rows = await exportWitness(opened.db, join(root, 'out'));
    await opened.close();
    t.same(rows, { logs: '2', latest_checkpoints: '2', cosigned_checkpoints: '3', evidence: '1' });

    t.equal(await importInto(b, join(root, 'out')), undefined, 'imported');
    const again = await importInto(b, join(root, 'out'));
    t.equal(again?.code, 'STORE_NOT_EMPTY', 'a second import is refused');

    const w = await openTestWitness(b);
    t.teardown(() => w.close());
    t.equal((await w.app.inject('/v1/evidence')).body, evidenceA, 'the evidence moved');
    const stale = await add(w, 4, log1.proof(4), log1.checkpoint());
    t.equal(stale.statusCode, 409, 'the witness is at size 9 of log1, not 4');
    t.equal(stale.body, '9\n');
    log1.append(2);
    t.equal((await add(w, 9, log1.proof(9), log1.checkpoint())).statusCode, 200, 'and cosigns 9 -> 11');
    t.equal((await add(w, 3, [], log2.checkpoint())).statusCode, 200, 'log2 at 3 too');
  });
}

t.test('a rolled-back or forged witness export is refused and leaves the store empty', async (t) => {
  const a = await createTestStore(kinds[0]!);
  const c = await createTestStore(kinds[0]!);
  const root = await mkdtemp(join(tmpdir(), 'vigil-witness-export-'));
  t.teardown(async () => {
    await a.cleanup();
    await c.cleanup();
    await rm(root, { recursive: true, force: true });
  });
  const log = new TestLog('example.com/log1', 1);
  {
    const w = await openTestWitness(a);
    await w.store.addLog({ origin: log.origin, vkey: log.vkey, url: null, pullIntervalMs: 5000 });
    log.append(4);
    await add(w, 0, [], log.checkpoint());
    log.append(5);
    await add(w, 4, log.proof(4), log.checkpoint());
    await w.close();
  }
  const good = join(root, 'good');
  const opened = await a.open<WitnessDatabase>();
  await exportWitness(opened.db, good);
  await opened.close();

  const attempt = async (name: string, edit: (row: Record<string, string | null>) => void) => {
    const dir = join(root, name);
    await cp(good, dir, { recursive: true });
    const file = join(dir, 'latest_checkpoints.jsonl');
    const row = JSON.parse(await readFile(file, 'utf8')) as Record<string, string | null>;
    edit(row);
    await writeFile(file, `${JSON.stringify(row)}\n`);
    return importInto(c, dir);
  };
  const empty = async () => {
    const o = await c.open<WitnessDatabase>();
    try {
      return (await o.db.selectFrom('logs').selectAll().execute()).length === 0;
    } finally {
      await o.close();
    }
  };

  t.test('the newest checkpoint rolled back to an earlier cosigned one', async (t) => {
    const err = await attempt('rollback', (row) => {
      row.tree_size = '4';
      row.root_hash = Buffer.from(log.root(4)).toString('base64');
      row.note = log.checkpoint(4);
    });
    t.equal(err?.code, 'EXPORT_ROLLBACK', err?.message ?? 'refused');
    t.match(err?.message, /size 4 is behind the cosigned size 9/);
    t.ok(await empty(), 'nothing half-loaded');
  });

  t.test('a newest checkpoint not signed by the log', async (t) => {
    const other = new TestLog('example.com/log1', 9);
    other.append(9);
    const err = await attempt('forged', (row) => {
      row.root_hash = Buffer.from(other.root(9)).toString('base64');
      row.note = other.checkpoint(9);
    });
    t.equal(err?.code, 'EXPORT_CHECKPOINT_INVALID', err?.message ?? 'refused');
    t.match(err?.message, /newest checkpoint of example\.com\/log1: not signed by the log key/);
    t.ok(await empty(), 'nothing half-loaded');
  });

  t.test('the untouched export imports', async (t) => {
    t.equal(await importInto(c, good), undefined);
    t.notOk(await empty());
  });
});
