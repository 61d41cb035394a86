// The reader API (contract "Log HTTP API"; DESIGN.md "Readers and sealed payloads"): sealed values go
// only to an unrevoked reader of this log, by Authorization header, and only after ONE access.read
// record of the operator emitter is committed; nothing public (entries, tiles, receipts, blobs) ever
// holds them. A marker planted in a sealed value is searched for in every public answer and in the
// server's log output.
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import t from 'tap';
import { sql } from 'kysely';
import {
  base64Encode,
  formatEntry,
  generateKey,
  operatorNameFor,
  parsePolicy,
  recordHash,
  sealValue,
  signRecord,
  verifyReceipt,
  verifyRecordSignature,
  type Entry,
} from '@vigil/client';
import { createTestStore, forEachStore } from '../../src/db/testing.js';
import { migrateToLatest, migrationsFolder } from '../../src/db/migrate.js';
import type { Database } from '../../src/db/schema.js';
import { buildApp } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { initLog } from '../../src/tlog/signer.js';
import { runAdminCommand } from '../../src/admin.js';
import { insertOperatorAction } from '../../src/db/repository.js';

const ORIGIN = 'sealed.test/log';
const OPERATOR = operatorNameFor(ORIGIN);
const MARKER = 'MARKER-4c1d-sealed';

/** The token printed by `reader add` (its last line). */
const tokenOf = (out: string) => out.split('\n').at(-1)!;

forEachStore(t, async (t, store) => {
  const { db } = await store.open<Database>();
  await migrateToLatest(db, migrationsFolder('log'));
  const logKey = generateKey(ORIGIN);
  await initLog(db, ORIGIN, logKey.signerKey);
  const em = generateKey('em1');
  await runAdminCommand(db, { command: 'emitter add', args: ['em1', em.verifierKey] });
  const aliceOut = await runAdminCommand(db, { command: 'reader add', args: ['alice'] });
  const alice = tokenOf(aliceOut);
  const bob = tokenOf(await runAdminCommand(db, { command: 'reader add', args: ['bob'] }));
  const config = loadConfig(
    {},
    { 'data-dir': store.dataDir, 'rate-address': '0', 'max-body-bytes': '6000000' },
  );
  let failCommits = false;
  const output: string[] = [];
  const app = await buildApp(config, {
    db,
    signerKey: logKey.signerKey,
    logger: {
      level: 'debug',
      redact: ['req.headers.authorization'],
      stream: new Writable({
        write(chunk: Buffer, _enc, done) {
          output.push(chunk.toString());
          done();
        },
      }),
    },
    hooks: {
      beforeCommit: () => {
        if (failCommits) throw new Error('injected commit failure');
      },
    },
  });
  await app.ready();
  await app.vigil.sequencer.flush();
  t.teardown(() => app.close());
  const policy = parsePolicy(`log ${logKey.verifierKey}\nquorum none\n`);

  // Records with sealed values: a tool call whose params are sealed, a tool name sealed (--seal all),
  // and a record without sealed values.
  const stream = randomUUID();
  let prev: Record<string, unknown> | undefined;
  let seq = 0;
  const submit = async (
    extra: Record<string, unknown>,
    values: { ref: { $sealed: { sha256: string } }; bytes: Uint8Array }[],
  ) => {
    const record = {
      v: 1,
      stream,
      seq: seq++,
      ...(prev ? { prev: recordHash(prev) } : {}),
      time: new Date().toISOString(),
      kind: 'mcp.message',
      session: 'sess-a',
      ...extra,
    };
    prev = record;
    const blobs = Object.fromEntries(values.map((v) => [v.ref.$sealed.sha256, base64Encode(v.bytes)]));
    const res = await app.inject({
      method: 'POST',
      url: '/v1/entries',
      headers: { 'content-type': 'application/json' },
      payload: JSON.stringify({
        entries: [{ emitter: 'em1', record, sig: signRecord(record, em.signerKey), blobs }],
      }),
    });
    t.equal(res.statusCode, 200, res.body);
    return BigInt((res.json() as { entries: { index: string }[] }).entries[0]!.index);
  };
  const params = sealValue({ name: 'read_file', arguments: { path: `/home/${MARKER}` } }, randomBytes(16));
  const result = sealValue({ content: [{ type: 'text', text: `contents ${MARKER}` }] }, randomBytes(16));
  const toolName = sealValue('secret_tool', randomBytes(16));
  const doomed = sealValue(`to be erased ${MARKER}`, randomBytes(16));
  const hex = (s: { ref: { $sealed: { sha256: string } } }) => s.ref.$sealed.sha256;
  const i1 = await submit(
    {
      'mcp.method.name': 'tools/call',
      message: { jsonrpc: '2.0', id: 1, method: 'tools/call', params: params.ref },
    },
    [params],
  );
  const i2 = await submit({ message: { jsonrpc: '2.0', id: 1, result: result.ref }, extra: doomed.ref }, [
    result,
    doomed,
  ]);
  const i3 = await submit({ 'gen_ai.tool.name': toolName.ref, 'mcp.method.name': 'tools/call' }, [toolName]);
  const iPlain = await submit({ note: 'nothing sealed' }, []);

  const size = async () => BigInt((await app.inject({ url: '/checkpoint' })).body.split('\n')[1]!);
  const entryAt = async (index: bigint): Promise<Entry> =>
    ((await app.inject({ url: `/v1/entries/${index}` })).json() as { entry: Entry }).entry;
  const as = (token: string) => ({ authorization: `Bearer ${token}` });
  const operatorVkey = app.vigil.tlog.operator.vkey;
  /** The access.read records in [from, size): checked as operator records, chained on its stream. */
  const accessRecords = async (from: bigint) => {
    const out: Record<string, unknown>[] = [];
    const to = await size();
    for (let i = from; i < to; i++) {
      const e = await entryAt(i);
      if (e.record.kind !== 'access.read') continue;
      t.equal(e.emitter, OPERATOR, `access record ${i} is the operator's`);
      verifyRecordSignature(e.record, e.sig, operatorVkey);
      const bundle = await app.inject({ url: `/v1/entries/${i}` });
      const body = bundle.json() as { receipt: string };
      t.equal(
        verifyReceipt(body.receipt, formatEntry(e), policy).index,
        i,
        `access record ${i}: receipt verifies`,
      );
      out.push(e.record);
    }
    return out;
  };

  await t.test('reader add prints the token once; the log keeps only its hash and records it', async (t) => {
    t.match(alice, /^vigil_rt_[A-Za-z0-9_-]{43}$/);
    t.match(aliceOut, /added reader alice/);
    const rows = await db.selectFrom('readers').selectAll().orderBy('name').execute();
    t.same(
      rows.map((r) => r.name),
      ['alice', 'bob'],
    );
    t.equal(
      rows[0]!.token_sha256,
      createHash('sha256').update(alice).digest('hex'),
      'SHA-256 hex of the token',
    );
    const list = await runAdminCommand(db, { command: 'reader list', args: [] });
    t.match(list, /^alice\t/m);
    t.notOk(list.includes(alice) || list.includes(bob), 'reader list never shows a token');
    await t.rejects(runAdminCommand(db, { command: 'reader add', args: ['alice'] }), /exists already/);
    await t.rejects(runAdminCommand(db, { command: 'reader add', args: ['has space'] }), /reader name/);
    // The running log appended both reader.add actions at start, signed by the operator.
    const adds: unknown[] = [];
    for (let i = 0n; i < i1; i++) {
      const e = await entryAt(i);
      if (e.record.kind === 'reader.add') {
        verifyRecordSignature(e.record, e.sig, operatorVkey);
        adds.push(e.record.name);
      }
    }
    t.same(adds, ['alice', 'bob']);
  });

  await t.test(
    'without an unrevoked reader of this log: 401 READER_REQUIRED, nothing revealed or recorded',
    async (t) => {
      const other = await createTestStore(store.kind);
      t.teardown(() => other.cleanup());
      const otherDb = (await other.open<Database>()).db;
      await migrateToLatest(otherDb, migrationsFolder('log'));
      await initLog(otherDb, 'other.test/log', generateKey('other.test/log').signerKey);
      const foreign = tokenOf(await runAdminCommand(otherDb, { command: 'reader add', args: ['alice'] }));
      const revoked = tokenOf(await runAdminCommand(db, { command: 'reader add', args: ['carol'] }));
      await runAdminCommand(db, { command: 'reader revoke', args: ['carol'] });
      // What main.ts does on the admin NOTIFY: forget cached readers, append the actions now.
      app.vigil.tlog.invalidate();
      app.vigil.sequencer.syncOperatorActions();
      await app.vigil.sequencer.flush();
      const before = await size();
      const urls = [
        `/v1/sealed/${hex(params)}`,
        `/v1/sealed?start=0&end=${before}`,
        `/v1/entries/${i1}?open=1`,
        '/v1/search',
        '/v1/search?open=1',
      ];
      const credentials: [string, Record<string, string>, string][] = [
        ['no header', {}, ''],
        ['an unknown token', as(`vigil_rt_${'A'.repeat(43)}`), ''],
        ['a token of another log', as(foreign), ''],
        ['a revoked token', as(revoked), ''],
        [
          'a Basic header',
          { authorization: `Basic ${Buffer.from(`alice:${alice}`).toString('base64')}` },
          '',
        ],
        ['a token in ?token=', {}, `token=${alice}`],
        ['a token in ?access_token=', {}, `access_token=${alice}`],
        ['a valid header and a token in the query', as(alice), `access_token=${alice}`],
      ];
      for (const url of urls) {
        for (const [what, headers, query] of credentials) {
          const full = query === '' ? url : `${url}${url.includes('?') ? '&' : '?'}${query}`;
          const res = await app.inject({ url: full, headers });
          t.equal(res.statusCode, 401, `${url} with ${what}: 401`);
          t.equal(res.json().code, 'READER_REQUIRED', `${url} with ${what}: code`);
          t.equal(res.headers['www-authenticate'], 'Bearer realm="vigil"');
          t.notOk(
            res.body.includes(MARKER) || res.body.includes(base64Encode(params.bytes)),
            'nothing revealed',
          );
        }
      }
      t.equal(await size(), before, 'no access record for a refused request');
    },
  );

  await t.test('GET /v1/sealed/<hex>: S after its access.read record', async (t) => {
    const before = await size();
    const res = await app.inject({ url: `/v1/sealed/${hex(params)}`, headers: as(alice) });
    t.equal(res.statusCode, 200);
    t.match(res.headers['content-type'], /^application\/octet-stream/);
    t.same(new Uint8Array(res.rawPayload), params.bytes, 'S exactly');
    const records = await accessRecords(before);
    t.equal(records.length, 1, 'one record');
    t.equal(await size(), before + 1n, 'committed before the answer');
    const r = records[0]!;
    t.same(
      { reader: r.reader, request: r.request, query: r.query, count: r.count, sealed: r.sealed },
      {
        reader: 'alice',
        request: `GET /v1/sealed/${hex(params)}`,
        query: {},
        count: 1,
        sealed: [hex(params)],
      },
    );
    const head = await app.inject({ method: 'HEAD', url: `/v1/sealed/${hex(params)}`, headers: as(alice) });
    t.equal(head.statusCode, 400, 'HEAD reveals nothing and is not recorded');
    const missing = await app.inject({ url: `/v1/sealed/${'0'.repeat(64)}`, headers: as(alice) });
    t.equal(missing.statusCode, 404);
    t.equal(missing.json().code, 'SEALED_NOT_FOUND');
    const bad = await app.inject({ url: '/v1/sealed/ABC', headers: as(alice) });
    t.equal(bad.statusCode, 400);
    t.equal(await size(), before + 1n, 'nothing returned, nothing recorded');
  });

  await t.test('an erased value: 410 ERASED with the index of the log.erasure record', async (t) => {
    // What `vigil-server erase` does: the action and erasures rows, the bytes deleted. The log appends
    // the erasure record at its next sync (periodic, or the one this request asks for).
    const before = await size();
    await db.transaction().execute(async (trx) => {
      const action = await insertOperatorAction(trx, 'log.erasure', {
        reason: 'test',
        by: 'op',
        target: { sealed: true },
        count: 1,
        commitments: [hex(doomed)],
      });
      await trx
        .insertInto('erasures')
        .values({ sha256: hex(doomed), action_id: action })
        .execute();
      await trx.deleteFrom('sealed').where('sha256', '=', hex(doomed)).execute();
    });
    const res = await app.inject({ url: `/v1/sealed/${hex(doomed)}`, headers: as(alice) });
    t.equal(res.statusCode, 410);
    const body = res.json() as { code: string; index: string };
    t.equal(body.code, 'ERASED');
    t.equal(body.index, before.toString(), 'the erasure record, the one record since');
    const erasure = await entryAt(BigInt(body.index));
    t.equal(erasure.record.kind, 'log.erasure');
    t.same(erasure.record.commitments, [hex(doomed)]);
    t.equal(erasure.emitter, OPERATOR);
    t.equal(await size(), before + 1n, 'no access record: nothing revealed');
  });

  await t.test('GET /v1/sealed?start&end: every value of the range, one record', async (t) => {
    const before = await size();
    const res = await app.inject({ url: `/v1/sealed?start=${i1}&end=${iPlain + 1n}`, headers: as(bob) });
    t.equal(res.statusCode, 200, `status ${res.statusCode}`);
    const body = res.json() as { sealed: Record<string, string>; erased: Record<string, string> };
    t.same(body.sealed, {
      [hex(params)]: base64Encode(params.bytes),
      [hex(result)]: base64Encode(result.bytes),
      [hex(toolName)]: base64Encode(toolName.bytes),
    });
    t.same(Object.keys(body.erased), [hex(doomed)]);
    const records = await accessRecords(before);
    t.equal(records.length, 1);
    t.same(
      {
        reader: records[0]!.reader,
        request: records[0]!.request,
        query: records[0]!.query,
        count: records[0]!.count,
      },
      {
        reader: 'bob',
        request: 'GET /v1/sealed',
        query: { start: i1.toString(), end: (iPlain + 1n).toString() },
        count: 3,
      },
    );
    t.same([...(records[0]!.sealed as string[])].sort(), [hex(params), hex(result), hex(toolName)].sort());
    const empty = await app.inject({
      url: `/v1/sealed?start=${iPlain}&end=${iPlain + 1n}`,
      headers: as(bob),
    });
    t.same(empty.json(), { sealed: {}, erased: {} });
    const cases: [string, number, string][] = [
      ['start=0&end=1001', 400, 'RANGE_TOO_LARGE'],
      ['start=5&end=4', 400, 'REQUEST_MALFORMED'],
      ['start=0&end=999', 404, 'INDEX_OUT_OF_RANGE'],
      ['start=01&end=2', 400, 'REQUEST_MALFORMED'],
    ];
    for (const [q, status, code] of cases) {
      const r = await app.inject({ url: `/v1/sealed?${q}`, headers: as(bob) });
      t.equal(r.statusCode, status, q);
      t.equal(r.json().code, code, q);
    }
    t.equal(await size(), before + 1n, 'only the request that returned values is recorded');
  });

  await t.test('GET /v1/entries/<i>?open=1 adds the maps; public answer unchanged', async (t) => {
    const plain = await app.inject({ url: `/v1/entries/${i2}` });
    const before = await size();
    const res = await app.inject({ url: `/v1/entries/${i2}?open=1`, headers: as(alice) });
    t.equal(res.statusCode, 200);
    const body = res.json() as Record<string, unknown>;
    const { sealed, erased, ...rest } = body;
    const publicBody = plain.json() as Record<string, unknown>;
    t.same(rest.entry, publicBody.entry);
    t.same(rest.index, publicBody.index);
    t.same(sealed, { [hex(result)]: base64Encode(result.bytes) });
    t.same(Object.keys(erased as object), [hex(doomed)]);
    const records = await accessRecords(before);
    t.same(
      records.map((r) => [r.request, r.query, r.count]),
      [[`GET /v1/entries/${i2}`, { open: '1' }, 1]],
    );
    const none = await app.inject({ url: `/v1/entries/${iPlain}?open=1`, headers: as(alice) });
    t.equal(none.statusCode, 200);
    t.same((none.json() as { sealed: unknown }).sealed, {});
    t.equal((await app.inject({ url: `/v1/entries/${i2}?open=0`, headers: as(alice) })).statusCode, 400);
    t.equal(await size(), before + 1n, 'a request that returned no value is not recorded');
  });

  await t.test(
    'search needs a reader; &open=1 adds one map and one record; ?tool= finds sealed names',
    async (t) => {
      const before = await size();
      const plain = await app.inject({ url: `/v1/search?emitter=em1`, headers: as(alice) });
      t.equal(plain.statusCode, 200);
      t.notOk(plain.body.includes(MARKER), 'no value without open');
      t.equal(await size(), before, 'a search without open reveals nothing and is not recorded');
      const res = await app.inject({ url: `/v1/search?emitter=em1&open=1`, headers: as(alice) });
      t.equal(res.statusCode, 200, `status ${res.statusCode}`);
      const body = res.json() as {
        entries: { index: string }[];
        sealed: Record<string, string>;
        erased: Record<string, string>;
      };
      t.same(
        body.entries.map((e) => e.index),
        [iPlain, i3, i2, i1].map(String),
      );
      t.same(Object.keys(body.sealed).sort(), [hex(params), hex(result), hex(toolName)].sort());
      t.same(Object.keys(body.erased), [hex(doomed)]);
      const records = await accessRecords(before);
      t.same(
        records.map((r) => [r.reader, r.request, r.query, r.count]),
        [['alice', 'GET /v1/search', { emitter: 'em1', open: '1' }, 3]],
      );
      const byTool = await app.inject({ url: '/v1/search?tool=secret_tool', headers: as(alice) });
      t.same(
        (byTool.json() as { entries: { index: string }[] }).entries.map((e) => e.index),
        [i3.toString()],
        'a tool name sealed under --seal all is found',
      );
    },
  );

  await t.test('a burst: one access.read record per request', async (t) => {
    const before = await size();
    const answers = await Promise.all(
      Array.from({ length: 12 }, (_, i) =>
        app.inject({
          url: `/v1/sealed/${hex(i % 2 === 0 ? params : result)}`,
          headers: as(i % 3 === 0 ? alice : bob),
        }),
      ),
    );
    t.same(
      answers.map((a) => a.statusCode),
      Array(12).fill(200),
    );
    const records = await accessRecords(before);
    t.equal(records.length, 12, 'twelve requests, twelve records');
    t.equal(records.filter((r) => r.reader === 'alice').length, 4);
    t.ok(records.every((r) => r.count === 1));
  });

  await t.test('a read that cannot be recorded answers 503 and reveals nothing', async (t) => {
    const before = await size();
    failCommits = true;
    try {
      for (const url of [
        `/v1/sealed/${hex(params)}`,
        `/v1/sealed?start=${i1}&end=${i2}`,
        `/v1/entries/${i1}?open=1`,
        '/v1/search?open=1',
      ]) {
        const res = await app.inject({ url, headers: as(alice) });
        t.equal(res.statusCode, 503, url);
        t.equal(res.json().code, 'ACCESS_NOT_RECORDED', url);
        t.notOk(
          res.body.includes(MARKER) || res.body.includes(base64Encode(params.bytes)),
          `${url}: nothing revealed`,
        );
      }
    } finally {
      failCommits = false;
    }
    t.equal(await size(), before);
  });

  await t.test('a revocation is seen at the admin NOTIFY', async (t) => {
    t.equal((await app.inject({ url: `/v1/sealed/${hex(params)}`, headers: as(bob) })).statusCode, 200);
    await runAdminCommand(db, { command: 'reader revoke', args: ['bob'] });
    app.vigil.tlog.invalidate(); // what main.ts does on the admin NOTIFY
    const res = await app.inject({ url: `/v1/sealed/${hex(params)}`, headers: as(bob) });
    t.equal(res.statusCode, 401);
    app.vigil.sequencer.syncOperatorActions();
    await app.vigil.sequencer.flush();
    const last = await entryAt((await size()) - 1n);
    t.same([last.record.kind, last.record.name], ['reader.revoke', 'bob'], 'the revocation is a record');
    await t.rejects(runAdminCommand(db, { command: 'reader revoke', args: ['bob'] }), /no active reader/);
  });

  await t.test('S never appears in entries, tiles, receipts, blobs or the server log', async (t) => {
    const n = await size();
    const needles: [string, string][] = [
      ['the marker', MARKER],
      ...[params, result, toolName, doomed].map((s, i): [string, string] => [
        `value ${i} (base64)`,
        base64Encode(s.bytes),
      ]),
      ["alice's token", alice],
      ["bob's token", bob],
    ];
    const bodies: string[] = [];
    for (let i = 0n; i < n; i++) {
      bodies.push((await app.inject({ url: `/v1/entries/${i}` })).body);
      bodies.push((await app.inject({ url: `/v1/receipt/${i}` })).body);
    }
    bodies.push((await app.inject({ url: `/tile/entries/000.p/${n}` })).rawPayload.toString('latin1'));
    for (const s of [params, result, toolName, doomed]) {
      const blob = await app.inject({ url: `/v1/blobs/${hex(s)}` });
      t.equal(blob.statusCode, 404, 'no sealed value is a blob');
      bodies.push(blob.body);
    }
    const rows = await sql<{ n: string }>`select count(*)::text as n from blobs`.execute(db);
    t.equal(rows.rows[0]!.n, '0', 'the public blobs table holds nothing');
    for (const [what, needle] of needles) {
      t.notOk(
        bodies.some((b) => b.includes(needle)),
        `no public answer holds ${what}`,
      );
      t.notOk(output.join('').includes(needle), `the server log does not hold ${what}`);
    }
    t.ok(output.length > 0, 'the server did log');
  });

  await t.test('an answer carries at most 32 MiB of sealed values', async (t) => {
    // Nine values of 3.8 MB: 34.2 MB, past the budget of 33,554,432 bytes; eight fit.
    const big = Array.from({ length: 9 }, (_, i) => sealValue(`${i}`.repeat(3_800_000), randomBytes(16)));
    const first = await submit({ big: big[0]!.ref }, [big[0]!]);
    for (const b of big.slice(1)) await submit({ big: b.ref }, [b]);
    const before = await size();
    const info = (await app.inject({ url: '/v1/log' })).json() as { limits: Record<string, number> };
    t.same(
      [info.limits.sealedRangeMax, info.limits.sealedMaxBytes],
      [1000, 32 * 1024 * 1024],
      '/v1/log says so',
    );
    const all = await app.inject({ url: `/v1/sealed?start=${first}&end=${first + 9n}`, headers: as(alice) });
    t.equal(all.statusCode, 400);
    t.equal(all.json().code, 'RANGE_TOO_LARGE');
    t.equal(await size(), before, 'refused before anything is read or recorded');
    const part = await app.inject({ url: `/v1/sealed?start=${first}&end=${first + 8n}`, headers: as(alice) });
    t.equal(part.statusCode, 200);
    t.equal(Object.keys((part.json() as { sealed: object }).sealed).length, 8);
    // A search stops before the value that would pass the budget, with next to go on from.
    const page = await app.inject({ url: `/v1/search?emitter=em1&open=1`, headers: as(alice) });
    t.equal(page.statusCode, 200);
    const body = page.json() as {
      entries: { index: string }[];
      next?: string;
      sealed: Record<string, string>;
    };
    t.same(
      body.entries.map((e) => e.index),
      Array.from({ length: 8 }, (_, i) => String(first + 8n - BigInt(i))),
      'the newest eight',
    );
    t.equal(body.next, String(first + 1n));
    t.equal(Object.keys(body.sealed).length, 8);
    const rest = await app.inject({
      url: `/v1/search?emitter=em1&open=1&after=${body.next}`,
      headers: as(alice),
    });
    t.equal(
      (rest.json() as { entries: { index: string }[] }).entries[0]!.index,
      String(first),
      'paging goes on',
    );
  });
});
