// End to end: `vigil export --follow --jsonl` (streams out) against a real log holding real MCP sessions
// (server-everything behind `vigil mcp wrap`). Every record is written once, verified, its sealed values
// opened; a second run appends only the new records; a crash between the lines and the state (the
// state file put back as it was), and a real kill -9 mid-run, are followed by a restart with no
// duplicate and no gap; a log that lies (a checkpoint signed by another key, a rolled-back checkpoint,
// served by a small proxy in front of the real log) makes it exit 1 with nothing written. `--otlp`
// sends one span per request/response pair to a real OTLP/HTTP receiver here, decoded with the
// OpenTelemetry proto definitions, and every attribute is checked against the JSON lines.
import * as fs from 'node:fs/promises';
import * as http from 'node:http';
import { createRequire } from 'node:module';
import * as os from 'node:os';
import * as path from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { generateKey, parseCheckpoint, signNote, type FollowLine } from '@vigil/client';
import { createEmitter, useNodeCrypto } from '@vigil/client/node';
import t from 'tap';
import { runNode, startLog, vigilMain } from '../helpers/log.js';
import {
  everythingEntry,
  registerEmitter,
  searchUntil,
  spawnNode,
  wrapArgv,
  type Asserts,
} from '../helpers/mcp.js';

useNodeCrypto();
const log = await startLog();
t.teardown(() => log.stop());
const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'vigil-export-follow-'));
t.teardown(() => fs.rm(dir, { recursive: true, force: true }));
const wrapper = await registerEmitter(log, dir, 'mcp-wrapper');
const token = await log.readerToken();
const env = { NO_COLOR: '1', VIGIL_READER_TOKEN: token };
let sessions = 0;

/** One wrapped session: tools/list, echo(marker), get-sum, and a call of a tool that does not exist. */
async function session(marker: string): Promise<void> {
  const transport = new StdioClientTransport({
    command: process.execPath,
    args: [...wrapArgv(log, wrapper, path.join(dir, 'spool')), process.execPath, everythingEntry, 'stdio'],
    stderr: 'pipe',
  });
  const client = new Client({ name: 'export-follow-e2e', version: '0' });
  await client.connect(transport);
  await client.listTools();
  await client.callTool({ name: 'echo', arguments: { message: marker } });
  await client.callTool({ name: 'get-sum', arguments: { a: 2, b: 3 } });
  await client.callTool({ name: 'no-such-tool', arguments: {} }).catch(() => undefined);
  await client.close();
  sessions++;
  await searchUntil(
    log,
    wrapper.policyFile,
    { emitter: 'mcp-wrapper' },
    (f) => f.filter((x) => x.record['kind'] === 'stream.close').length >= sessions,
  );
}

/** `n` plain records from the wrapper's key on a stream of their own (cheaper than an MCP session). */
async function records(n: number, tag: string): Promise<void> {
  const em = await createEmitter({
    logUrl: log.url,
    key: (await fs.readFile(wrapper.keyFile, 'utf8')).trim(),
    spoolDir: await fs.mkdtemp(path.join(dir, 'emit-')),
    policy: log.policy,
  });
  await Promise.all(Array.from({ length: n }, (_, i) => em.emit({ kind: 'app.event', tag, i })));
  await em.close();
}

/** A line as read back: the shape the stream writes, with `verified` checked rather than assumed. */
type Line = Omit<FollowLine, 'verified'> & { verified: boolean };

const readLines = async (file: string): Promise<Line[]> =>
  (await fs.readFile(file, 'utf8').catch(() => ''))
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as Line);

const follow = (args: string[], logUrl = log.url) =>
  runNode(
    vigilMain,
    ['export', '--follow', '--jsonl', '--log', logUrl, '--policy', wrapper.policyFile, ...args],
    env,
  );

const stateNext = async (file: string): Promise<bigint> =>
  BigInt((JSON.parse(await fs.readFile(file, 'utf8')) as { next: string }).next);

/** Every index 0..next-1 exactly once, in order, each verified. */
function checkContiguous(t: Asserts, lines: Line[], next: bigint): void {
  t.equal(lines.length, Number(next), `${next} records, one line each`);
  t.same(
    lines.map((l) => l.index),
    Array.from({ length: Number(next) }, (_, i) => String(i)),
    'indices 0.. in order, none twice, none missing',
  );
  t.ok(
    lines.every((l) => l.verified === true && l.origin === log.origin),
    'every line verified, origin named',
  );
}

await session('follow-marker-one');
const early = await (await fetch(new URL('checkpoint', log.url))).text();
const out = path.join(dir, 'records.jsonl');
const state = path.join(dir, 'follow.state');

t.test('--once writes every record once, verified, sealed values opened', async (t) => {
  const r = await follow(['--out', out, '--state', state, '--once']);
  t.equal(r.code, 0, r.stderr);
  t.equal(r.stdout, '', 'with --out nothing on stdout');
  const lines = await readLines(out);
  const next = await stateNext(state);
  t.ok(next > 10n, `caught up to ${next}`);
  checkContiguous(t, lines, next);
  const echo = lines.find(
    (l) => l.method === 'tools/call' && l.tool === 'echo' && l.direction === 'client_to_server',
  )!;
  t.ok(echo, 'the echo call is there');
  t.equal(echo.kind, 'mcp.message');
  t.equal(echo.emitter, 'mcp-wrapper');
  t.type(echo.session, 'string');
  t.type(echo.id, 'string');
  t.match(echo.time, /^\d{4}-\d\d-\d\dT/);
  t.match(echo.received, /^\d{4}-\d\d-\d\dT/);
  t.same(
    (echo.record['message'] as { params: { arguments: unknown } }).params.arguments,
    { message: 'follow-marker-one' },
    'the arguments opened',
  );
  t.ok(echo.sealed.length > 0 && echo.sealed.every((s) => s.state === 'opened'), 'its sealed values opened');
  t.ok(
    lines.some((l) => l.kind === 'emitter.add'),
    'the registry records are records too',
  );
  const stateText = await fs.readFile(state, 'utf8');
  t.notOk(stateText.includes('follow-marker-one'), 'no opened value in the state file');
  t.notOk(stateText.includes(token) || r.stderr.includes(token), 'the reader token is nowhere');
  t.equal((await fs.stat(out)).mode & 0o077, 0, '--out is readable by its owner only');
  const errorResponse = lines.find(
    (l) => l.direction === 'server_to_client' && l.record['error.type'] !== undefined,
  );
  t.ok(errorResponse, 'the unknown tool was answered with an error');
});

t.test('--help prints the usage', async (t) => {
  const r = await runNode(vigilMain, ['export', '--follow', '--help']);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /vigil export --follow --jsonl/);
  t.match(r.stdout, /--otlp URL/);
  t.match(r.stdout, /--state FILE/);
});

t.test('a second run appends only the new records', async (t) => {
  const before = await readLines(out);
  await session('follow-marker-two');
  const r = await follow(['--out', out, '--state', state, '--once']);
  t.equal(r.code, 0, r.stderr);
  const lines = await readLines(out);
  checkContiguous(t, lines, await stateNext(state));
  t.same(lines.slice(0, before.length), before, 'the earlier lines are untouched');
  const added = lines.slice(before.length);
  t.ok(
    added.some(
      (l) =>
        l.tool === 'echo' &&
        JSON.stringify(l.record).includes('follow-marker-two') &&
        l.sealed.every((s) => s.state === 'opened'),
    ),
    'the new session is in the new lines, opened',
  );
  t.notOk(
    added.some((l) => JSON.stringify(l.record).includes('follow-marker-one')),
    'the first session is not written again',
  );
});

t.test('--from now starts at the end of the log, then follows', async (t) => {
  const nowOut = path.join(dir, 'now.jsonl');
  const nowState = path.join(dir, 'now.state');
  const first = await follow(['--from', 'now', '--out', nowOut, '--state', nowState, '--once']);
  t.equal(first.code, 0, first.stderr);
  t.equal(await fs.readFile(nowOut, 'utf8'), '', 'nothing of the past');
  const start = await stateNext(nowState);
  t.ok(start > 0n, `starts at ${start}`);
  await records(3, 'from-now');
  const second = await follow(['--from', 'now', '--out', nowOut, '--state', nowState, '--once']);
  t.equal(second.code, 0, second.stderr);
  const lines = await readLines(nowOut);
  const next = await stateNext(nowState);
  t.same(
    lines.map((l) => l.index),
    Array.from({ length: Number(next - start) }, (_, i) => String(start + BigInt(i))),
    'every record from there on, once',
  );
  t.equal(lines.filter((l) => l.record['tag'] === 'from-now').length, 3);
});

t.test('a crash between the lines and the state: the restart writes each record once', async (t) => {
  await records(40, 'follow-marker-three');
  const savedState = await fs.readFile(state);
  const before = await readLines(out);
  const r = await follow(['--out', out, '--state', state, '--once']);
  t.equal(r.code, 0, r.stderr);
  t.ok((await readLines(out)).length > before.length, 'the pass wrote new lines');
  // What the disk holds if the process died after fsyncing the lines and before renaming the state.
  await fs.writeFile(state, savedState);
  const restart = await follow(['--out', out, '--state', state, '--once']);
  t.equal(restart.code, 0, restart.stderr);
  checkContiguous(t, await readLines(out), await stateNext(state));
});

t.test('kill -9 mid-run, then restart: no duplicate, no gap', async (t) => {
  await records(300, 'follow-marker-four');
  const size = (await fs.stat(out)).size;
  const p = spawnNode(
    vigilMain,
    [
      'export',
      '--follow',
      '--jsonl',
      '--log',
      log.url,
      '--policy',
      wrapper.policyFile,
      '--out',
      out,
      '--state',
      state,
      '--interval',
      '50ms',
    ],
    env,
  );
  // Killed as soon as the first new bytes reach the file: mid-pass or just after it.
  const deadline = Date.now() + 30_000;
  while ((await fs.stat(out)).size === size && Date.now() < deadline)
    await new Promise((r) => setTimeout(r, 5));
  p.child.kill('SIGKILL');
  await p.stop();
  t.ok((await fs.stat(out)).size > size, 'it had written before the kill');
  const restart = await follow(['--out', out, '--state', state, '--once']);
  t.equal(restart.code, 0, restart.stderr);
  const lines = await readLines(out);
  checkContiguous(t, lines, await stateNext(state));
  t.ok(
    lines.some((l) => JSON.stringify(l.record).includes('follow-marker-four')),
    'the session before the kill is there',
  );
});

/** A proxy in front of the real log that serves `checkpoint()` instead of the log's /checkpoint. */
async function lyingLog(checkpoint: () => Promise<string>): Promise<{ url: string; close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    void (async () => {
      try {
        if (req.url === '/checkpoint') {
          res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' });
          res.end(await checkpoint());
          return;
        }
        const upstream = await fetch(new URL(req.url!.slice(1), log.url), {
          headers:
            req.headers.authorization !== undefined ? { authorization: req.headers.authorization } : {},
        });
        const headers: Record<string, string> = {};
        upstream.headers.forEach((v, k) => {
          if (k !== 'content-encoding' && k !== 'content-length' && k !== 'transfer-encoding') headers[k] = v;
        });
        res.writeHead(upstream.status, headers);
        res.end(Buffer.from(await upstream.arrayBuffer()));
      } catch (err) {
        res.writeHead(502);
        res.end(String(err));
      }
    })();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}/`,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

t.test('a log that lies makes it exit 1 with nothing written', async (t) => {
  const current = async () => (await fetch(new URL('checkpoint', log.url))).text();
  // Another key under the log's name signs the log's own checkpoint body.
  const impostor = generateKey(log.origin);
  const forged = await lyingLog(async () => {
    const note = await current();
    return signNote(note.slice(0, note.indexOf('\n\n') + 1), [impostor.signerKey]);
  });
  t.teardown(() => forged.close());
  const fresh = path.join(dir, 'forged.jsonl');
  const r = await follow(['--out', fresh, '--state', path.join(dir, 'forged.state'), '--once'], forged.url);
  t.equal(r.code, 1, 'exit 1');
  t.match(r.stderr, /CHECKPOINT_INVALID/);
  t.equal(await fs.readFile(fresh, 'utf8'), '', 'nothing written');
  await t.rejects(fs.stat(path.join(dir, 'forged.state')), 'no state written');

  // A rollback: the checkpoint of the first session, validly signed, after the stream saw later ones.
  await records(5, 'follow-marker-five');
  t.ok(parseCheckpoint(early.slice(0, early.indexOf('\n\n') + 1)).size < (await stateNext(state)));
  const rolledBack = await lyingLog(() => Promise.resolve(early));
  t.teardown(() => rolledBack.close());
  const outBefore = await fs.readFile(out, 'utf8');
  const stateBefore = await fs.readFile(state, 'utf8');
  const rb = await follow(['--out', out, '--state', state, '--once'], rolledBack.url);
  t.equal(rb.code, 1, 'exit 1');
  t.match(rb.stderr, /CHECKPOINT_ROLLBACK/);
  t.equal(await fs.readFile(out, 'utf8'), outBefore, 'nothing written');
  t.equal(await fs.readFile(state, 'utf8'), stateBefore, 'the state did not move');
  // The honest log again: the stream goes on where it stopped.
  const honest = await follow(['--out', out, '--state', state, '--once']);
  t.equal(honest.code, 0, honest.stderr);
  checkContiguous(t, await readLines(out), await stateNext(state));
});

interface OtlpSpan {
  traceId: string;
  spanId: string;
  name: string;
  kind: number;
  startTimeUnixNano: string;
  endTimeUnixNano: string;
  attributes: { key: string; value: { stringValue?: string; intValue?: string } }[];
  status?: { code?: number };
}

/** A real OTLP/HTTP receiver: decodes every POST /v1/traces with the OTLP protobuf definitions. */
async function startReceiver(t: { teardown(fn: () => unknown): void }): Promise<{
  url: string;
  spans: OtlpSpan[];
  resources: OtlpSpan['attributes'][];
  contentTypes: string[];
  /** Answer 400 (a rejected export) while true. */
  reject: { on: boolean };
}> {
  const require = createRequire(import.meta.url);
  // The OTLP protobuf definitions, as generated from opentelemetry-proto by the OpenTelemetry JS project.
  const root = require('@opentelemetry/otlp-transformer/build/src/generated/root.js') as {
    opentelemetry: {
      proto: {
        collector: {
          trace: {
            v1: {
              ExportTraceServiceRequest: {
                decode(b: Uint8Array): unknown;
                toObject(
                  m: unknown,
                  o: object,
                ): {
                  resourceSpans?: {
                    resource?: { attributes: OtlpSpan['attributes'] };
                    scopeSpans?: { spans?: OtlpSpan[] }[];
                  }[];
                };
              };
            };
          };
        };
      };
    };
  };
  const Request = root.opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest;
  const got = {
    spans: [] as OtlpSpan[],
    resources: [] as OtlpSpan['attributes'][],
    contentTypes: [] as string[],
    reject: { on: false },
  };
  const receiver = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (req.method !== 'POST' || req.url !== '/v1/traces') {
        res.writeHead(404);
        res.end();
        return;
      }
      if (got.reject.on) {
        res.writeHead(400);
        res.end();
        return;
      }
      got.contentTypes.push(String(req.headers['content-type']));
      const body = Request.toObject(Request.decode(Buffer.concat(chunks)), { longs: String, bytes: String });
      for (const rs of body.resourceSpans ?? []) {
        got.resources.push(rs.resource?.attributes ?? []);
        for (const ss of rs.scopeSpans ?? []) got.spans.push(...(ss.spans ?? []));
      }
      res.writeHead(200, { 'content-type': 'application/x-protobuf' });
      res.end();
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => receiver.close(() => resolve())));
  const { port } = receiver.address() as { port: number };
  return { url: `http://127.0.0.1:${port}/v1/traces`, ...got };
}

const attrs = (s: OtlpSpan): Record<string, string | undefined> =>
  Object.fromEntries(s.attributes.map((a) => [a.key, a.value.stringValue ?? a.value.intValue]));

t.test('--otlp: one span per request/response pair, MCP semantic-convention attributes', async (t) => {
  const { url, spans, resources, contentTypes } = await startReceiver(t);
  // No --out and no --state: the lines go to stdout, from index 0.
  const r = await follow(['--otlp', url, '--once']);
  t.equal(r.code, 0, r.stderr);
  t.ok(
    contentTypes.every((c) => c === 'application/x-protobuf'),
    'OTLP/HTTP protobuf',
  );
  const lines = r.stdout
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as Line);
  t.same(
    lines.map((l) => l.index),
    Array.from({ length: lines.length }, (_, i) => String(i)),
    'without --out every line on stdout, from index 0',
  );
  const fileLines = await readLines(out);
  t.ok(lines.length >= fileLines.length, 'up to a checkpoint at least as new as the file stream');
  t.same(lines.slice(0, fileLines.length), fileLines, 'the same records make the same lines');
  // The pairs, from the lines: each request with the response of the same emitter, session, requester, id.
  const requests = new Map<string, Line>();
  const pairs: [Line, Line][] = [];
  for (const l of lines) {
    const c = l.record['correlation'] as { requester?: string; id?: unknown } | undefined;
    if (l.kind !== 'mcp.message' || c?.requester === undefined || c.id === undefined) continue;
    const key = `${l.emitter}|${l.session}|${c.requester}|${typeof c.id}|${String(c.id)}`;
    const type = l.record['messageType'];
    if (type === 'request') requests.set(key, l);
    else if ((type === 'result' || type === 'error') && requests.has(key)) {
      pairs.push([requests.get(key)!, l]);
      requests.delete(key);
    }
  }
  t.ok(pairs.length >= 4 * sessions, `${pairs.length} pairs`);
  t.equal(spans.length, pairs.length, 'one span per pair');
  t.ok(
    resources.every((a) => a.some((x) => x.key === 'service.name' && x.value.stringValue === 'vigil')),
    'resource service.name',
  );
  const ns = (iso: string): string => (BigInt(Date.parse(iso)) * 1_000_000n).toString();
  for (const [req, res] of pairs) {
    const span = spans.find((s) => attrs(s)['vigil.request.index'] === req.index);
    if (span === undefined) {
      t.fail(`no span for request ${req.index}`);
      continue;
    }
    const a = attrs(span);
    const method = req.method!;
    const target = req.tool;
    t.equal(span.name, target !== null ? `${method} ${target}` : method, `span name of ${req.index}`);
    const want: Record<string, string | undefined> = {
      'mcp.method.name': method,
      'jsonrpc.request.id': req.id!,
      'vigil.log.origin': log.origin,
      'vigil.request.index': req.index,
      'vigil.response.index': res.index,
      'vigil.emitter': 'mcp-wrapper',
      'vigil.session': req.session!,
      'vigil.direction': req.direction!,
      'network.transport': 'pipe',
      'mcp.protocol.version': req.record['mcp.protocol.version'] as string | undefined,
      'gen_ai.tool.name': method === 'tools/call' ? target! : undefined,
      'gen_ai.operation.name': method === 'tools/call' ? 'execute_tool' : undefined,
      'error.type': res.record['error.type'] as string | undefined,
      'rpc.response.status_code':
        res.record['messageType'] === 'error'
          ? String((res.record['message'] as { error: { code: number } }).error.code)
          : undefined,
    };
    const present = Object.fromEntries(Object.entries(want).filter(([, v]) => v !== undefined));
    t.same(a, present, `every attribute of the span for ${req.index} (${span.name})`);
    t.equal(span.startTimeUnixNano, ns(req.time!), 'start: the request time');
    t.equal(span.endTimeUnixNano, ns(res.time!), 'end: the response time');
    t.equal(span.kind, 3, 'SPAN_KIND_CLIENT');
    t.equal(span.status?.code ?? 0, want['error.type'] !== undefined ? 2 : 0, 'status error on errors only');
    t.match(span.traceId, /^[A-Za-z0-9+/]{22}==$/, '16-byte trace id');
  }
  const errored = spans.filter((s) => s.status?.code === 2);
  t.ok(
    errored.some((s) => s.name === 'tools/call no-such-tool'),
    'the unknown tool call is an error span',
  );
  t.ok(
    spans.some((s) => s.name === 'tools/call echo'),
    'a tools/call echo span',
  );
  t.ok(
    spans.some((s) => s.name === 'tools/list'),
    'a tools/list span',
  );
});

t.test('--otlp with --state: a pair split across passes, a rejected export', async (t) => {
  const receiver = await startReceiver(t);
  const jsonl = path.join(dir, 'split.jsonl');
  const splitState = path.join(dir, 'split.state');
  const run = () => follow(['--out', jsonl, '--state', splitState, '--otlp', receiver.url, '--once']);
  t.equal((await run()).code, 0, 'caught up');
  const spansBefore = receiver.spans.length;
  // A request now, its response after the next pass (records as the capture writes them).
  const em = await createEmitter({
    logUrl: log.url,
    key: (await fs.readFile(wrapper.keyFile, 'utf8')).trim(),
    spoolDir: await fs.mkdtemp(path.join(dir, 'emit-')),
    policy: log.policy,
  });
  const common = { kind: 'mcp.message', transport: 'stdio', session: 'split-session' };
  await em.emit({
    ...common,
    direction: 'client_to_server',
    messageType: 'request',
    'mcp.method.name': 'tools/call',
    'gen_ai.tool.name': 'slow-tool',
    'jsonrpc.request.id': '7',
    correlation: { requester: 'client', id: 7 },
    message: { jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name: 'slow-tool' } },
  });
  const first = await run();
  t.equal(first.code, 0, first.stderr);
  t.equal(receiver.spans.length, spansBefore, 'no span while the response is missing');
  const waiting = JSON.parse(await fs.readFile(splitState, 'utf8')) as { pending: { index: string }[] };
  t.equal(waiting.pending.length, 1, 'the request waits in the state file');
  await em.emit({
    ...common,
    direction: 'server_to_client',
    messageType: 'result',
    'mcp.method.name': 'tools/call',
    'jsonrpc.request.id': '7',
    correlation: { requester: 'client', id: 7 },
    message: { jsonrpc: '2.0', id: 7, result: { content: [] } },
  });
  await em.close();
  // The collector rejects the export: exit non-zero, the state does not move.
  receiver.reject.on = true;
  const stateBefore = await fs.readFile(splitState, 'utf8');
  const rejected = await run();
  t.not(rejected.code, 0, 'a rejected export fails the run');
  t.match(rejected.stderr, /OTLP export failed/);
  t.equal(await fs.readFile(splitState, 'utf8'), stateBefore, 'the state did not move');
  receiver.reject.on = false;
  const ok = await run();
  t.equal(ok.code, 0, ok.stderr);
  const span = receiver.spans.find((s) => s.name === 'tools/call slow-tool');
  t.ok(span, 'the pair made a span after the restart');
  t.equal(
    attrs(span!)['vigil.request.index'],
    waiting.pending[0]!.index,
    'with the request of the earlier run',
  );
  t.equal(receiver.spans.filter((s) => s.name === 'tools/call slow-tool').length, 1, 'once');
  const lines = await readLines(jsonl);
  checkContiguous(t, lines, await stateNext(splitState));
});
