// Erasure, legal holds and retention (DESIGN.md "Readers and sealed payloads"; contract: server CLI
// `erase`, `hold`, `retention`). Sealed values are planted in the tables directly, as the log stores
// them with their entry; the erasure must remove them and what was derived from them, leave a pending
// log.erasure action with one erasures row per commitment, refuse held values, and leave no byte of a
// planted marker anywhere in the database.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import pg from 'pg';
import { Kysely, PostgresDialect, sql } from 'kysely';
import { generateKey, hexEncode, sealValue, sha256 } from '@vigil/client';
import { createTestStore, forEachStore, postgresSkipReason, type TestStore } from '../src/db/testing.js';
import { migrateToLatest, migrationsFolder } from '../src/db/migrate.js';
import type { Database } from '../src/db/schema.js';
import { runAdminCommand, type AdminOptions } from '../src/admin.js';
import { eraseAndVacuum, parseDuration } from '../src/erasure.js';
import { buildApp } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { initLog } from '../src/tlog/signer.js';
import { eventually, SERVER_MAIN, serverEnv, spawnNode } from './helpers/process.js';
import { markerForms, markerHits } from './helpers/marker.js';

const ORIGIN = 'erasure.test/log';
const DAY = 86_400_000;

interface Planted {
  hex: string;
  marker: string;
}

let nextIndex = 0n;

/**
 * Stores one sealed value as the log does with its entry (session, stream, emitter, received), with a
 * derived search column, both carrying a fresh marker. Returns its commitment.
 */
async function plant(
  db: Kysely<Database>,
  where: { session?: string; stream?: string; emitter?: string; received?: Date },
): Promise<Planted> {
  const marker = `MARKER${randomBytes(12).toString('hex')}`;
  const sealed = sealValue({ note: `the secret is ${marker}` }, randomBytes(16));
  const hex = sealed.ref.$sealed.sha256;
  const index = nextIndex++;
  // One transaction: a retention run going on meanwhile sees the value with its column or not at all.
  await db.transaction().execute(async (trx) => {
    await trx
      .insertInto('sealed')
      .values({
        sha256: hex,
        size: BigInt(sealed.bytes.length),
        bytes: sealed.bytes,
        leaf_index: index,
        emitter: where.emitter ?? 'em1',
        stream: where.stream ?? 'stream-a',
        session: where.session ?? null,
        ...(where.received ? { received: where.received } : {}),
      })
      .execute();
    await trx
      .insertInto('sealed_columns')
      .values({ leaf_index: index, sha256: hex, tool: `tool-${marker}`, resource_uri: null })
      .execute();
  });
  return { hex, marker };
}

async function sealedLeft(db: Kysely<Database>, hexes: string[]): Promise<string[]> {
  if (hexes.length === 0) return [];
  const rows = await db.selectFrom('sealed').select('sha256').where('sha256', 'in', hexes).execute();
  const cols = await db.selectFrom('sealed_columns').select('sha256').where('sha256', 'in', hexes).execute();
  return [...rows.map((r) => `sealed ${r.sha256}`), ...cols.map((r) => `column ${r.sha256}`)].sort();
}

async function actions(db: Kysely<Database>, kind: string) {
  return (
    await db.selectFrom('operator_actions').selectAll().where('kind', '=', kind).orderBy('id').execute()
  ).map((r) => ({ id: r.id, fields: r.fields as Record<string, unknown>, recordIndex: r.record_index }));
}

async function erasuresOf(db: Kysely<Database>, actionId: bigint): Promise<string[]> {
  return (
    await db
      .selectFrom('erasures')
      .select('sha256')
      .where('action_id', '=', actionId)
      .orderBy('sha256')
      .execute()
  ).map((r) => r.sha256);
}

/** The files under `dir` whose bytes hold `marker`. */
async function filesHolding(dir: string, marker: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (!e.isFile()) continue;
    const path = join(e.parentPath, e.name);
    const bytes = await readFile(path).catch(() => undefined); // removed meanwhile
    if (bytes?.includes(marker)) out.push(path);
  }
  return out;
}

const erase = (db: Kysely<Database>, options: AdminOptions) =>
  runAdminCommand(db, { command: 'erase', args: [], options: { by: 'alice', ...options } });

async function cli(store: TestStore, args: string[]): Promise<{ code: number | null; out: string }> {
  const child = spawnNode(SERVER_MAIN, args, serverEnv(store));
  const { code } = await child.exited;
  return { code, out: child.output() };
}

t.test('parseDuration takes a number and m, h or d', async (t) => {
  t.equal(parseDuration('30m'), 30 * 60_000);
  t.equal(parseDuration('12h'), 12 * 3_600_000);
  t.equal(parseDuration('180d'), 180 * DAY);
  for (const bad of ['', '0d', '030d', '1w', '1.5d', '-1d', 'd', '10', ' 1d', '1d ', '1D', '1234567d'])
    t.throws(() => parseDuration(bad), /want a number and m, h or d/, `refuses ${JSON.stringify(bad)}`);
});

forEachStore(t, async (t, store) => {
  const { db } = await store.open<Database>();
  await migrateToLatest(db, migrationsFolder('log'));

  await t.test('erase --session removes its values and their columns, nothing else', async (t) => {
    const a = [await plant(db, { session: 's-1' }), await plant(db, { session: 's-1', stream: 'other' })];
    const keep = await plant(db, { session: 's-2' });
    const out = await erase(db, { session: 's-1', reason: 'GDPR request 17' });
    t.match(out, /^erased 2 sealed values; log\.erasure action (\d+) /);
    t.same(
      await sealedLeft(
        db,
        a.map((p) => p.hex),
      ),
      [],
      'rows and derived columns gone',
    );
    t.same(await sealedLeft(db, [keep.hex]), [`column ${keep.hex}`, `sealed ${keep.hex}`], 's-2 untouched');
    const [action, ...more] = await actions(db, 'log.erasure');
    t.equal(more.length, 0, 'one action');
    t.equal(out.match(/action (\d+)/)![1], String(action!.id), 'the output names the action');
    t.same(action!.fields, {
      reason: 'GDPR request 17',
      by: 'alice',
      target: { session: 's-1' },
      count: 2,
      commitments: a.map((p) => p.hex).sort(),
    });
    t.equal(action!.recordIndex, null, 'pending until the log appends the record');
    t.same(await erasuresOf(db, action!.id), a.map((p) => p.hex).sort(), 'one erasures row each');
  });

  await t.test('erase --stream and --sealed', async (t) => {
    const s = [await plant(db, { stream: 'st-9' }), await plant(db, { stream: 'st-9', session: 'x' })];
    const h = [await plant(db, {}), await plant(db, {}), await plant(db, {})];
    t.match(await erase(db, { stream: 'st-9', reason: 'r' }), /^erased 2 sealed values/);
    t.same(
      await sealedLeft(
        db,
        s.map((p) => p.hex),
      ),
      [],
    );
    const unknown = 'f'.repeat(64);
    t.match(
      await erase(db, { sealed: [h[0]!.hex, h[2]!.hex, unknown], reason: 'leaked token' }),
      /^erased 2 sealed values/,
      'an unknown commitment is not counted',
    );
    t.same(await sealedLeft(db, [h[0]!.hex, h[2]!.hex]), []);
    t.equal((await sealedLeft(db, [h[1]!.hex])).length, 2, 'the value not named stays');
    const all = await actions(db, 'log.erasure');
    t.same(all.at(-2)!.fields.target, { stream: 'st-9' });
    t.same(all.at(-1)!.fields.target, { sealed: true });
    t.same(all.at(-1)!.fields.commitments, [h[0]!.hex, h[2]!.hex].sort());
  });

  await t.test('erasing twice is idempotent', async (t) => {
    const p = await plant(db, { session: 'twice' });
    t.match(await erase(db, { session: 'twice', reason: 'r' }), /^erased 1 sealed value;/);
    const before = (await actions(db, 'log.erasure')).length;
    t.equal(await erase(db, { session: 'twice', reason: 'r' }), 'nothing to erase');
    t.equal(await erase(db, { sealed: [p.hex], reason: 'r' }), 'nothing to erase');
    t.equal((await actions(db, 'log.erasure')).length, before, 'no second action');
  });

  await t.test('usage errors erase nothing', async (t) => {
    const p = await plant(db, { session: 'usage' });
    const before = (await actions(db, 'log.erasure')).length;
    await t.rejects(erase(db, { session: 'usage' }), /usage: erase/, 'no reason');
    await t.rejects(erase(db, { reason: 'r' }), /usage: erase/, 'no selection');
    await t.rejects(
      erase(db, { session: 'usage', stream: 'x', reason: 'r' }),
      /usage: erase/,
      'two selections',
    );
    await t.rejects(
      erase(db, { sealed: [p.hex.toUpperCase()], reason: 'r' }),
      /a commitment is 64 lowercase hex digits/,
    );
    t.equal((await sealedLeft(db, [p.hex])).length, 2);
    t.equal((await actions(db, 'log.erasure')).length, before);
  });

  await t.test('held values are refused and untouched; release, then erase works', async (t) => {
    const bySession = await plant(db, { session: 'held-s', stream: 'held-st', emitter: 'em-held' });
    const other = await plant(db, { session: 'held-s', stream: 'free-st' });
    const id = await runAdminCommand(db, {
      command: 'hold add',
      args: [],
      options: { stream: 'held-st', reason: 'litigation 4' },
    });
    t.match(id, /^hold-[0-9a-f]{8}$/, 'hold add prints the id');
    const emitterHold = await runAdminCommand(db, {
      command: 'hold add',
      args: [],
      options: { emitter: 'em-held', reason: 'audit' },
    });
    const before = (await actions(db, 'log.erasure')).length;
    for (const options of [
      { session: 'held-s' },
      { stream: 'held-st' },
      { sealed: [other.hex, bySession.hex] },
    ]) {
      const err = await erase(db, { ...options, reason: 'r' }).catch((e: Error) => e);
      t.ok(err instanceof Error, `${JSON.stringify(options)} refused`);
      t.match((err as Error).message, new RegExp(`refused: under legal hold .*${id} \\(stream held-st\\)`));
      t.match((err as Error).message, new RegExp(`${emitterHold} \\(emitter em-held\\)`));
      t.match((err as Error).message, /nothing erased/);
    }
    t.equal((await sealedLeft(db, [bySession.hex, other.hex])).length, 4, 'nothing erased, held or not');
    t.equal((await actions(db, 'log.erasure')).length, before, 'no action');

    t.same(
      (await actions(db, 'hold.add')).slice(-2).map((a) => a.fields),
      [
        { hold: id, scope: 'stream', target: 'held-st', reason: 'litigation 4' },
        { hold: emitterHold, scope: 'emitter', target: 'em-held', reason: 'audit' },
      ],
      'hold.add actions',
    );
    const list = await runAdminCommand(db, { command: 'hold list', args: [] });
    t.match(list, new RegExp(`^${id}\\tstream\\theld-st\\t\\S+\\tactive\\tlitigation 4$`, 'm'));

    t.equal(await runAdminCommand(db, { command: 'hold release', args: [id] }), `released hold ${id}`);
    await t.rejects(runAdminCommand(db, { command: 'hold release', args: [id] }), /no active hold/);
    const still = await erase(db, { session: 'held-s', reason: 'r' }).catch((e: Error) => e);
    t.match(
      (still as Error).message,
      new RegExp(`under legal hold ${emitterHold} `),
      'the emitter hold stands',
    );
    t.notMatch((still as Error).message, new RegExp(id), 'the released hold is not named');
    await runAdminCommand(db, { command: 'hold release', args: [emitterHold] });
    t.match(await erase(db, { session: 'held-s', reason: 'r' }), /^erased 2 sealed values/);
    t.same(await sealedLeft(db, [bySession.hex, other.hex]), []);
    t.same(
      (await actions(db, 'hold.release')).slice(-2).map((a) => a.fields),
      [{ hold: id }, { hold: emitterHold }],
    );
    t.match(
      await runAdminCommand(db, { command: 'hold list', args: [] }),
      new RegExp(`^${id}\\tstream\\theld-st\\t\\S+\\treleased \\S+\\tlitigation 4$`, 'm'),
    );
    await t.rejects(
      runAdminCommand(db, { command: 'hold add', args: [], options: { session: 'x' } }),
      /usage: hold add/,
      'a hold needs a reason',
    );
  });

  await t.test('no byte of an erased marker is left in any table or column', async (t) => {
    const planted = [await plant(db, { session: 'marked' }), await plant(db, { session: 'marked' })];
    // As autovacuum would: the planner's statistics then hold sample values of the columns.
    await sql`analyze sealed, sealed_columns`.execute(db);
    for (const p of planted) {
      const before = await markerHits(db, p.marker);
      for (const column of [
        'pg_catalog.pg_statistic.stavalues',
        'public.sealed.bytes',
        'public.sealed_columns.tool',
      ])
        t.ok(
          before.some((c) => c.startsWith(column)),
          `the scan finds the marker in ${column} before (${before.join(', ')})`,
        );
    }
    await erase(db, { session: 'marked', reason: 'r' });
    for (const p of planted) t.same(await markerHits(db, p.marker), [], 'no table or column holds it after');
  });

  await t.test(
    'erase --vacuum-full: no data file holds the bytes afterwards',
    store.kind === 'embedded'
      ? {}
      : { skip: 'the data files of an external PostgreSQL are not reachable here' },
    async (t) => {
      const base = join(store.dataDir, 'pg', 'base');
      const p = await plant(db, { session: 'files' });
      await sql`checkpoint`.execute(db);
      t.not((await filesHolding(base, p.marker)).length, 0, 'a data file holds the marker before');
      const r = await cli(store, ['erase', '--session', 'files', '--reason', 'leaked', '--vacuum-full']);
      t.equal(r.code, 0, r.out);
      t.match(r.out, /erased 1 sealed value;/);
      await sql`checkpoint`.execute(db);
      t.same(await filesHolding(base, p.marker), [], 'no data file holds it after');
    },
  );

  await t.test('a session of 10,000 values is erased in one statement', async (t) => {
    // Planted set-based too: distinct fake S per session.
    const plantMany = (session: string, n: number) =>
      sql`insert into sealed (sha256, size, bytes, session)
        select encode(sha256(b), 'hex'), length(b), b, ${session}
        from (select convert_to(${session} || i, 'UTF8') as b from generate_series(1, ${n}::int) i) x`.execute(
        db,
      );
    const hexesOf = async (session: string) =>
      (await db.selectFrom('sealed').select('sha256').where('session', '=', session).execute())
        .map((r) => r.sha256)
        .sort();
    for (const [session, n] of [
      ['inline', 500],
      ['listed', 501],
      ['big', 10000],
    ] as const) {
      await plantMany(session, n);
      const hexes = await hexesOf(session);
      t.equal(hexes.length, n);
      t.match(await erase(db, { session, reason: 'r' }), new RegExp(`^erased ${n} sealed values`));
      t.same(await hexesOf(session), [], `${session}: every value erased`);
      const action = (await actions(db, 'log.erasure')).at(-1)!;
      t.equal(action.fields.count, n);
      t.same(await erasuresOf(db, action.id), hexes, `${session}: an erasures row each`);
      const list = action.fields.commitments;
      if (n <= 500) {
        t.same(list, hexes, `${n} commitments are listed in the record`);
        continue;
      }
      // More than 500: a $blob reference to the canonical JSON array, stored with the erasure.
      const ref = (list as { $blob: { sha256: string; size: number } }).$blob;
      const canonical = JSON.stringify(hexes);
      t.same(ref, { sha256: hexEncode(sha256(Buffer.from(canonical))), size: canonical.length });
      const blob = await db
        .selectFrom('blobs')
        .select('bytes')
        .where('sha256', '=', ref.sha256)
        .executeTakeFirst();
      t.equal(Buffer.from(blob!.bytes).toString('utf8'), canonical, `${n} commitments are a public blob`);
    }
  });

  await t.test('retention set/show, and the log erases old values only, skipping held ones', async (t) => {
    t.equal(
      await runAdminCommand(db, { command: 'retention show', args: [] }),
      'retention off: sealed values are kept',
    );
    await t.rejects(runAdminCommand(db, { command: 'retention set', args: ['7w'] }), /want a number/);
    t.equal(await runAdminCommand(db, { command: 'retention set', args: ['30d'] }), 'retention set to 30d');
    t.equal(await runAdminCommand(db, { command: 'retention show', args: [] }), 'retention 30d');
    t.same(
      (await actions(db, 'retention.set')).map((a) => a.fields),
      [{ duration: '30d' }],
    );

    const now = Date.now();
    const old = await plant(db, { session: 'r-old', received: new Date(now - 40 * DAY) });
    const heldOld = await plant(db, { session: 'r-held', received: new Date(now - 40 * DAY) });
    const young = await plant(db, { session: 'r-young', received: new Date(now - 20 * DAY) });
    const holdId = await runAdminCommand(db, {
      command: 'hold add',
      args: [],
      options: { session: 'r-held', reason: 'keep' },
    });

    // The log: a fresh log in this store, retention checked at start and then every 200 ms.
    const logKey = generateKey(ORIGIN);
    if (!(await db.selectFrom('logs').select('origin').executeTakeFirst()))
      await initLog(db, ORIGIN, logKey.signerKey);
    const config = loadConfig(
      {},
      { 'data-dir': store.dataDir, 'rate-address': '0', 'retention-interval': '200' },
    );
    const app = await buildApp(config, { db, signerKey: logKey.signerKey, logger: false });
    t.teardown(() => app.close());
    const before = (await actions(db, 'log.erasure')).length;
    await app.ready();
    const first = await eventually(
      async () => (await actions(db, 'log.erasure'))[before],
      30_000,
      'the retention run at start',
    );
    t.same(first.fields, {
      reason: 'retention 30d',
      by: 'retention',
      target: { retention: '30d' },
      count: 1,
      commitments: [old.hex],
    });
    t.same(await sealedLeft(db, [old.hex]), [], 'the old value is erased');
    t.equal((await sealedLeft(db, [heldOld.hex, young.hex])).length, 4, 'held and young values stay');

    // Later runs: nothing new to erase means no action; a value that became old is erased.
    const again = await app.retention.runOnce();
    t.same(again, { kind: 'nothing' }, 'a run with nothing to erase');
    t.equal((await actions(db, 'log.erasure')).length, before + 1, 'no action for it');
    const later = await plant(db, { session: 'r-later', received: new Date(now - 31 * DAY) });
    await eventually(async () => ((await sealedLeft(db, [later.hex])).length === 0 ? true : undefined));
    t.same(
      (await actions(db, 'log.erasure'))[before + 1]!.fields.commitments,
      [later.hex],
      'the interval run',
    );

    await runAdminCommand(db, { command: 'hold release', args: [holdId] });
    await eventually(async () => ((await sealedLeft(db, [heldOld.hex])).length === 0 ? true : undefined));
    t.match(
      (await actions(db, 'log.erasure'))[before + 2]!.fields,
      { count: 1, commitments: [heldOld.hex] },
      'released: erased by the next run',
    );

    t.equal(
      await runAdminCommand(db, { command: 'retention set', args: ['off'] }),
      'retention off: sealed values are kept',
    );
    // A run that started before `off` may still be going: wait it out, then every run sees `off`.
    await app.retention.runOnce();
    const ancient = await plant(db, { session: 'r-off', received: new Date(now - 400 * DAY) });
    t.equal(await app.retention.runOnce(), undefined, 'retention off: no run');
    t.equal((await sealedLeft(db, [ancient.hex, young.hex])).length, 4, 'nothing erased');
  });

  await t.test('the CLI: erase, hold and retention through vigil-server', async (t) => {
    const p = [await plant(db, { session: 'cli-s' }), await plant(db, { session: 'cli-s' })];
    const q = await plant(db, { session: 'cli-q' });
    const held = await cli(store, ['hold', 'add', '--session', 'cli-s', '--reason', 'court order']);
    t.equal(held.code, 0, held.out);
    const id = /^(hold-[0-9a-f]{8})$/m.exec(held.out)?.[1];
    t.ok(id, `prints the hold id: ${held.out}`);
    const refused = await cli(store, ['erase', '--session', 'cli-s', '--reason', 'asked']);
    t.equal(refused.code, 1, 'a held value: exit 1');
    t.match(refused.out, new RegExp(`refused: under legal hold ${id} \\(session cli-s\\)`));
    t.equal(
      (
        await sealedLeft(
          db,
          p.map((x) => x.hex),
        )
      ).length,
      4,
    );
    t.equal((await cli(store, ['hold', 'release', id!])).code, 0);

    const erased = await cli(store, [
      'erase',
      '--sealed',
      p[0]!.hex,
      q.hex,
      '--reason',
      'asked',
      '--by',
      'bob',
    ]);
    t.equal(erased.code, 0, erased.out);
    t.match(erased.out, /erased 2 sealed values; log\.erasure action \d+/);
    t.same(await sealedLeft(db, [p[0]!.hex, q.hex]), []);
    t.equal((await sealedLeft(db, [p[1]!.hex])).length, 2, 'the other value of the session stays');
    const last = (await actions(db, 'log.erasure')).at(-1)!;
    t.match(last.fields, { by: 'bob', reason: 'asked', target: { sealed: true } });
    const twice = await cli(store, ['erase', '--sealed', p[0]!.hex, '--reason', 'asked']);
    t.equal(twice.code, 0, 'nothing to erase: exit 0');
    t.match(twice.out, /nothing to erase/);

    const byDefault = await cli(store, ['erase', '--session', 'cli-s', '--reason', 'asked']);
    t.equal(byDefault.code, 0, byDefault.out);
    const { username } = await import('node:os').then((os) => os.userInfo());
    t.match(
      (await actions(db, 'log.erasure')).at(-1)!.fields,
      { by: username },
      '--by defaults to the OS user',
    );

    const set = await cli(store, ['retention', 'set', '12h']);
    t.equal(set.code, 0, set.out);
    t.match((await cli(store, ['retention', 'show'])).out, /retention 12h/);
    const bad = await cli(store, ['erase', '--session', 'cli-s']);
    t.equal(bad.code, 1, 'no reason: exit 1');
    t.match(bad.out, /usage: erase/);
  });
});

// pg_dump of the whole database (the system PostgreSQL: its pg_dump matches its server) holds the
// marker before the erasure and no form of it after.
const dumpSkip = postgresSkipReason();
t.test('pg_dump holds no byte of an erased value', dumpSkip ? { skip: dumpSkip } : {}, async (t) => {
  const store = await createTestStore('postgres');
  t.teardown(() => store.cleanup());
  const { db } = await store.open<Database>();
  await migrateToLatest(db, migrationsFolder('log'));
  const planted = await plant(db, { session: 'dumped' });
  const dump = () => {
    const r = spawnSync('pg_dump', ['--no-owner', store.databaseUrl!], {
      encoding: 'utf8',
      maxBuffer: 256 * 1024 * 1024,
    });
    if (r.status !== 0) throw new Error(`pg_dump failed: ${r.stderr}`);
    return r.stdout.toLowerCase();
  };
  const found = (text: string) => markerForms(planted.marker).filter((f) => text.includes(f.toLowerCase()));
  t.ok(found(dump()).length >= 2, 'the dump holds the marker before (the value as hex, the column)');
  t.match(await erase(db, { session: 'dumped', reason: 'r' }), /^erased 1 sealed value;/);
  t.same(found(dump()), [], 'the dump holds no form of it after');
});

// Retention runs inside the log, which connects to an external PostgreSQL as the migration's service
// role: that role must be able to erase (delete the values, insert the action, the erasure marks and
// a commitments blob); its VACUUM of tables it does not own is a warning, not a failure.
t.test('the service role can erase (retention in the log)', dumpSkip ? { skip: dumpSkip } : {}, async (t) => {
  const store = await createTestStore('postgres');
  t.teardown(() => store.cleanup());
  const { db } = await store.open<Database>();
  await migrateToLatest(db, migrationsFolder('log'));
  const old = new Date(Date.now() - 2 * DAY);
  await sql`insert into sealed (sha256, size, bytes, session, received)
    select encode(sha256(b), 'hex'), length(b), b, 'svc', ${old}
    from (select convert_to('svc' || i, 'UTF8') as b from generate_series(1, 501) i) x`.execute(db);
  const kept = await plant(db, { session: 'svc-young' });
  const service = new Kysely<Database>({
    dialect: new PostgresDialect({
      pool: new pg.Pool({ connectionString: store.databaseUrl, max: 2, options: '-c role=vigil_service' }),
    }),
  });
  t.teardown(() => service.destroy());
  const role = await sql<{ r: string }>`select current_user as r`.execute(service);
  t.equal(role.rows[0]!.r, 'vigil_service', 'connected as the service role');
  const r = await eraseAndVacuum(
    service,
    { olderThan: new Date(Date.now() - DAY) },
    { reason: 'retention 1d', by: 'retention', target: { retention: '1d' }, held: 'skip' },
  );
  t.match(r, { kind: 'erased', count: 501 }, 'the service role erased the old values');
  t.equal((await sealedLeft(db, [kept.hex])).length, 2, 'the young value stays');
  const left = await db.selectFrom('sealed').select('sha256').where('session', '=', 'svc').execute();
  t.equal(left.length, 0);
});
