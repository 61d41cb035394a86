// GET /v1/search answers are bounded: at most searchMaxBytes a page with a `next` cursor for the rest,
// at most searchConcurrency at once with searchQueue waiting, then 503 SEARCH_BUSY with Retry-After.
import t from 'tap';
import { formatEntry, generateKey, parsePolicy, verifyReceipt, type Entry } from '@vigil/client';
import { forEachStore } from '../../src/db/testing.js';
import { migrateToLatest, migrationsFolder } from '../../src/db/migrate.js';
import type { Database } from '../../src/db/schema.js';
import { buildApp } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { initLog } from '../../src/tlog/signer.js';
import { runAdminCommand } from '../../src/admin.js';
import { recordStream } from '../helpers/process.js';

const ORIGIN = 'test.example/log';
const MAX_BYTES = 256 * 1024;

interface Page {
  checkpoint: string;
  entries: { index: string; entry: Entry; receipt: string }[];
  next?: string;
  code?: string;
}

forEachStore(t, async (t, store) => {
  const { db } = await store.open<Database>();
  await migrateToLatest(db, migrationsFolder('log'));
  const logKey = generateKey(ORIGIN);
  await initLog(db, ORIGIN, logKey.signerKey);
  const em = generateKey('em1');
  await runAdminCommand(db, { command: 'emitter add', args: ['em1', em.verifierKey] });
  // Searching needs a reader (contract "Log HTTP API").
  const token = (await runAdminCommand(db, { command: 'reader add', args: ['auditor'] })).split('\n').at(-1)!;
  const authorization = `Bearer ${token}`;
  const config = loadConfig(
    {},
    {
      'data-dir': store.dataDir,
      'rate-address': '0',
      'search-max-bytes': String(MAX_BYTES),
      'search-concurrency': '1',
      'search-queue': '1',
    },
  );
  const app = await buildApp(config, { db, signerKey: logKey.signerKey, logger: false });
  await app.ready();
  t.teardown(() => app.close());
  const policy = parsePolicy(`log ${logKey.verifierKey}\nquorum none\n`);

  // 40 entries of about 30 KB (1.2 MB in all), then 10 small ones on a second stream.
  const big = recordStream(em.signerKey, '5e6f7a8b-1111-4222-8333-444455556666');
  const small = recordStream(em.signerKey, '5e6f7a8b-2222-4222-8333-444455556666');
  for (const entries of [
    big.next(20, { pad: 'a'.repeat(30_000) }),
    big.next(20, { pad: 'b'.repeat(30_000) }),
  ]) {
    const res = await app.inject({
      method: 'POST',
      url: '/v1/entries?wait=false',
      headers: { 'content-type': 'application/json' },
      payload: JSON.stringify({ entries }),
    });
    t.equal(res.statusCode, 202);
  }
  const res = await app.inject({
    method: 'POST',
    url: '/v1/entries?wait=false',
    headers: { 'content-type': 'application/json' },
    payload: JSON.stringify({ entries: small.next(10) }),
  });
  t.equal(res.statusCode, 202);
  // Every entry of the tree, the log's own registry records included.
  const SIZE = Number((await app.inject({ url: '/checkpoint' })).body.split('\n')[1]);
  t.ok(SIZE >= 50);
  const top = (i: number) => String(SIZE - 1 - i);

  const search = async (query: string) => {
    const r = await app.inject({ url: `/v1/search?${query}`, headers: { authorization } });
    return { status: r.statusCode, bytes: r.rawPayload.length, page: r.json() as Page, headers: r.headers };
  };

  t.test('a broad search is cut into pages of at most searchMaxBytes; next pages through all', async (t) => {
    const seen: string[] = [];
    let after: string | undefined;
    let pages = 0;
    for (; pages < 20; pages++) {
      const r = await search(`limit=1000${after === undefined ? '' : `&after=${after}`}`);
      t.equal(r.status, 200);
      t.ok(r.bytes <= MAX_BYTES, `page ${pages}: ${r.bytes} bytes <= ${MAX_BYTES}`);
      t.match(r.headers['content-type'], /^application\/json/);
      for (const e of r.page.entries) {
        const v = verifyReceipt(e.receipt, formatEntry(e.entry), policy);
        t.equal(v.index, BigInt(e.index), `entry ${e.index}: receipt verifies`);
        seen.push(e.index);
      }
      if (r.page.next === undefined) break;
      t.equal(r.page.next, r.page.entries.at(-1)!.index, 'next is the last index sent');
      after = r.page.next;
    }
    t.ok(pages >= 4, `${pages + 1} pages for 1.2 MB`);
    t.same(
      seen,
      Array.from({ length: SIZE }, (_, i) => String(SIZE - 1 - i)),
      'every entry once, newest first',
    );
  });

  t.test('limit stops a page too, with next; small entries fill a page', async (t) => {
    const r = await search('limit=3');
    t.same(
      r.page.entries.map((e) => e.index),
      [top(0), top(1), top(2)],
    );
    t.equal(r.page.next, top(2));
    const rest = await search(`limit=1000&after=${top(2)}`);
    t.same(
      rest.page.entries.slice(0, 7).map((e) => e.index),
      [3, 4, 5, 6, 7, 8, 9].map(top),
    );
    const last = await search('limit=1000&after=1');
    t.same(
      last.page.entries.map((e) => e.index),
      ['0'],
    );
    t.equal(last.page.next, undefined, 'no next after the last entry');
    t.equal((await search('limit=0')).status, 400);
    t.equal((await search('limit=1001')).page.code, 'REQUEST_MALFORMED');
  });

  t.test('beyond the running and waiting searches: 503 SEARCH_BUSY with Retry-After', async (t) => {
    const slots = app.vigil.searchSlots;
    const running = await slots.acquire()!;
    const waiting = slots.acquire()!;
    const busy = await search('limit=1');
    t.equal(busy.status, 503);
    t.equal(busy.page.code, 'SEARCH_BUSY');
    t.equal(busy.headers['retry-after'], '1');
    running();
    (await waiting)();
    t.same([slots.held, slots.waiting], [0, 0]);
    const ok = await search('limit=1');
    t.equal(ok.status, 200);
    // The slot goes back when the answer stream closes, a few ticks after its last byte.
    for (let i = 0; i < 1000 && slots.held > 0; i++) await new Promise((resolve) => setImmediate(resolve));
    t.same([slots.held, slots.waiting], [0, 0], 'the answer gave its slot back');
  });
});
