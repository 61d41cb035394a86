// The sequencer never signs a root its stored hashes do not produce: a leaf hash or a tree node of a
// partial tile changed under a running log makes the next batch fail and roll back (the tree does not
// move); once the row is right again the log goes on. The receipts the log answers with come from
// the sequencer's memory and verify against the checkpoint.
import t from 'tap';
import { sql } from 'kysely';
import {
  base64Decode,
  openNote,
  parseCheckpoint,
  parseReceipt,
  verifyInclusion,
  hashLeaf,
} from '@vigil/client';
import { forEachStore } from '../../src/db/testing.js';
import type { Database } from '../../src/db/schema.js';
import { buildApp } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { prepareLog, recordStream } from '../helpers/process.js';

forEachStore(t, async (t, store) => {
  const log = await prepareLog(store);
  const { db } = await store.open<Database>();
  const app = await buildApp(
    loadConfig({}, { 'data-dir': store.dataDir, 'rate-address': '0', 'rate-emitter': '0' }),
    { db, logger: false },
  );
  await app.ready();
  t.teardown(() => app.close());
  const stream = recordStream(log.emitterKey, '5a6b7c8d-1111-4222-8333-944455556666');
  const send = (entries: unknown[]) =>
    app.inject({
      method: 'POST',
      url: '/v1/entries',
      headers: { 'content-type': 'application/json' },
      payload: JSON.stringify({ entries }),
    });
  const post = (n: number) => send(stream.next(n));
  const treeSize = async () =>
    parseCheckpoint(openNote((await app.inject({ url: '/checkpoint' })).body, [log.vkey]).text).size;

  // 600 entries: a partial level-0 tile (512..599) and a partial level-1 tile (level-8 nodes 0, 1).
  // Entries 0 and 1 are the operator's registry records, appended at start.
  await app.vigil.sequencer.flush();
  for (const n of [254, 256, 88]) {
    const res = await post(n);
    t.equal(res.statusCode, 200);
    const body = res.json() as {
      entries: { index: string; entry: string; receipt: string }[];
      checkpoint: string;
    };
    const cp = parseCheckpoint(openNote(body.checkpoint, [log.vkey]).text);
    for (const e of [body.entries[0]!, body.entries.at(-1)!]) {
      const receipt = parseReceipt(e.receipt);
      t.equal(receipt.index.toString(), e.index);
      verifyInclusion(hashLeaf(base64Decode(e.entry)), receipt.index, cp.size, receipt.proof, cp.root);
    }
  }
  t.equal(await treeSize(), 600n);
  // The two level-0 tiles these batches completed are in the read cache, from the sequencer's
  // memory, byte for byte what the store holds; the partial third is not.
  for (const index of [0, 1]) {
    const cached = app.vigil.tlog.tiles.cachedFull(`tile/0/00${index}`);
    const stored = await sql<{
      leaf_hash: Uint8Array;
    }>`select leaf_hash from entries where leaf_index >= ${index * 256} and leaf_index < ${index * 256 + 256} order by leaf_index`.execute(
      db,
    );
    t.same(
      cached && Buffer.from(cached),
      Buffer.concat(stored.rows.map((r) => Buffer.from(r.leaf_hash))),
      `tile 0/00${index} cached as stored`,
    );
  }
  t.equal(app.vigil.tlog.tiles.cachedFull('tile/0/002'), undefined, 'the partial tile is not cached');

  // The same next record is offered after every change: the log must refuse it each time.
  const pending = stream.next(1);
  const tamper = async (what: string, change: () => Promise<unknown>, restore: () => Promise<unknown>) => {
    await change();
    const refused = await send(pending);
    t.equal(refused.statusCode, 500, `${what}: the batch fails`);
    t.equal(await treeSize(), 600n, `${what}: the tree did not move`);
    await restore();
  };
  /** As an attacker with the database's superuser: the append-only triggers off for one statement. */
  const asSuperuser = (statement: ReturnType<typeof sql>) =>
    db.transaction().execute(async (trx) => {
      await sql`set local session_replication_role = replica`.execute(trx);
      await statement.execute(trx);
    });
  const zeros = new Uint8Array(32);
  const leaf = await sql<{
    leaf_hash: Uint8Array;
  }>`select leaf_hash from entries where leaf_index = 590`.execute(db);
  await tamper(
    'a leaf hash in the partial level-0 tile',
    () => asSuperuser(sql`update entries set leaf_hash = ${zeros} where leaf_index = 590`),
    () => asSuperuser(sql`update entries set leaf_hash = ${leaf.rows[0]!.leaf_hash} where leaf_index = 590`),
  );
  const node = await sql<{
    hash: Uint8Array;
  }>`select hash from tree_nodes where level = 8 and node_index = 1`.execute(db);
  await tamper(
    'a level-8 node in the partial level-1 tile',
    () => asSuperuser(sql`update tree_nodes set hash = ${zeros} where level = 8 and node_index = 1`),
    () =>
      asSuperuser(sql`update tree_nodes set hash = ${node.rows[0]!.hash} where level = 8 and node_index = 1`),
  );
  const accepted = await send(pending);
  t.equal(accepted.statusCode, 200, 'with the rows right again the record is sequenced');
  t.equal(await treeSize(), 601n);

  const after = stream.next(1);
  await asSuperuser(sql`delete from entries where leaf_index = 600`);
  const missing = await send(after);
  t.equal(missing.statusCode, 500, 'a missing leaf in the partial level-0 tile: the batch fails');
  t.equal(await treeSize(), 601n, 'a missing leaf: the tree did not move');
});
