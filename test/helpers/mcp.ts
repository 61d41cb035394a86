// End-to-end helpers for the MCP capture tests and the demo: the reference servers' entry points, an
// emitter key registered on a real log, a scripted session of calls against server-everything (what
// the client saw), and `vigil search` over the log with every result's receipt checked again here.
import { type ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs/promises';
import { createRequire } from 'node:module';
import net from 'node:net';
import * as path from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import canonicalize from 'canonicalize';
import type tap from 'tap';
import { CreateMessageRequestSchema, EmptyResultSchema } from '@modelcontextprotocol/sdk/types.js';
import { formatEntry, parsePolicy, verifyReceipt, type Entry } from '@vigil/client';
import { runNode, vigilMain, type LogProcess } from './log.js';

const require = createRequire(import.meta.url);
const pkgDir = (name: string): string => path.dirname(require.resolve(`${name}/package.json`));

/** server-everything's entry point (stdio by default, `streamableHttp` as first argument). */
export const everythingEntry = path.join(
  pkgDir('@modelcontextprotocol/server-everything'),
  'dist',
  'index.js',
);
/** server-filesystem's entry point (allowed directories as arguments). */
export const filesystemEntry = path.join(
  pkgDir('@modelcontextprotocol/server-filesystem'),
  'dist',
  'index.js',
);

/** An emitter key file registered on `log`, and a policy file trusting the log. */
export interface Registered {
  name: string;
  vkey: string;
  keyFile: string;
  policyFile: string;
}

/** Writes a signer key with `vigil keygen` and registers it on the log. */
export async function registerEmitter(log: LogProcess, dir: string, name: string): Promise<Registered> {
  const keyFile = path.join(dir, `${name.replace(/[^A-Za-z0-9._-]/g, '_')}.key`);
  const policyFile = path.join(dir, 'log.policy');
  await fs.writeFile(policyFile, log.policy);
  const keygen = await runNode(vigilMain, ['keygen', name, '--out', keyFile]);
  if (keygen.code !== 0) throw new Error(`vigil keygen failed: ${keygen.stderr}`);
  const vkey = keygen.stdout.trim();
  await log.addEmitter(name, vkey);
  return { name, vkey, keyFile, policyFile };
}

/** One verified search result: the entry as decoded, its record (sealed values opened), and its index. */
export interface Found {
  index: bigint;
  entry: Entry;
  record: Record<string, unknown>;
  receipt: string;
}

/**
 * Runs `vigil search --json` (the CLI) as the log's reader with `query` as flags, requires exit 0 (every
 * result verified and every sealed value matching its commitment, by the CLI), then verifies each
 * receipt again against the entry bytes rebuilt here. `record` is the record with its sealed values
 * opened (the CLI's `opened`), `entry` the entry as the tree holds it. Oldest first.
 */
export async function searchLog(
  log: LogProcess,
  policyFile: string,
  query: Record<string, string>,
): Promise<Found[]> {
  const base = ['search', '--log', log.url, '--policy', policyFile, '--limit', '1000', '--json'];
  for (const [k, v] of Object.entries(query)) base.push(`--${k}`, v);
  const policy = parsePolicy(log.policy);
  const out: Found[] = [];
  // An answer stops at the log's byte bounds (opened values count) with a `next` cursor: follow it.
  for (let after: string | undefined; ;) {
    const args = after === undefined ? base : [...base, '--after', after];
    const r = await runNode(vigilMain, args, { VIGIL_READER_TOKEN: await log.readerToken() });
    if (r.code !== 0) throw new Error(`vigil ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
    const body = JSON.parse(r.stdout) as {
      results: {
        index: string;
        verified: boolean;
        entry: Entry;
        receipt: string;
        opened?: Record<string, unknown>;
        sealed?: { state: string; path: string }[];
      }[];
      next?: string;
    };
    for (const x of body.results) {
      if (!x.verified) throw new Error(`search result ${x.index} not verified`);
      const bad = (x.sealed ?? []).filter((v) => v.state !== 'opened' && v.state !== 'erased');
      if (bad.length > 0) throw new Error(`search result ${x.index}: sealed values ${JSON.stringify(bad)}`);
      const v = verifyReceipt(x.receipt, formatEntry(x.entry), policy);
      if (v.index !== BigInt(x.index)) throw new Error(`receipt of ${x.index} is for index ${v.index}`);
      out.push({
        index: BigInt(x.index),
        entry: x.entry,
        record: x.opened ?? x.entry.record,
        receipt: x.receipt,
      });
    }
    if (body.next === undefined || body.results.length === 0) break;
    after = body.next;
  }
  return out.sort((a, b) => (a.index < b.index ? -1 : 1));
}

/** Polls `vigil search` until `ready(found)` holds (the wrapper ships in the background). */
export async function searchUntil(
  log: LogProcess,
  policyFile: string,
  query: Record<string, string>,
  ready: (found: Found[]) => boolean,
  timeoutMs = 30_000,
): Promise<Found[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = await searchLog(log, policyFile, query);
    if (ready(found)) return found;
    if (Date.now() > deadline)
      throw new Error(`search ${JSON.stringify(query)}: condition not met; have ${found.length} results`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** A client that declares sampling and answers every sampling request with `reply`. */
export function samplingClient(name: string, reply = 'sampled reply'): Client {
  const client = new Client({ name, version: '0.0.1' }, { capabilities: { sampling: {} } });
  client.setRequestHandler(CreateMessageRequestSchema, async () => ({
    model: 'fake-model',
    role: 'assistant',
    content: { type: 'text', text: reply },
  }));
  return client;
}

/** What the client saw in `exerciseEverything`: tool name -> arguments and the result (or error). */
export interface Seen {
  tools: string[];
  calls: { tool: string; arguments: Record<string, unknown>; result?: unknown; error?: string }[];
  progress: number[];
  cancelled: { tool: string; arguments: Record<string, unknown> };
  /** The JSON-RPC error of a request for a method the server does not have. */
  rpcError: { method: string; error: string };
}

/**
 * The scripted session against server-everything: list tools; echo; get-sum; a long-running call
 * with progress; a sampling round trip; tool errors (bad arguments, an unknown tool); an unknown
 * method (a JSON-RPC error); and a long-running call cancelled after its first progress notification.
 */
export async function exerciseEverything(client: Client, tag: string): Promise<Seen> {
  const seen: Seen = {
    tools: [],
    calls: [],
    progress: [],
    cancelled: { tool: 'trigger-long-running-operation', arguments: { duration: 30, steps: 30 } },
    rpcError: { method: 'vigil/no-such-method', error: '' },
  };
  seen.tools = (await client.listTools()).tools.map((x) => x.name);
  const call = async (
    tool: string,
    args: Record<string, unknown>,
    options?: Parameters<Client['callTool']>[2],
  ): Promise<void> => {
    try {
      const result = await client.callTool({ name: tool, arguments: args }, undefined, options);
      seen.calls.push({ tool, arguments: args, result });
    } catch (err) {
      seen.calls.push({ tool, arguments: args, error: (err as Error).message });
    }
  };
  await call('echo', { message: `hello ${tag}` });
  await call('get-sum', { a: 2, b: 40 });
  await call(
    'trigger-long-running-operation',
    { duration: 0.4, steps: 2 },
    { onprogress: (p) => seen.progress.push(p.progress) },
  );
  await call('trigger-sampling-request', { prompt: `sample ${tag}`, maxTokens: 10 });
  await call('get-sum', { a: 'not a number', b: 1 });
  await call('no-such-tool', { x: 1 });
  seen.rpcError.error = await client
    .request({ method: seen.rpcError.method, params: {} }, EmptyResultSchema)
    .then(
      () => 'no error',
      (err: unknown) => (err as Error).message,
    );
  const abort = new AbortController();
  await client
    .callTool({ name: seen.cancelled.tool, arguments: seen.cancelled.arguments }, undefined, {
      signal: abort.signal,
      onprogress: () => abort.abort('enough'),
    })
    .catch(() => undefined);
  return seen;
}

/** A free TCP port (server-everything prints its configured port, so it cannot be given port 0). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

/** A child process whose output is collected, with a wait for a line and a clean stop. */
export interface Spawned {
  child: ChildProcess;
  output(): string;
  /** Resolves with the first match of `re` in the output (rejects on exit or after the deadline). */
  waitFor(re: RegExp, timeoutMs?: number): Promise<RegExpExecArray>;
  /** SIGTERM (then SIGKILL after 5 s); resolves with the exit code or 128+signal. */
  stop(): Promise<number | null>;
}

/** Spawns `node script args` with `env` added to ours. */
export function spawnNode(script: string, args: string[], env: Record<string, string> = {}): Spawned {
  const child = spawn(process.execPath, [script, ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (out += d));
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code, signal) => resolve(code ?? (signal !== null ? 128 : null))),
  );
  return {
    child,
    output: () => out,
    async waitFor(re, timeoutMs = 20_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const m = re.exec(out);
        if (m !== null) return m;
        if (child.exitCode !== null || child.signalCode !== null)
          throw new Error(`${path.basename(script)} exited before ${re}: ${out}`);
        if (Date.now() > deadline) throw new Error(`${path.basename(script)}: no ${re} in time: ${out}`);
        await new Promise((r) => setTimeout(r, 25));
      }
    },
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return exited;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
}

/** Starts server-everything over Streamable HTTP; resolves with its /mcp URL once it listens. */
export async function startEverythingHttp(): Promise<{ url: string; process: Spawned }> {
  const port = await freePort();
  const p = spawnNode(everythingEntry, ['streamableHttp'], { PORT: String(port) });
  await p.waitFor(/listening on port/);
  return { url: `http://127.0.0.1:${port}/mcp`, process: p };
}

/** The assertions the session checks use (a tap subtest fits). */
export type Asserts = Pick<typeof tap, 'ok' | 'notOk' | 'equal' | 'not' | 'same' | 'match'>;

type Rec = Record<string, unknown>;
const msg = (r: Rec): Rec => (r['message'] ?? {}) as Rec;
const params = (r: Rec): Rec => (msg(r)['params'] ?? {}) as Rec;
const corr = (r: Rec): string => JSON.stringify(r['correlation']);

/** Checks what the client saw in `exerciseEverything` (the echo carried `echoed`). */
export function checkClientSaw(t: Asserts, seen: Seen, echoed: string): void {
  // What the client saw, first.
  t.ok(seen.tools.includes('echo') && seen.tools.includes('trigger-sampling-request'));
  t.ok(seen.progress[0] === 1, 'progress reached the client');
  const byTool = (tool: string) => seen.calls.filter((c) => c.tool === tool);
  t.match(byTool('echo')[0]?.result, { content: [{ type: 'text', text: `Echo: ${echoed}` }] });
  t.match(JSON.stringify(byTool('trigger-sampling-request')[0]?.result), /sampled reply/);
  t.match(byTool('get-sum')[1]?.result, { isError: true }, 'bad arguments are a tool error');
  t.match(byTool('no-such-tool')[0]?.result, { isError: true, content: [{ text: /not found/ }] });
  t.match(seen.rpcError.error, /-32601/, 'an unknown method is a JSON-RPC error');
}

/**
 * Checks the records of one session against what the client saw in `exerciseEverything`: the tool
 * list, each call's arguments and result (or error), progress, sampling, the unknown method's error,
 * and the cancelled call left unanswered as cancelled. `transport` is the records' transport name.
 */
export function checkEverythingSession(t: Asserts, records: Rec[], seen: Seen, transport: string): void {
  const messages = records.filter((r) => r['kind'] === 'mcp.message');

  // tools/list: request and answer, the answer listing what the client saw.
  const list = messages.filter((r) => r['mcp.method.name'] === 'tools/list');
  t.same(
    list.map((r) => r['direction']),
    ['client_to_server', 'server_to_client'],
  );
  t.same(
    ((msg(list[1]!)['result'] as Rec)['tools'] as Rec[]).map((x) => x['name']),
    seen.tools,
    'the recorded tool list is the one the client saw',
  );

  // Each call: one request with the client's arguments, one answer correlated to it, equal to
  // what the client got.
  for (const call of seen.calls) {
    const requests = messages.filter(
      (r) =>
        r['direction'] === 'client_to_server' &&
        r['gen_ai.tool.name'] === call.tool &&
        canonicalize(params(r)['arguments']) === canonicalize(call.arguments),
    );
    t.equal(requests.length, 1, `${call.tool} ${JSON.stringify(call.arguments)}: one request`);
    const request = requests[0]!;
    t.equal(request['mcp.method.name'], 'tools/call');
    t.equal(request['transport'], transport);
    const answers = messages.filter(
      (r) =>
        r['direction'] === 'server_to_client' &&
        r['messageType'] !== 'request' &&
        r['messageType'] !== 'notification' &&
        corr(r) === corr(request),
    );
    t.equal(answers.length, 1, `${call.tool}: one answer`);
    const answer = answers[0]!;
    t.equal(answer['matched'], true);
    t.equal(answer['gen_ai.tool.name'], call.tool, 'the answer names the tool of its request');
    if (call.result !== undefined) {
      t.same(msg(answer)['result'], call.result, `${call.tool}: recorded result is what the client got`);
    } else {
      const error = msg(answer)['error'] as Rec;
      t.ok(call.error?.includes(String(error['message'])), `${call.tool}: recorded error is the client's`);
      t.equal(answer['error.type'], String(error['code']));
    }
  }
  const toolError = messages.find(
    (r) => r['direction'] === 'server_to_client' && r['error.type'] === 'tool_error',
  );
  t.match(toolError, { 'gen_ai.tool.name': 'get-sum' }, 'a tool error is marked error.type tool_error');

  // Progress: the notifications carry the long-running call's progress token.
  const longCall = messages.find(
    (r) =>
      r['direction'] === 'client_to_server' &&
      canonicalize(params(r)['arguments']) === canonicalize({ duration: 0.4, steps: 2 }),
  )!;
  const token = (params(longCall)['_meta'] as Rec)['progressToken'];
  const progress = messages.filter(
    (r) => r['mcp.method.name'] === 'notifications/progress' && params(r)['progressToken'] === token,
  );
  t.same(
    progress.map((r) => params(r)['progress']),
    [1, 2],
    'each progress notification the server sent recorded once',
  );

  // The unknown method: a JSON-RPC error answer correlated to its request.
  const rpc = messages.filter((r) => r['mcp.method.name'] === seen.rpcError.method);
  t.same(
    rpc.map((r) => [r['direction'], r['messageType'], r['error.type']]),
    [
      ['client_to_server', 'request', undefined],
      ['server_to_client', 'error', '-32601'],
    ],
  );
  t.ok(seen.rpcError.error.includes(String((msg(rpc[1]!)['error'] as Rec)['message'])));

  // Sampling: the server's request and the client's answer, in the server's id space.
  const sampling = messages.filter((r) => r['mcp.method.name'] === 'sampling/createMessage');
  t.same(
    sampling.map((r) => [r['direction'], r['messageType'], (r['correlation'] as Rec)['requester']]),
    [
      ['server_to_client', 'request', 'server'],
      ['client_to_server', 'result', 'server'],
    ],
  );
  t.match(msg(sampling[1]!)['result'], { content: { type: 'text', text: 'sampled reply' } });
  t.same(sampling[0]!['correlation'], sampling[1]!['correlation']);

  // Cancellation: the notification names the request; the request stays unanswered, as cancelled.
  const cancelledRequest = messages.find(
    (r) =>
      r['direction'] === 'client_to_server' &&
      canonicalize(params(r)['arguments']) === canonicalize(seen.cancelled.arguments),
  )!;
  const cancel = messages.find((r) => r['mcp.method.name'] === 'notifications/cancelled');
  t.same(cancel?.['correlation'], cancelledRequest['correlation'], 'the cancellation names the request');
  const unanswered = records.filter((r) => r['kind'] === 'mcp.unanswered');
  t.match(unanswered, [
    {
      reason: 'cancelled',
      correlation: cancelledRequest['correlation'],
      'gen_ai.tool.name': 'trigger-long-running-operation',
    },
  ]);
}

/**
 * The argv (node script first) of `vigil mcp wrap` for `reg` against `log`, ending in `--`: append the
 * server command. `extra` goes before `--` (e.g. `['--mode', 'spool']`).
 */
export function wrapArgv(log: LogProcess, reg: Registered, spoolDir: string, extra: string[] = []): string[] {
  return [
    vigilMain,
    'mcp',
    'wrap',
    '--log',
    log.url,
    '--key',
    reg.keyFile,
    '--policy',
    reg.policyFile,
    '--spool-dir',
    spoolDir,
    ...extra,
    '--',
  ];
}

/**
 * One MCP session through the real `vigil mcp wrap` around server-everything over stdio: `calls` drives
 * the SDK client, the session is closed, and the wrapper's records are read back once its stream is
 * closed in the log. Returns those records (verified, opened, oldest first) and the session's id.
 */
export async function wrappedEverythingSession(
  log: LogProcess,
  reg: Registered,
  spoolDir: string,
  clientName: string,
  calls: (client: Client) => Promise<void>,
): Promise<{ found: Found[]; session: string }> {
  const client = new Client({ name: clientName, version: '0' });
  await client.connect(
    new StdioClientTransport({
      command: process.execPath,
      args: [...wrapArgv(log, reg, spoolDir), process.execPath, everythingEntry, 'stdio'],
      stderr: 'pipe',
    }),
  );
  await calls(client);
  await client.close();
  const found = await searchUntil(log, reg.policyFile, { emitter: reg.name }, (f) =>
    f.some((x) => x.record['kind'] === 'stream.close'),
  );
  const request = found.find(
    (x) => x.record['kind'] === 'mcp.message' && typeof x.record['session'] === 'string',
  );
  if (request === undefined) throw new Error(`no message of ${reg.name} in the log`);
  return { found, session: request.record['session'] as string };
}

/** Starts `vigil mcp proxy` for `reg` in front of `upstream` on an ephemeral port; resolves once it listens. */
export async function startProxy(
  log: LogProcess,
  reg: Registered,
  upstream: string,
  spoolDir: string,
  extra: string[] = [],
): Promise<{ url: string; process: Spawned }> {
  const p = spawnNode(vigilMain, [
    'mcp',
    'proxy',
    '--upstream',
    upstream,
    '--listen',
    '127.0.0.1:0',
    '--log',
    log.url,
    '--key',
    reg.keyFile,
    '--policy',
    reg.policyFile,
    '--spool-dir',
    spoolDir,
    ...extra,
  ]);
  try {
    const m = await p.waitFor(/listening on (\S+) ->/);
    return { url: m[1]!, process: p };
  } catch (err) {
    await p.stop();
    throw err;
  }
}
