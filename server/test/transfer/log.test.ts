// A log moves store A -> export directory -> store B (embedded and Postgres, both ways when both run
// here) and keeps serving: same checkpoint and root, receipts verify, new submissions extend it. A
// tampered export (changed entry, dropped line, changed checkpoint, forged cosignature) is refused
// with the cause named, and the refused import leaves the store empty.
import { randomBytes } from 'node:crypto';
import { copyFile, cp, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import {
  cosign,
  cosignerVerifierKey,
  generateKey,
  hexEncode,
  operatorNameFor,
  parseCheckpoint,
  parsePolicy,
  sha256,
  verifyReceipt,
  base64Encode,
  formatCheckpoint,
  signNote,
  sealValue,
  SALT_SIZE,
} from '@vigil/client';
import { createTestStore, storeSkipReason, testStoreKinds, type TestStore } from '../../src/db/testing.js';
import { migrateToLatest, migrationsFolder } from '../../src/db/migrate.js';
import type { Kysely } from 'kysely';
import type { Database } from '../../src/db/schema.js';
import { buildApp } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { runAdminCommand } from '../../src/admin.js';
import { importLog, LOG_TABLES } from '../../src/transfer/log.js';
import { TransferError } from '@vigil/store';
import { readKeyFile } from '../../src/tlog/signer.js';
import {
  eventually,
  ORIGIN,
  prepareLog,
  recordStream,
  serverEnv,
  spawnNode,
  SERVER_MAIN,
} from '../helpers/process.js';

const WITNESS = generateKey('witness.test/w1');
const kinds = testStoreKinds().filter((k) => storeSkipReason(k) === undefined);
const pairs: [string, string][] =
  kinds.length > 1
    ? [
        [kinds[0]!, kinds[1]!],
        [kinds[1]!, kinds[0]!],
      ]
    : [[kinds[0]!, kinds[0]!]];

/** The checkpoint text of a note (before its signature lines). */
const body = (note: string) => note.slice(0, note.indexOf('\n\n') + 1);

async function cli(store: TestStore, args: string[]): Promise<{ code: number | null; out: string }> {
  const child = spawnNode(SERVER_MAIN, args, serverEnv(store));
  const { code } = await child.exited;
  return { code, out: child.output() };
}

/** How many entries of the log are registry records (signed by the operator emitter). */
async function registryEntries(db: Kysely<Database>): Promise<bigint> {
  const row = await db
    .selectFrom('entries')
    .select((eb) => eb.fn.countAll().as('n'))
    .where('emitter', '=', operatorNameFor(ORIGIN))
    .executeTakeFirstOrThrow();
  return BigInt(row.n as string | number | bigint);
}

/**
 * Stores a sealed value (and a search column derived from it) as the log does with its entry at
 * `index`; returns its commitment and S.
 */
async function plantSealed(
  db: Kysely<Database>,
  index: bigint,
  session: string,
): Promise<{ hex: string; bytes: Uint8Array }> {
  const { ref, bytes } = sealValue({ secret: `value of ${session}` }, randomBytes(SALT_SIZE));
  const hex = ref.$sealed.sha256;
  await db
    .insertInto('sealed')
    .values({
      sha256: hex,
      size: BigInt(bytes.length),
      bytes,
      leaf_index: index,
      emitter: 'em1',
      stream: '11111111-1111-4111-8111-111111111111',
      session,
    })
    .execute();
  await db
    .insertInto('sealed_columns')
    .values({ leaf_index: index, sha256: hex, tool: 'secret-tool', resource_uri: null })
    .execute();
  return { hex, bytes };
}

/** The tables of sealed values, readers, holds and operator actions, each row as JSON, in key order. */
async function sealedTables(db: Kysely<Database>): Promise<Record<string, string[]>> {
  const out: Record<string, string[]> = {};
  for (const spec of LOG_TABLES.slice(LOG_TABLES.findIndex((s) => s.name === 'operator_actions'))) {
    let q = db.selectFrom(spec.name as keyof Database).selectAll();
    for (const k of spec.key) q = q.orderBy(k as never);
    out[spec.name] = (await q.execute()).map((r) =>
      JSON.stringify(r, (_k, v: unknown) =>
        typeof v === 'bigint' ? String(v) : v instanceof Uint8Array ? Buffer.from(v).toString('hex') : v,
      ),
    );
  }
  return out;
}

async function emptyTables(store: TestStore): Promise<string[]> {
  const opened = await store.open<Database>();
  try {
    const full = [];
    for (const table of ['entries', 'logs', 'checkpoints', 'tree_heads', 'tree_nodes'] as const)
      if ((await opened.db.selectFrom(table).selectAll().limit(1).execute()).length > 0) full.push(table);
    return full;
  } finally {
    await opened.close();
  }
}

for (const [from, to] of pairs) {
  t.test(`${from} -> export -> ${to}`, async (t) => {
    const a = await createTestStore(from as TestStore['kind']);
    const b = await createTestStore(to as TestStore['kind']);
    const exportDir = join(await mkdtemp(join(tmpdir(), 'vigil-export-')), 'out');
    t.teardown(async () => {
      await a.cleanup();
      await b.cleanup();
      await rm(join(exportDir, '..'), { recursive: true, force: true });
    });

    // A log on A: 300 records in three streams (crossing a full tile), a blob, a witness and its
    // cosignature, an incident-free history; and the registry records the operator emitter appended
    // (its own emitter.add at start, em1's before em1's first record).
    const log = await prepareLog(a);
    let checkpointA: string;
    let size: bigint;
    let sealedA: Record<string, string[]> = {};
    let readerToken = '';
    {
      const opened = await a.open<Database>();
      const db = opened.db;
      await runAdminCommand(db, {
        command: 'witness add',
        args: ['witness.test/w1', cosignerVerifierKey(WITNESS.signerKey)],
      });
      const app = await buildApp(loadConfig({}, { 'data-dir': a.dataDir, 'rate-address': '0' }), {
        db,
        logger: false,
      });
      await app.ready();
      const post = async (entries: unknown[]) => {
        const res = await app.inject({
          method: 'POST',
          url: '/v1/entries',
          headers: { 'content-type': 'application/json' },
          payload: JSON.stringify({ entries }),
        });
        if (res.statusCode !== 200) throw new Error(res.body);
        return res.json() as { checkpoint: string };
      };
      const blob = new TextEncoder().encode('a large tool result');
      const hex = hexEncode(sha256(blob));
      const s1 = recordStream(log.emitterKey, '11111111-1111-4111-8111-111111111111');
      const withBlob = s1.next(1, { result: { $blob: { sha256: hex, size: blob.length } } })[0]!;
      await post([{ ...withBlob, blobs: { [hex]: Buffer.from(blob).toString('base64') } }]);
      for (const s of ['22222222-2222-4222-8222-222222222222', '33333333-3333-4333-8333-333333333333']) {
        const stream = recordStream(log.emitterKey, s);
        await post(stream.next(100));
        await post(stream.next(49, { method: 'tools/call', tool: 'echo' }));
      }
      // Sealed values (one kept, one erased), a reader (its token's hash), a hold, a retention
      // setting: all of it moves with the log. The log appends their operator actions before the
      // last records, so the exported tree holds them.
      await plantSealed(db, 1n, 'kept');
      const erased = await plantSealed(db, 2n, 'erased');
      await runAdminCommand(db, {
        command: 'erase',
        args: [],
        options: { sealed: [erased.hex], reason: 'leaked', by: 'alice' },
      });
      readerToken = (await runAdminCommand(db, { command: 'reader add', args: ['auditor'] }))
        .split('\n')
        .at(-1)!;
      await runAdminCommand(db, {
        command: 'hold add',
        args: [],
        options: { session: 'kept', reason: 'litigation' },
      });
      await runAdminCommand(db, { command: 'retention set', args: ['180d'] });
      app.vigil.sequencer.syncOperatorActions();
      await eventually(async () => {
        const pending = await db
          .selectFrom('operator_actions')
          .select('id')
          .where('record_index', 'is', null)
          .execute();
        return pending.length === 0 ? true : undefined;
      });
      const last = await post(s1.next(1));
      const line = cosign(last.checkpoint, WITNESS.signerKey, 1_800_000_000n);
      const res = await app.inject({
        method: 'POST',
        url: '/v1/cosignatures',
        headers: { 'content-type': 'text/plain; charset=utf-8' },
        payload: `${last.checkpoint}${line}`,
      });
      t.equal(res.statusCode, 200, `answered ${res.statusCode}`);
      checkpointA = (await app.inject('/checkpoint')).body;
      size = parseCheckpoint(body(checkpointA)).size;
      const registry = await registryEntries(db);
      t.ok(registry > 0n, `A holds ${registry} registry entries`);
      t.equal(size, 300n + registry, 'A holds the 300 records and the registry entries');
      t.match(checkpointA, line, 'A serves the cosignature');
      await app.close();
      sealedA = await sealedTables(db);
      t.same(
        Object.entries(sealedA).map(([name, rows]) => [name, rows.length]),
        [
          ['operator_actions', 4],
          ['erasures', 1],
          ['sealed', 1],
          ['sealed_columns', 1],
          ['readers', 1],
          ['holds', 1],
        ],
        'A holds sealed values, an erasure, a reader, a hold and their actions',
      );
      await opened.close();
    }
    const exported = await cli(a, ['export', exportDir]);
    t.equal(exported.code, 0, exported.out);
    t.match(exported.out, new RegExp(`exported log test\\.example/log at size ${size}\\b`));
    t.match(exported.out, new RegExp(`entries: ${size} rows`));
    t.match(
      exported.out,
      /the key files are not in the export: copy \S+\/log\.key \(log key\) and \S+\/operator\.key \(operator key\) separately/,
      'export reminds that the key files move separately',
    );
    // Neither private key is in the export.
    const operatorKey = await readKeyFile(join(a.dataDir, 'operator.key'));
    for (const file of await readdir(exportDir)) {
      const text = await readFile(join(exportDir, file), 'utf8');
      t.notOk(text.includes(log.signerKey) || text.includes(operatorKey.signerKey), `${file} holds no key`);
      t.ok(
        readerToken.startsWith('vigil_rt_') && !text.includes(readerToken),
        `${file} holds no reader token`,
      );
    }

    t.equal((await cli(b, ['migrate'])).code, 0, 'B migrated');
    const imported = await cli(b, ['import', exportDir]);
    t.equal(imported.code, 0, imported.out);
    t.match(imported.out, new RegExp(`imported log test\\.example/log at size ${size},`));

    // The log runs on B with both of A's key files: with the log key alone it refuses to start (a new
    // operator key would not be the one the tree registered); with both, same checkpoint, receipts
    // verify, new entries extend it.
    const { db } = await b.open<Database>();
    const configB = loadConfig({}, { 'data-dir': b.dataDir, 'rate-address': '0' });
    await copyFile(join(a.dataDir, 'log.key'), join(b.dataDir, 'log.key'));
    await t.rejects(
      buildApp(configB, { db, logger: false }),
      new RegExp(
        `operator key file \\S+/operator\\.key is missing; the log registered operator key ` +
          `${operatorKey.vkey.replaceAll('+', '\\+')} at entry 0: restore the file`,
      ),
      'without operator.key the imported log does not start',
    );
    await copyFile(join(a.dataDir, 'operator.key'), join(b.dataDir, 'operator.key'));
    const again = await importLog(db, exportDir).catch((err: TransferError) => err);
    t.equal(
      (again as TransferError).code,
      'STORE_NOT_EMPTY',
      'a second import into the same store is refused',
    );
    t.same(await sealedTables(db), sealedA, 'sealed values, erasures, readers, holds and actions moved');
    t.equal(
      (
        await db
          .insertInto('operator_actions')
          .values({ kind: 'x', fields: '{}' })
          .returning('id')
          .executeTakeFirstOrThrow()
      ).id,
      BigInt(JSON.parse(sealedA.operator_actions!.at(-1)!).id) + 1n,
      'the action ids continue after the imported ones',
    );
    await db.deleteFrom('operator_actions').where('kind', '=', 'x').execute();
    const app = await buildApp(configB, { db, logger: false });
    await app.ready();
    const checkpointB = (await app.inject('/checkpoint')).body;
    t.equal(checkpointB, checkpointA, 'B serves the same checkpoint, with the cosignature');
    const policy = parsePolicy(`log ${log.vkey}\nquorum none\n`);
    for (const index of [0n, 255n, 256n, size - 1n]) {
      const receipt = (await app.inject(`/v1/receipt/${index}`)).body;
      const row = await db
        .selectFrom('entries')
        .select('entry')
        .where('leaf_index', '=', index)
        .executeTakeFirstOrThrow();
      t.doesNotThrow(() => verifyReceipt(receipt, row.entry, policy), `receipt ${index} verifies on B`);
    }
    const tile = await app.inject('/tile/0/000');
    t.equal(tile.statusCode, 200, 'the full level-0 tile is served');
    t.equal(tile.rawPayload.length, 256 * 32);
    const partial = await app.inject('/tile/1/000.p/1');
    t.equal(partial.statusCode, 200, 'the level-1 tile over the rebuilt level-8 node is served');
    const blob = await app.inject(
      `/v1/blobs/${hexEncode(sha256(new TextEncoder().encode('a large tool result')))}`,
    );
    t.equal(blob.body, 'a large tool result', 'the blob moved');
    const s4 = recordStream(log.emitterKey, '44444444-4444-4444-8444-444444444444');
    const res = await app.inject({
      method: 'POST',
      url: '/v1/entries',
      headers: { 'content-type': 'application/json' },
      payload: JSON.stringify({ entries: s4.next(3) }),
    });
    t.equal(res.statusCode, 200, `answered ${res.statusCode}`);
    const answer = res.json() as { entries: { index: string }[]; checkpoint: string };
    t.same(
      answer.entries.map((e) => e.index),
      [size, size + 1n, size + 2n].map(String),
      'new entries follow the imported ones',
    );
    t.equal(parseCheckpoint(body(answer.checkpoint)).size, size + 3n);
    const proof = await app.inject(`/v1/proof/consistency?from=${size}&to=${size + 3n}`);
    t.equal(proof.statusCode, 200, 'the new checkpoint is consistent with the imported one');
    await app.close();
  });
}

t.test('tampered exports are refused, naming the cause, and leave the store empty', async (t) => {
  // Postgres when it runs here (faster); the store kind does not change what is checked.
  const kind = kinds.includes('postgres') ? 'postgres' : kinds[0]!;
  const a = await createTestStore(kind);
  const c = await createTestStore(kind);
  const root = await mkdtemp(join(tmpdir(), 'vigil-export-'));
  t.teardown(async () => {
    await a.cleanup();
    await c.cleanup();
    await rm(root, { recursive: true, force: true });
  });
  const log = await prepareLog(a);
  let size: bigint;
  let erasedValue: { hex: string; bytes: Uint8Array } = { hex: '', bytes: new Uint8Array() };
  {
    const opened = await a.open<Database>();
    const db = opened.db;
    await runAdminCommand(db, {
      command: 'witness add',
      args: ['witness.test/w1', cosignerVerifierKey(WITNESS.signerKey)],
    });
    const app = await buildApp(loadConfig({}, { 'data-dir': a.dataDir, 'rate-address': '0' }), {
      db,
      logger: false,
    });
    await app.ready();
    const stream = recordStream(log.emitterKey, '55555555-5555-4555-8555-555555555555');
    let note = '';
    for (const n of [5, 5, 5]) {
      const res = await app.inject({
        method: 'POST',
        url: '/v1/entries',
        headers: { 'content-type': 'application/json' },
        payload: JSON.stringify({ entries: stream.next(n) }),
      });
      note = (res.json() as { checkpoint: string }).checkpoint;
    }
    await app.inject({
      method: 'POST',
      url: '/v1/cosignatures',
      headers: { 'content-type': 'text/plain; charset=utf-8' },
      payload: `${note}${cosign(note, WITNESS.signerKey, 1_800_000_000n)}`,
    });
    // 15 records, and the registry entries before them.
    size = parseCheckpoint(body(note)).size;
    t.equal(size, 15n + (await registryEntries(db)), 'A holds the 15 records and the registry entries');
    await app.close();
    await plantSealed(db, 3n, 'kept');
    erasedValue = await plantSealed(db, 4n, 'erased');
    await runAdminCommand(db, {
      command: 'erase',
      args: [],
      options: { session: 'erased', reason: 'asked', by: 'alice' },
    });
    await opened.close();
  }
  const good = join(root, 'good');
  t.equal((await cli(a, ['export', good])).code, 0);
  const goodLines = async (file: string) =>
    (await readFile(join(good, file), 'utf8')).split('\n').slice(0, -1);
  t.equal((await goodLines('entries.jsonl')).length, Number(size), 'every entry is exported');
  // The checkpoints the export holds, oldest first: the tampered ones are named by their size.
  const checkpointSizes = (await goodLines('checkpoints.jsonl')).map((l) =>
    BigInt((JSON.parse(l) as { tree_size: string }).tree_size),
  );
  t.equal(checkpointSizes.at(-1), size, 'the newest exported checkpoint is the tree head');
  const previous = checkpointSizes.at(-2)!;
  t.ok(previous > 0n, `an earlier checkpoint over entries: ${previous}`);
  {
    const opened = await c.open<Database>();
    const db = opened.db;
    await migrateToLatest(db, migrationsFolder('log'));
    await opened.close();
  }

  /**
   * Copies the good export, lets `edit` change one file's lines, and imports the copy into C. With
   * `recount`, the manifest's row count follows the edit (so the row count is not what catches it).
   */
  const attempt = async (
    name: string,
    file: string,
    edit: (lines: string[]) => string[],
    recount = false,
  ) => {
    const dir = join(root, name);
    await cp(good, dir, { recursive: true });
    const path = join(dir, file);
    const lines = edit((await readFile(path, 'utf8')).split('\n').slice(0, -1));
    await writeFile(path, `${lines.join('\n')}\n`);
    if (recount) {
      const manifestPath = join(dir, 'manifest.json');
      const m = JSON.parse(await readFile(manifestPath, 'utf8')) as {
        tables: { file: string; rows: string }[];
      };
      for (const table of m.tables) if (table.file === file) table.rows = String(lines.length);
      await writeFile(manifestPath, JSON.stringify(m));
    }
    const opened = await c.open<Database>();
    try {
      return await importLog(opened.db, dir).then(
        () => undefined,
        (err: unknown) => err as TransferError,
      );
    } finally {
      await opened.close();
    }
  };
  const entryLine = (line: string, f: (entry: string) => string) => {
    const row = JSON.parse(line) as { leaf_index: string; entry: string };
    const text = Buffer.from(row.entry, 'base64').toString('utf8');
    return JSON.stringify({ ...row, entry: Buffer.from(f(text)).toString('base64') });
  };
  const expectRefused = async (t: Test, err: TransferError | undefined, code: string, cause: RegExp) => {
    t.ok(err instanceof TransferError, `refused (${err?.message})`);
    t.equal(err?.code, code);
    t.match(err?.message ?? '', cause);
    t.same(await emptyTables(c), [], 'nothing half-loaded: the store is still empty');
  };

  t.test('a changed entry line', async (t) => {
    // The first checkpoint covering entry 7 is the first that no longer matches.
    const covering = checkpointSizes.find((s) => s > 7n)!;
    const err = await attempt('changed-entry', 'entries.jsonl', (lines) =>
      lines.map((l, i) => {
        if (i !== 7) return l;
        const changed = entryLine(l, (e) => e.replace('"peer":"', '"peer":"10.6.6.6 '));
        t.not(changed, l, 'entry 7 was changed');
        return changed;
      }),
    );
    await expectRefused(
      t,
      err,
      'EXPORT_ROOT_MISMATCH',
      new RegExp(`root .* but checkpoint ${covering} signs`),
    );
  });

  t.test('a dropped entry line', async (t) => {
    const err = await attempt(
      'dropped-entry',
      'entries.jsonl',
      (lines) => lines.filter((_l, i) => i !== 3),
      true,
    );
    await expectRefused(t, err, 'EXPORT_ENTRY_GAP', /expected entry 3, found 4/);
  });

  t.test('the last entry line dropped, row count unchanged', async (t) => {
    const err = await attempt('dropped-last-count', 'entries.jsonl', (lines) => lines.slice(0, -1));
    await expectRefused(
      t,
      err,
      'EXPORT_ROW_COUNT_MISMATCH',
      new RegExp(`entries\\.jsonl has ${size - 1n} rows, the manifest says ${size}\\b`),
    );
  });

  t.test('the last entry line dropped', async (t) => {
    const err = await attempt('dropped-last', 'entries.jsonl', (lines) => lines.slice(0, -1), true);
    await expectRefused(
      t,
      err,
      'EXPORT_ROOT_MISMATCH',
      new RegExp(`checkpoint ${size} is beyond the ${size - 1n} exported entries`),
    );
  });

  t.test('a changed checkpoint root', async (t) => {
    const err = await attempt('changed-checkpoint', 'checkpoints.jsonl', (lines) =>
      lines.map((l) => {
        const row = JSON.parse(l) as { tree_size: string; root_hash: string };
        if (BigInt(row.tree_size) !== previous) return l;
        return JSON.stringify({ ...row, root_hash: base64Encode(new Uint8Array(32)) });
      }),
    );
    await expectRefused(
      t,
      err,
      'EXPORT_CHECKPOINT_INVALID',
      new RegExp(`checkpoint ${previous}: its row does not match its signed note`),
    );
  });

  t.test('a checkpoint signed by another key', async (t) => {
    const other = generateKey('test.example/log');
    const err = await attempt('forged-checkpoint', 'checkpoints.jsonl', (lines) =>
      lines.map((l) => {
        const row = JSON.parse(l) as { tree_size: string; root_hash: string };
        if (BigInt(row.tree_size) !== size) return l;
        const note = signNote(
          formatCheckpoint({
            origin: 'test.example/log',
            size: BigInt(row.tree_size),
            root: Buffer.from(row.root_hash, 'base64'),
            extensions: [],
          }),
          [other.signerKey],
        );
        return JSON.stringify({ ...row, note });
      }),
    );
    await expectRefused(
      t,
      err,
      'EXPORT_CHECKPOINT_INVALID',
      new RegExp(`checkpoint ${size}: not signed by the log key`),
    );
  });

  t.test('a forged cosignature', async (t) => {
    const stranger = generateKey('witness.test/w1');
    const err = await attempt('forged-cosignature', 'cosignatures.jsonl', (lines) =>
      lines.map((l) => {
        const row = JSON.parse(l) as { line: string };
        const checkpoint = `test.example/log\n${size}\n${base64Encode(new Uint8Array(32))}\n`;
        return JSON.stringify({
          ...row,
          line: cosign(signNote(checkpoint, [stranger.signerKey]), stranger.signerKey, 1n),
        });
      }),
    );
    await expectRefused(
      t,
      err,
      'EXPORT_COSIGNATURE_INVALID',
      new RegExp(`cosignature of witness\\.test/w1 on checkpoint ${size}:`),
    );
  });

  t.test('a sealed value whose bytes were changed', async (t) => {
    const err = await attempt('changed-sealed', 'sealed.jsonl', (lines) =>
      lines.map((l) => {
        const row = JSON.parse(l) as { bytes: string };
        const bytes = Buffer.from(row.bytes, 'base64');
        bytes[bytes.length - 3]! ^= 1;
        return JSON.stringify({ ...row, bytes: bytes.toString('base64') });
      }),
    );
    await expectRefused(t, err, 'EXPORT_SEALED_INVALID', /bytes do not match its commitment/);
  });

  t.test('an erased value brought back', async (t) => {
    const err = await attempt(
      'erased-sealed',
      'sealed.jsonl',
      (lines) => {
        t.equal(lines.length, 1, 'the export holds the kept value only');
        const row = JSON.parse(lines[0]!) as Record<string, string>;
        const back = {
          ...row,
          sha256: erasedValue.hex,
          size: String(erasedValue.bytes.length),
          bytes: Buffer.from(erasedValue.bytes).toString('base64'),
        };
        return [lines[0]!, JSON.stringify(back)].sort();
      },
      true,
    );
    await expectRefused(t, err, 'EXPORT_SEALED_INVALID', new RegExp(`${erasedValue.hex} was erased`));
  });

  t.test('a table this version does not know', async (t) => {
    const err = await attempt('unknown-table', 'manifest.json', (lines) => {
      const m = JSON.parse(lines.join('\n')) as { tables: unknown[] };
      m.tables.push({ name: 'sealed_payloads', file: 'sealed_payloads.jsonl', rows: '0' });
      return [JSON.stringify(m)];
    });
    await expectRefused(t, err, 'EXPORT_TABLE_UNKNOWN', /sealed_payloads/);
  });

  t.test('the untouched export imports', async (t) => {
    const opened = await c.open<Database>();
    try {
      const r = await importLog(opened.db, good);
      t.equal(r.treeSize, size);
    } finally {
      await opened.close();
    }
    t.same(await emptyTables(c), ['entries', 'logs', 'checkpoints', 'tree_heads']);
  });
});
