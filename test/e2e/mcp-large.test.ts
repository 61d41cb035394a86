// End to end: one oversized message must never stop capture. A 20 MiB request line and a 20 MiB
// answer go through `vigil mcp wrap` (the compiled CLI, sync mode), a 12 MiB and a 20 MiB answer
// through `vigil mcp proxy`, against a real log process. Each is answered and recorded: in sealed
// parts that the log took (read back as the log's reader from /v1/sealed, never served as public
// blobs, and reassembled here to the exact bytes sent), or, for the
// proxy's answer past its 16 MiB body bound (forwarded unchanged, not held), as its size and salted
// digest (`$oversize`, recomputed here from the bytes the client got). The next call is answered and
// recorded, a restart on the same spool works, and the capturing process's peak RSS (VmHWM) stays
// bounded. A line that is not UTF-8 is recorded as base64 of its exact bytes.
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { isSealedRef } from '@vigil/client';
import t from 'tap';
import { startLog, vigilMain } from '../helpers/log.js';
import { registerEmitter, searchUntil, spawnNode, type Found } from '../helpers/mcp.js';

const MIB = 1024 * 1024;
const BIG = 20 * MIB;
/**
 * Peak RSS allowed to the wrapper or proxy while 20 MiB messages pass. Measured on 2 cores: wrap
 * 397-444 MiB, proxy 384-389 MiB; before the fix 716 and 797 MiB (and capture stopped).
 */
const RSS_BOUND_MIB = 600;

const log = await startLog();
t.teardown(() => log.stop());
const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'vigil-mcp-large-'));
t.teardown(() => fs.rm(dir, { recursive: true, force: true }));
const reg = await registerEmitter(log, dir, 'mcp-large');

type Rec = Record<string, unknown>;
const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

/** Peak resident set size of a process, in MiB (Linux /proc). */
async function peakRssMib(pid: number): Promise<number> {
  const status = await fs.readFile(`/proc/${pid}/status`, 'utf8');
  const m = /VmHWM:\s+(\d+) kB/.exec(status);
  if (m === null) throw new Error('no VmHWM');
  return Number(m[1]) / 1024;
}

const reader = { authorization: `Bearer ${await log.readerToken()}` };

/**
 * The exact bytes a `wire` commitment of a record (as the entry holds it) stands for, read as the
 * log's reader from `GET /v1/sealed/<hex>`. Opened here with node:crypto, not with client-lib: S must
 * hash to the commitment, have its size, and be the canonical
 * `{"salt":"<16 bytes base64>","value":"<base64>"}`.
 */
async function wireBytes(wire: unknown): Promise<Buffer> {
  const open = async (ref: { sha256: string; size: number }): Promise<Buffer> => {
    const res = await fetch(`${log.url}v1/sealed/${ref.sha256}`, { headers: reader });
    if (res.status !== 200) throw new Error(`sealed ${ref.sha256}: ${res.status}`);
    const s = Buffer.from(await res.arrayBuffer());
    if (s.length !== ref.size || sha256(s) !== ref.sha256)
      throw new Error(`S of ${ref.sha256} does not match`);
    const { salt, value } = JSON.parse(s.toString('utf8')) as { salt: string; value: string };
    if (Buffer.from(salt, 'base64').length !== 16) throw new Error('salt is not 16 bytes');
    if (s.toString('utf8') !== JSON.stringify({ salt, value })) throw new Error('S is not canonical');
    return Buffer.from(value, 'base64');
  };
  const w = wire as {
    $sealed?: { sha256: string; size: number };
    $sealedParts?: { size: number; parts: { sha256: string; size: number }[] };
  };
  if (w.$sealed !== undefined) return open(w.$sealed);
  if (w.$sealedParts === undefined) throw new Error(`not a wire commitment: ${JSON.stringify(wire)}`);
  const out: Buffer[] = [];
  for (const p of w.$sealedParts.parts) out.push(await open(p));
  const all = Buffer.concat(out);
  if (all.length !== w.$sealedParts.size)
    throw new Error(`parts hold ${all.length} bytes, record says ${w.$sealedParts.size}`);
  return all;
}

/** A stdio MCP server: `big` answers `bytes` bytes of text, `size` the length of the line it got. */
const serverScript = path.join(dir, 'server.mjs');
await fs.writeFile(
  serverScript,
  `let buf = Buffer.alloc(0);
process.stdin.on('data', (chunk) => {
  buf = Buffer.concat([buf, chunk]);
  let nl;
  while ((nl = buf.indexOf(10)) !== -1) {
    const line = buf.subarray(0, nl);
    buf = buf.subarray(nl + 1);
    let m;
    try { m = JSON.parse(line.toString('utf8')); } catch { continue; }
    if (m.id === undefined) continue;
    const a = (m.params && m.params.arguments) || {};
    let text = 'ok';
    if (m.method === 'tools/call' && m.params.name === 'big') text = 'b'.repeat(a.bytes);
    if (m.method === 'tools/call' && m.params.name === 'size') text = String(line.length);
    if (m.method === 'tools/call' && m.params.name === 'echo') text = a.message;
    process.stdout.write(JSON.stringify({ jsonrpc: '2.0', id: m.id, result: { content: [{ type: 'text', text }] } }) + '\\n');
  }
});
`,
);

/** `vigil mcp wrap` in sync mode around the server above, with a line-based JSON-RPC client. */
function startWrap(spool: string): {
  child: ChildProcess;
  call: (id: number, tool: string, args: Rec) => Promise<Rec>;
  send: (bytes: Buffer) => void;
  stderr: () => string;
  exited: Promise<number | null>;
} {
  const child = spawn(
    process.execPath,
    [
      vigilMain,
      'mcp',
      'wrap',
      '--log',
      log.url,
      '--key',
      reg.keyFile,
      '--policy',
      reg.policyFile,
      '--mode',
      'sync',
      '--spool-dir',
      spool,
      '--timeout',
      '60000',
      '--',
      process.execPath,
      serverScript,
    ],
    { stdio: ['pipe', 'pipe', 'pipe'] },
  );
  let err = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
  const waiting = new Map<number, (m: Rec) => void>();
  let buf = Buffer.alloc(0);
  child.stdout!.on('data', (chunk: Buffer) => {
    buf = Buffer.concat([buf, chunk]);
    let nl: number;
    while ((nl = buf.indexOf(10)) !== -1) {
      const m = JSON.parse(buf.subarray(0, nl).toString('utf8')) as Rec;
      buf = buf.subarray(nl + 1);
      waiting.get(m['id'] as number)?.(m);
    }
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return {
    child,
    call: (id, tool, args) =>
      new Promise((resolve) => {
        waiting.set(id, resolve);
        child.stdin!.write(
          JSON.stringify({
            jsonrpc: '2.0',
            id,
            method: 'tools/call',
            params: { name: tool, arguments: args },
          }) + '\n',
        );
      }),
    send: (bytes) => child.stdin!.write(bytes),
    stderr: () => err,
    exited,
  };
}

const textOf = (m: Rec): string =>
  ((m['result'] as Rec | undefined)?.['content'] as { text: string }[] | undefined)?.[0]?.text ??
  `error: ${JSON.stringify(m['error'])}`;

/** The records of a session once `ready` holds: as the entries hold them, and opened. */
async function recordsOf(session: string, ready: (f: Found[]) => boolean): Promise<Found[]> {
  return searchUntil(log, reg.policyFile, { session }, ready, 120_000);
}

/** S is the reader's alone: the public blob route never serves it. */
async function notPublic(hex: string): Promise<number> {
  return (await fetch(`${log.url}v1/blobs/${hex}`)).status;
}

t.test('mcp wrap: a 20 MiB request and a 20 MiB answer, then the next call, then a restart', async (t) => {
  const spool = path.join(dir, 'spool-wrap');
  const wrap = startWrap(spool);
  const payload = 'q'.repeat(BIG);
  const requestLine = Buffer.from(
    JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method: 'tools/call',
      params: { name: 'size', arguments: { payload } },
    }) + '\n',
  );
  // The client writes JSON.stringify(message) + '\n': the same bytes as requestLine.
  const got = await wrap.call(1, 'size', { payload });
  t.equal(textOf(got), String(requestLine.length - 1), 'the 20 MiB request reached the server whole');
  const big = await wrap.call(2, 'big', { bytes: BIG });
  t.equal(textOf(big).length, BIG, 'the 20 MiB answer reached the client whole');
  const next = await wrap.call(3, 'echo', { message: 'after the big ones' });
  t.equal(textOf(next), 'after the big ones', 'the next call is answered (not refused)');
  // A line that is not UTF-8: forwarded unchanged, recorded as base64 of its exact bytes.
  const odd = Buffer.concat([Buffer.from('not json '), Buffer.from([0xff, 0xfe, 0x0a])]);
  wrap.send(odd);
  const after = await wrap.call(4, 'echo', { message: 'last' });
  t.equal(textOf(after), 'last');
  const rss = await peakRssMib(wrap.child.pid!);
  t.comment(`mcp wrap peak RSS with 20 MiB messages: ${rss.toFixed(0)} MiB`);
  t.ok(rss < RSS_BOUND_MIB, `wrapper peak RSS ${rss.toFixed(0)} MiB < ${RSS_BOUND_MIB} MiB`);
  wrap.child.stdin!.end();
  t.equal(await wrap.exited, 0);
  t.notMatch(wrap.stderr(), /emitter alarm|refused request/, 'no alarm, nothing refused');

  const found = await searchUntil(
    log,
    reg.policyFile,
    { tool: 'echo' },
    (f) => f.some((x) => JSON.stringify(x.record).includes('"jsonrpc.request.id":"4"')),
    120_000,
  );
  const session = found[0]!.record['session'] as string;
  const results = await recordsOf(session, (f) => f.some((x) => x.record['kind'] === 'mcp.process.exit'));
  const records = results.map((x) => x.record);
  const byId = (id: string, dir: string): Found =>
    results.find(
      (x) =>
        x.record['kind'] === 'mcp.message' &&
        x.record['jsonrpc.request.id'] === id &&
        x.record['direction'] === dir,
    )!;
  const request = byId('1', 'client_to_server');
  t.match(request.record, { 'gen_ai.tool.name': 'size', messageType: 'request' });
  const requestWire = request.entry.record['wire'] as { $sealedParts: { parts: { sha256: string }[] } };
  t.equal(
    sha256(await wireBytes(requestWire)),
    sha256(requestLine),
    'the log holds the exact request, for its reader',
  );
  t.equal(await notPublic(requestWire.$sealedParts.parts[0]!.sha256), 404, 'not as a public blob');
  const answer = byId('2', 'server_to_client');
  t.equal((await wireBytes(answer.entry.record['wire'])).length, Buffer.byteLength(JSON.stringify(big)) + 1);
  t.ok(records.filter((r) => r['kind'] === 'mcp.part').length >= 40, 'both were stored in parts');
  const third = byId('3', 'server_to_client');
  t.match(third.record, { message: { result: { content: [{ text: 'after the big ones' }] } } });
  t.ok(isSealedRef((third.entry.record['message'] as Rec)['result']), 'the entry holds the result sealed');
  const raw = results.find((x) => x.record['rawBase64'] !== undefined);
  t.equal(
    raw?.record['rawBase64'],
    odd.toString('base64'),
    'the undecodable line, as base64 of its exact bytes (opened)',
  );
  t.ok(isSealedRef(raw?.entry.record['rawBase64']), 'sealed in the entry');
  t.ok(
    (await wireBytes(raw?.entry.record['wire'])).equals(odd),
    'and its salted commitment opens to the same bytes',
  );
  t.notOk(
    JSON.stringify(results.map((x) => x.entry)).includes('rawSha256'),
    'no unsalted digest of a message',
  );

  // Restart on the same spool.
  const again = startWrap(spool);
  const reply = await again.call(1, 'echo', { message: 'restarted' });
  t.equal(textOf(reply), 'restarted');
  again.child.stdin!.end();
  t.equal(await again.exited, 0);
  t.notMatch(again.stderr(), /emitter alarm|refused request/);
  await searchUntil(
    log,
    reg.policyFile,
    { tool: 'echo' },
    (f) => f.some((x) => JSON.stringify(x.record).includes('"text":"restarted"')),
    60_000,
  );
});

t.test('mcp proxy: a 20 MiB answer, then the next call, then a restart on the same spool', async (t) => {
  const upstream = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const m = JSON.parse(body.toString('utf8')) as Rec;
      const p = (m['params'] ?? {}) as Rec;
      const a = (p['arguments'] ?? {}) as Rec;
      let text = 'ok';
      if (p['name'] === 'big') text = 'b'.repeat(a['bytes'] as number);
      if (p['name'] === 'size') text = String(body.length);
      if (p['name'] === 'echo') text = a['message'] as string;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ jsonrpc: '2.0', id: m['id'], result: { content: [{ type: 'text', text }] } }));
    });
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', () => r()));
  t.teardown(() => new Promise<void>((r) => upstream.close(() => r())));
  const upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}/mcp`;
  const spool = path.join(dir, 'spool-proxy');
  const startProxy = async (): Promise<{ url: string; process: ReturnType<typeof spawnNode> }> => {
    const p = spawnNode(vigilMain, [
      'mcp',
      'proxy',
      '--upstream',
      upstreamUrl,
      '--listen',
      '127.0.0.1:0',
      '--log',
      log.url,
      '--key',
      reg.keyFile,
      '--policy',
      reg.policyFile,
      '--mode',
      'sync',
      '--spool-dir',
      spool,
      '--timeout',
      '60000',
    ]);
    const m = await p.waitFor(/listening on (\S+) ->/);
    return { url: m[1]!, process: p };
  };
  const call = async (url: string, id: number, tool: string, args: Rec): Promise<Rec> => {
    const res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: JSON.stringify({
        jsonrpc: '2.0',
        id,
        method: 'tools/call',
        params: { name: tool, arguments: args },
      }),
    });
    return (await res.json()) as Rec;
  };

  const proxy = await startProxy();
  const big = await call(proxy.url, 1, 'big', { bytes: BIG });
  t.equal(textOf(big).length, BIG, 'the 20 MiB answer reached the client whole');
  // Within the proxy's 16 MiB bound: held, recorded in sealed parts.
  const within = await call(proxy.url, 4, 'big', { bytes: 12 * MIB });
  t.equal(textOf(within).length, 12 * MIB, 'the 12 MiB answer reached the client whole');
  const request = 'r'.repeat(12 * MIB);
  t.equal(
    textOf(await call(proxy.url, 2, 'size', { request })).length > 0,
    true,
    'a 12 MiB request is answered',
  );
  const next = await call(proxy.url, 3, 'echo', { message: 'after the big answer' });
  t.equal(textOf(next), 'after the big answer', 'the next call is answered (not refused)');
  const rss = await peakRssMib(proxy.process.child.pid!);
  t.comment(
    `mcp proxy peak RSS with a 20 MiB and a 12 MiB answer and a 12 MiB request: ${rss.toFixed(0)} MiB`,
  );
  t.ok(rss < RSS_BOUND_MIB, `proxy peak RSS ${rss.toFixed(0)} MiB < ${RSS_BOUND_MIB} MiB`);
  await proxy.process.stop();
  t.notMatch(proxy.process.output(), /emitter alarm/, 'no alarm');

  const proxied = (x: Found, direction: string, id: string): boolean =>
    x.record['direction'] === direction &&
    x.record['transport'] !== 'stdio' &&
    x.record['jsonrpc.request.id'] === id;
  const found = await searchUntil(
    log,
    reg.policyFile,
    { tool: 'big' },
    (f) =>
      f.some((x) => proxied(x, 'server_to_client', '4')) &&
      f.some((x) => proxied(x, 'client_to_server', '1')),
    120_000,
  );
  const answer = found.find((x) => proxied(x, 'server_to_client', '4'))!.entry.record;
  t.equal(
    (await wireBytes(answer['wire'])).toString('utf8'),
    JSON.stringify(within),
    'the log holds the exact answer',
  );
  // The 20 MiB answer, past the bound: its size and salted digest, which the bytes the client got
  // (the upstream's JSON.stringify of it) reproduce.
  const bigSession = found.find((x) => proxied(x, 'client_to_server', '1'))!.record['session'] as string;
  const oversized = (
    await recordsOf(bigSession, (f) => f.some((x) => x.record['kind'] === 'mcp.message.oversized'))
  ).find((x) => x.record['kind'] === 'mcp.message.oversized')!.entry.record;
  const bigBytes = Buffer.from(JSON.stringify(big));
  const marker = (oversized['wire'] as { $oversize: { size: number; salt: string; sha256: string } })
    .$oversize;
  t.match(oversized, { direction: 'server_to_client', size: bigBytes.length, limit: 16 * MIB });
  t.equal(marker.size, bigBytes.length, 'the marker has the size in bytes');
  t.equal(Buffer.from(marker.salt, 'base64').length, 16, 'with a 16-byte salt');
  t.equal(
    marker.sha256,
    sha256(Buffer.from(`{"salt":"${marker.salt}","value":"${bigBytes.toString('base64')}"}`)),
    'the salted digest of the exact answer',
  );
  t.notOk(JSON.stringify(oversized).includes('rawSha256'), 'no unsalted digest of the answer');
  await searchUntil(
    log,
    reg.policyFile,
    { tool: 'echo' },
    (f) => f.some((x) => JSON.stringify(x.record).includes('after the big answer')),
    60_000,
  );

  const again = await startProxy();
  t.equal(textOf(await call(again.url, 1, 'echo', { message: 'restarted proxy' })), 'restarted proxy');
  await again.process.stop();
  t.notMatch(again.process.output(), /emitter alarm/);
});
