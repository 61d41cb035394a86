// Tampering with the tables reliability-tamper.test.ts does not cover (checkpoints, cosignatures,
// blobs), as a superuser with the append-only triggers off (session_replication_role = replica), on
// both stores, in process. Each case names its detector:
//   - checkpoints: the newest row changed or deleted -> the server's start-up check (sequencer halted,
//     /healthz 503); an older row's note changed -> its log signature no longer verifies (a client or
//     auditor reading it: openNote with the log key throws);
//   - cosignatures: a cosignature line changed -> the client's policy check (verifyCheckpoint: the
//     witness's cosignature is invalid, the quorum is not met);
//   - blobs: the bytes changed -> the client's blob hash check (SHA-256 of the bytes served is not the
//     name the signed record commits to).
import { randomUUID } from 'node:crypto';
import t from 'tap';
import {
  base64Encode,
  cosign,
  cosignerVerifierKey,
  generateKey,
  hexEncode,
  openNote,
  parsePolicy,
  sha256,
  verifyCheckpoint,
} from '@vigil/client';
import { useNodeCrypto } from '@vigil/client/node';
import { buildApp, forEachStore, loadConfig, type AppDeps, type OpenDatabase } from '@vigil/server';
import { sql, type Kysely } from 'kysely';
import { initStoreLog, RecordStream, serverCli, type PostAnswer } from '../helpers/reliability-log.js';

useNodeCrypto();

const ORIGIN = 'tables.test/log';
const EMITTER = 'tables.test/emitter';
const WITNESS = 'tables.test/witness';

/** Runs statements as the superuser with triggers off, in one transaction. */
async function tamper(db: Kysely<unknown>, statements: string[]): Promise<void> {
  await db.transaction().execute(async (trx) => {
    await sql`set local session_replication_role = replica`.execute(trx);
    for (const s of statements) await sql.raw(s).execute(trx);
  });
}

forEachStore(t, async (t, store) => {
  t.setTimeout(240_000);
  const key = generateKey(EMITTER);
  const witness = generateKey(WITNESS);
  const witnessVkey = cosignerVerifierKey(witness.signerKey);
  const vkey = await initStoreLog(store, ORIGIN, [{ name: EMITTER, vkey: key.verifierKey }]);
  await serverCli(['witness', 'add', WITNESS, witnessVkey], store);
  const config = loadConfig({}, { 'data-dir': store.dataDir });
  const open = async () => {
    const handle: OpenDatabase<unknown> = await store.open();
    const app = await buildApp(config, { db: handle.db as unknown as AppDeps['db'], logger: false });
    await app.ready();
    return { handle, app };
  };
  let r = await open();
  t.teardown(() => r.app.close());
  const restart = async () => {
    await r.app.close();
    await r.handle.close();
    r = await open();
  };
  const post = (entries: unknown[]) =>
    r.app.inject({
      method: 'POST',
      url: '/v1/entries',
      headers: { 'content-type': 'application/json' },
      payload: JSON.stringify({ entries }),
    });

  // Three requests (three checkpoints), the last with a blob; then a cosignature on the newest.
  const stream = new RecordStream(EMITTER, key.signerKey, randomUUID());
  for (let i = 0; i < 2; i++) t.equal((await post(stream.next(3))).statusCode, 200);
  const blob = new TextEncoder().encode('tool output kept as a blob');
  const sha = hexEncode(sha256(blob));
  const [withBlob] = new RecordStream(EMITTER, key.signerKey, randomUUID()).next(1, {
    result: { $blob: { sha256: sha, size: blob.length } },
  });
  const res = await post([{ ...withBlob, blobs: { [sha]: base64Encode(blob) } }]);
  t.equal(res.statusCode, 200, 'a record with a blob is sequenced');
  const note = (res.json() as PostAnswer).checkpoint;
  const cosigned = `${note}${cosign(note, witness.signerKey, Math.floor(Date.now() / 1000))}`;
  const cs = await r.app.inject({
    method: 'POST',
    url: '/v1/cosignatures',
    headers: { 'content-type': 'text/plain; charset=utf-8' },
    payload: cosigned,
  });
  t.equal(cs.statusCode, 200, `the witness's cosignature is attached (${cs.body})`);
  const policy = parsePolicy(`log ${vkey}\nwitness W ${witnessVkey}\nquorum W\n`);
  const served = async () => (await r.app.inject({ url: '/checkpoint' })).body;
  const before = await served();
  t.doesNotThrow(
    () => verifyCheckpoint(before, policy),
    'before tampering: the served checkpoint meets the policy (log signature and cosignature)',
  );
  const db = () => r.handle.db as Kysely<unknown>;
  const health = async () => (await r.app.inject({ url: '/healthz' })).statusCode;

  await t.test('checkpoints: newest row changed -> start-up check', async (t) => {
    await tamper(db(), [
      `create table saved_cp as select * from checkpoints`,
      `update checkpoints set note = replace(note, '\n\n', '\n\nextra\n') where tree_size = (select max(tree_size) from checkpoints)`,
    ]);
    await restart();
    t.equal(await health(), 503, "detected by the server's start-up check: /healthz 503");
    t.equal(r.app.vigil.sequencer.state, 'halted', 'the sequencer is halted');
    await tamper(db(), [`delete from checkpoints`, `insert into checkpoints select * from saved_cp`]);
    await restart();
    t.equal(await health(), 200, 'healthy again once undone');
  });

  await t.test('checkpoints: newest row deleted -> start-up check', async (t) => {
    await tamper(db(), [
      `delete from checkpoints where tree_size = (select max(tree_size) from checkpoints)`,
    ]);
    await restart();
    t.equal(await health(), 503, "detected by the server's start-up check: /healthz 503");
    await tamper(db(), [`delete from checkpoints`, `insert into checkpoints select * from saved_cp`]);
    await restart();
    t.equal(await health(), 200, 'healthy again once undone');
  });

  await t.test('checkpoints: an older row re-written -> its log signature fails', async (t) => {
    await tamper(db(), [
      `update checkpoints set note = replace(note, E'\\n3\\n', E'\\n4\\n') where tree_size = 3`,
    ]);
    await restart();
    const rows = await sql<{ note: string }>`select note from checkpoints where tree_size = 3`.execute(db());
    t.throws(
      () => openNote(rows.rows[0]!.note, [vkey]),
      'detected by a client or auditor verifying the note',
    );
    t.equal(await health(), 200, 'the start-up check only covers the newest checkpoint: healthy (see Gaps)');
    await tamper(db(), [
      `delete from checkpoints`,
      `insert into checkpoints select * from saved_cp`,
      `drop table saved_cp`,
    ]);
  });

  await t.test('cosignatures: a line changed -> client policy check', async (t) => {
    await tamper(db(), [
      `create table saved_cs as select * from cosignatures`,
      `update cosignatures set line = overlay(line placing (case when substr(line, length(line) - 4, 1) = 'A' then 'B' else 'A' end) from length(line) - 4 for 1)`,
    ]);
    await restart();
    const note = await served();
    t.throws(() => verifyCheckpoint(note, policy), 'detected by the client: the quorum of W is not met');
    await tamper(db(), [
      `delete from cosignatures`,
      `insert into cosignatures select * from saved_cs`,
      `drop table saved_cs`,
    ]);
    await restart();
    const undone = await served();
    t.doesNotThrow(() => verifyCheckpoint(undone, policy), 'meets the policy again once undone');
  });

  await t.test('blobs: bytes changed -> client blob hash check', async (t) => {
    await tamper(db(), [
      `update blobs set bytes = convert_to('forged output', 'UTF8') where sha256 = '${sha}'`,
    ]);
    const got = await r.app.inject({ url: `/v1/blobs/${sha}` });
    const bytes = new Uint8Array(got.rawPayload);
    t.not(
      hexEncode(sha256(bytes)),
      sha,
      `detected by the client's blob hash check (served ${got.statusCode})`,
    );
  });
  // Closed here, before the store cleanup drops the database under an open pool.
  await r.app.close();
  await r.handle.close();
});
