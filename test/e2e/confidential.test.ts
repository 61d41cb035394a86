// End to end, confidential by default (DESIGN.md "Readers and sealed payloads"): a marker planted in a
// tool call's arguments (and so in server-everything's echoed result) goes through the real wrapper and
// the real proxy into a real log process. It is then in no public answer (checkpoints, every tile and
// entry bundle, entries, receipts, proofs, blobs, /v1/log), readable with a reader token, and every such
// read is an access.read record. After `vigil-server erase --session` for both sessions it is in no
// answer and in no table (a scan of every column; with the system PostgreSQL also `pg_dump`), the
// sealed values answer 410 with the erasure record's index, and `vigil audit` still passes and lists
// the erasure.
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import {
  base64Decode,
  isSealedRef,
  openSealed,
  tilePath,
  tilesForSize,
  type Entry,
  type SealedRef,
} from '@vigil/client';
import { openDatabase } from '@vigil/store';
import pg from 'pg';
import t from 'tap';
import { runNode, serverMain, startLog, until, vigilMain, type LogProcess } from '../helpers/log.js';
import {
  everythingEntry,
  registerEmitter,
  startEverythingHttp,
  startProxy,
  wrapArgv,
} from '../helpers/mcp.js';

const MARK = `vigil-marker-${randomUUID()}`;

/**
 * The marker as it may appear in an answer or a table: in clear, as base64 at each of the three byte
 * alignments (S of a message's wire bytes holds their base64), and each of those in hex (bytea in a
 * pg_dump).
 */
const variants: string[] = (() => {
  const out = [MARK];
  for (let k = 0; k < 3; k++) {
    const b64 = Buffer.from('a'.repeat(k) + MARK).toString('base64');
    out.push(b64.slice(k === 0 ? 0 : 4, -4));
  }
  return [...out, ...out.map((v) => Buffer.from(v).toString('hex'))];
})();
const holdsMarker = (body: Buffer | string): boolean => {
  const text = typeof body === 'string' ? body : body.toString('latin1');
  return variants.some((v) => text.includes(v));
};

const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'vigil-e2e-confidential-'));
t.teardown(() => fs.rm(tmp, { recursive: true, force: true }));

const stores: { kind: string; postgresUrl?: string }[] = [{ kind: 'embedded' }];
if (process.env.TEST_DATABASE_URL)
  stores.push({ kind: 'postgres', postgresUrl: process.env.TEST_DATABASE_URL });
else t.comment('TEST_DATABASE_URL not set: the pg_dump check on the system PostgreSQL is skipped');

type Rec = Record<string, unknown>;

async function get(log: LogProcess, p: string, token?: string): Promise<{ status: number; body: Buffer }> {
  const res = await fetch(new URL(p, log.url), {
    headers: token !== undefined ? { authorization: `Bearer ${token}` } : {},
  });
  return { status: res.status, body: Buffer.from(await res.arrayBuffer()) };
}

async function size(log: LogProcess): Promise<bigint> {
  return BigInt((await get(log, 'checkpoint')).body.toString().split('\n')[1]!);
}

/** Every entry of the log, decoded from the public entry bundles. */
async function entries(log: LogProcess): Promise<Entry[]> {
  const n = Number(await size(log));
  const out: Entry[] = [];
  for (let i = 0; i < n; i++) {
    const r = await get(log, `v1/entries/${i}`);
    out.push((JSON.parse(r.body.toString()) as { entry: Entry }).entry);
  }
  return out;
}

function refsIn(value: unknown, out: { kind: '$sealed' | '$blob'; sha256: string }[]): void {
  if (Array.isArray(value)) for (const v of value) refsIn(v, out);
  else if (value !== null && typeof value === 'object') {
    const o = value as Rec;
    if (isSealedRef(o)) out.push({ kind: '$sealed', sha256: o.$sealed.sha256 });
    else if (Object.keys(o).length === 1 && typeof (o['$blob'] as Rec | undefined)?.['sha256'] === 'string')
      out.push({ kind: '$blob', sha256: (o['$blob'] as Rec)['sha256'] as string });
    else for (const v of Object.values(o)) refsIn(v, out);
  }
}

/** Every public answer of the log: the paths and whether any holds the marker. */
async function publicAnswers(log: LogProcess): Promise<{ paths: number; leaks: string[] }> {
  const n = await size(log);
  const paths = ['checkpoint', 'checkpoint/witnessed', 'v1/log', 'healthz', 'v1/incidents'];
  for (const tile of tilesForSize(n)) paths.push(tilePath(tile));
  for (const tile of tilesForSize(n).filter((x) => x.level === 0))
    paths.push(tilePath({ ...tile, level: 'entries' }));
  const refs: { kind: '$sealed' | '$blob'; sha256: string }[] = [];
  for (let i = 0n; i < n; i++) {
    paths.push(`v1/entries/${i}`, `v1/receipt/${i}`, `v1/proof/inclusion?index=${i}&size=${n}`);
  }
  for (const e of await entries(log)) refsIn(e.record, refs);
  for (const r of refs) paths.push(r.kind === '$blob' ? `v1/blobs/${r.sha256}` : `v1/sealed/${r.sha256}`);
  const leaks: string[] = [];
  for (const p of paths) {
    const r = await get(log, p);
    if (p.startsWith('v1/sealed/') && r.status !== 401)
      leaks.push(`${p} answered ${r.status} without a token`);
    if (holdsMarker(r.body)) leaks.push(p);
  }
  return { paths: paths.length, leaks };
}

/** S of every sealed value in the log, through the reader endpoint (one request per 1,000 entries). */
async function readAll(
  log: LogProcess,
  token: string,
): Promise<{ sealed: Map<string, Uint8Array>; erased: Map<string, string> }> {
  const n = await size(log);
  const sealed = new Map<string, Uint8Array>();
  const erased = new Map<string, string>();
  for (let start = 0n; start < n; start += 1000n) {
    const end = start + 1000n < n ? start + 1000n : n;
    const r = await get(log, `v1/sealed?start=${start}&end=${end}`, token);
    if (r.status !== 200) throw new Error(`GET /v1/sealed range: ${r.status} ${r.body.toString()}`);
    const body = JSON.parse(r.body.toString()) as { sealed: Rec; erased: Rec };
    for (const [h, b64] of Object.entries(body.sealed)) sealed.set(h, base64Decode(b64 as string));
    for (const [h, index] of Object.entries(body.erased)) erased.set(h, index as string);
  }
  return { sealed, erased };
}

/** Every column of every table that holds text or bytes, scanned for the marker. */
async function tablesWithMarker(connectionString: string): Promise<string[]> {
  const client = new pg.Client({ connectionString });
  await client.connect();
  try {
    const cols = await client.query<{ table_name: string; column_name: string; data_type: string }>(
      `select table_name, column_name, data_type from information_schema.columns
       where table_schema = 'public' and data_type in ('text', 'bytea', 'jsonb', 'json', 'character varying')`,
    );
    const found: string[] = [];
    for (const c of cols.rows) {
      const expr =
        c.data_type === 'bytea' ? `"${c.column_name}"` : `convert_to("${c.column_name}"::text, 'UTF8')`;
      for (const v of variants) {
        const r = await client.query<{ n: string }>(
          `select count(*) as n from "${c.table_name}" where position($1::bytea in ${expr}) > 0`,
          [Buffer.from(v)],
        );
        if (r.rows[0]!.n !== '0') found.push(`${c.table_name}.${c.column_name}`);
      }
    }
    return found;
  } finally {
    await client.end();
  }
}

for (const store of stores) {
  t.test(`${store.kind} store: a planted marker is sealed, readable by a reader, erasable`, async (t) => {
    const log = await startLog(store.postgresUrl !== undefined ? { postgresUrl: store.postgresUrl } : {});
    t.teardown(() => log.stop());
    const dir = await fs.mkdtemp(path.join(tmp, `${store.kind}-`));
    const token = await log.addReader('forensics');
    const wrapper = await registerEmitter(log, dir, 'confidential-wrapper');
    const proxyEmitter = await registerEmitter(log, dir, 'confidential-proxy');

    // 1. The wrapper: server-everything over stdio, sync mode (the default), params sealed (the default).
    const transport = new StdioClientTransport({
      command: process.execPath,
      args: [
        ...wrapArgv(log, wrapper, path.join(dir, 'spool-wrap')),
        process.execPath,
        everythingEntry,
        'stdio',
      ],
      stderr: 'pipe',
    });
    const client = new Client({ name: 'confidential-e2e', version: '0' });
    await client.connect(transport);
    const echoed = await client.callTool({ name: 'echo', arguments: { message: `${MARK} over stdio` } });
    t.same(echoed.content, [{ type: 'text', text: `Echo: ${MARK} over stdio` }], 'the client got its answer');
    await client.close();

    // 2. The proxy: server-everything over Streamable HTTP.
    const upstream = await startEverythingHttp();
    t.teardown(() => upstream.process.stop());
    const proxy = await startProxy(log, proxyEmitter, upstream.url, path.join(dir, 'spool-proxy'));
    t.teardown(() => proxy.process.stop());
    const proxyUrl = proxy.url;
    const httpClient = new Client({ name: 'confidential-e2e-http', version: '0' });
    const httpTransport = new StreamableHTTPClientTransport(new URL(proxyUrl));
    await httpClient.connect(httpTransport);
    const httpSession = httpTransport.sessionId!;
    const echoedHttp = await httpClient.callTool({
      name: 'echo',
      arguments: { message: `${MARK} over http` },
    });
    t.same(echoedHttp.content, [{ type: 'text', text: `Echo: ${MARK} over http` }]);
    await httpTransport.terminateSession();
    await httpClient.close();
    t.equal(await proxy.process.stop(), 0, 'the proxy stops cleanly');

    // Both echo answers are in the log (the wrapper's server-side answer ships in the background).
    let all: Entry[] = [];
    await until('both echo answers recorded', async () => {
      all = await entries(log);
      const answers = all.filter(
        (e) =>
          e.record['kind'] === 'mcp.message' &&
          e.record['gen_ai.tool.name'] === 'echo' &&
          e.record['direction'] === 'server_to_client',
      );
      return answers.length >= 2;
    });
    const echoRecords = all.filter((e) => e.record['gen_ai.tool.name'] === 'echo');
    const sessions = [...new Set(echoRecords.map((e) => e.record['session'] as string))];
    t.equal(sessions.length, 2, 'one session through the wrapper, one through the proxy');
    t.ok(sessions.includes(httpSession), 'the proxy files the call under its MCP session');
    for (const e of echoRecords) {
      const message = e.record['message'] as Rec;
      const sealedField = message['params'] ?? message['result'];
      t.ok(
        isSealedRef(sealedField),
        `entry of ${e.record['direction']}: params/result are a $sealed commitment`,
      );
    }

    // 3. No public answer holds the marker; without a token the reader endpoints answer 401.
    const before = await publicAnswers(log);
    t.same(before.leaks, [], `none of ${before.paths} public answers holds the marker`);
    const noToken = await get(log, 'v1/search?tool=echo');
    t.equal(noToken.status, 401, 'search needs a reader');
    t.equal(JSON.parse(noToken.body.toString()).code, 'READER_REQUIRED');
    const inQuery = await get(log, `v1/sealed?start=0&end=1&access_token=${token}`);
    t.equal(inQuery.status, 401, 'a token in the query string is not accepted');

    // 4. A reader reads it back, and every value read checks against its commitment.
    const sizeBeforeRead = await size(log);
    const read = await readAll(log, token);
    let opened = 0;
    let withMarker = 0;
    for (const e of all) {
      const refs: { kind: '$sealed' | '$blob'; sha256: string }[] = [];
      refsIn(e.record, refs);
      for (const r of refs.filter((x) => x.kind === '$sealed')) {
        const bytes = read.sealed.get(r.sha256);
        if (bytes === undefined) continue;
        const ref = findRef(e.record, r.sha256)!;
        const value = openSealed(ref, bytes);
        opened++;
        if (JSON.stringify(value).includes(MARK) || holdsMarker(JSON.stringify(value))) withMarker++;
      }
    }
    t.ok(opened > 0, `${opened} sealed values opened and checked`);
    t.ok(
      withMarker >= 4,
      `the marker is in ${withMarker} opened values (arguments and results, both sessions)`,
    );
    // The read is itself in the log: one access.read record by the operator emitter, naming the reader.
    let accessReads: Entry[] = [];
    await until('access.read recorded', async () => {
      accessReads = (await entries(log))
        .slice(Number(sizeBeforeRead))
        .filter((e) => e.record['kind'] === 'access.read');
      return accessReads.length >= 1;
    });
    const info = JSON.parse((await get(log, 'v1/log')).body.toString()) as { operator: { name: string } };
    t.equal(accessReads.length, Math.ceil(Number(sizeBeforeRead) / 1000), 'one access.read per request');
    t.match(accessReads[0]!.record, { reader: 'forensics' });
    t.equal(accessReads[0]!.emitter, info.operator.name, 'signed by the operator emitter');

    // The scan finds the marker where it is stored before the erasure (so its silence after means something).
    const connectionString =
      log.databaseUrl ??
      (await (async () => {
        const opened = await openDatabase({ dataDir: log.dataDir, mode: 'attach' });
        const cs = opened.connectionString;
        await opened.close();
        return cs;
      })());
    t.ok(
      (await tablesWithMarker(connectionString)).includes('sealed.bytes'),
      'before the erasure the marker is in the sealed table, and only a reader gets it',
    );

    // 5. Erase both sessions.
    for (const s of sessions) {
      const r = await runNode(
        serverMain,
        ['erase', '--session', s, '--reason', 'right-to-erasure request 42', '--data-dir', log.dataDir],
        log.databaseUrl !== undefined ? { DATABASE_URL: log.databaseUrl } : { DATABASE_URL: undefined },
      );
      t.equal(r.code, 0, `erase --session ${s}: ${r.stderr}${r.stdout}`);
    }
    let erasures: { index: number; entry: Entry }[] = [];
    await until('log.erasure records appended', async () => {
      erasures = (await entries(log))
        .map((entry, index) => ({ index, entry }))
        .filter((x) => x.entry.record['kind'] === 'log.erasure');
      return erasures.length === 2;
    });
    for (const x of erasures) {
      t.equal(x.entry.emitter, info.operator.name, 'the erasure is signed by the operator emitter');
      t.equal(x.entry.record['reason'], 'right-to-erasure request 42');
    }
    const echoSealed = echoRecords.map((e) => {
      const m = e.record['message'] as Rec;
      return ((m['params'] ?? m['result']) as SealedRef).$sealed.sha256;
    });
    for (const h of echoSealed) {
      const r = await get(log, `v1/sealed/${h}`, token);
      t.equal(r.status, 410, `${h.slice(0, 12)}… answers 410 after the erasure`);
      const body = JSON.parse(r.body.toString()) as { code: string; index: string };
      t.equal(body.code, 'ERASED');
      t.ok(
        erasures.some((x) => String(x.index) === body.index),
        'the 410 names the index of a log.erasure record',
      );
    }

    // 6. The marker is in no answer, public or a reader's, and in no table.
    const after = await publicAnswers(log);
    t.same(after.leaks, [], 'no public answer holds the marker after the erasure');
    const readAfter = await readAll(log, token);
    for (const h of echoSealed) t.ok(readAfter.erased.has(h), 'the reader range lists it as erased');
    t.notOk(
      [...readAfter.sealed.values()].some((b) => holdsMarker(Buffer.from(b))),
      'no value a reader can read holds the marker',
    );
    t.same(await tablesWithMarker(connectionString), [], 'no column of any table holds the marker');
    if (log.databaseUrl !== undefined) {
      const dump = await promisify(execFile)('pg_dump', ['--no-owner', log.databaseUrl], {
        maxBuffer: 256 * 1024 * 1024,
        encoding: 'latin1',
      });
      t.ok(dump.stdout.length > 1000, 'pg_dump wrote the database');
      t.notOk(holdsMarker(dump.stdout), 'pg_dump of the database does not contain the marker');
    }

    // 7. The log still verifies end to end, and the audit lists what was erased, when and why.
    const policyFile = path.join(dir, 'log.policy');
    const audit = await runNode(vigilMain, ['audit', '--log', log.url, '--policy', policyFile], {
      VIGIL_READER_TOKEN: token,
      NO_COLOR: '1',
    });
    t.equal(audit.code, 0, `vigil audit passes after the erasure:\n${audit.stdout}${audit.stderr}`);
    t.match(audit.stdout, /right-to-erasure request 42/, 'the audit lists the erasure and its reason');
    t.notOk(audit.stdout.includes(token), 'the token is never printed');
  });
}

/** The `$sealed` ref with hash `h` inside `value`. */
function findRef(value: unknown, h: string): SealedRef | undefined {
  if (isSealedRef(value)) return value.$sealed.sha256 === h ? value : undefined;
  if (Array.isArray(value)) {
    for (const v of value) {
      const r = findRef(v, h);
      if (r) return r;
    }
  } else if (value !== null && typeof value === 'object') {
    for (const v of Object.values(value)) {
      const r = findRef(v, h);
      if (r) return r;
    }
  }
  return undefined;
}
