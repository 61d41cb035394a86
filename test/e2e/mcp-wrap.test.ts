// End to end: the SDK client drives the real reference servers through `vigil mcp wrap` (the compiled
// CLI) against a real log process, in sync and spool modes: tools/list, tool calls (echo, get-sum, a
// filesystem read and a denied write), progress, cancellation, a sampling round trip and errors.
// Each call is then found in the log with `vigil search`, its receipt verified, and its arguments and
// result compared with what the client saw. Last, the log goes down: spool mode keeps serving and
// ships later; sync mode refuses the call and the server never sees it.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { isSealedRef, openSealedBytes, type SealedRef } from '@vigil/client';
import t from 'tap';
import { startLog, vigilMain } from '../helpers/log.js';
import {
  checkClientSaw,
  checkEverythingSession,
  everythingEntry,
  exerciseEverything,
  filesystemEntry,
  registerEmitter,
  samplingClient,
  searchLog,
  searchUntil,
  type Found,
} from '../helpers/mcp.js';

const log = await startLog();
t.teardown(() => log.stop());
const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'vigil-mcp-e2e-'));
t.teardown(() => fs.rm(dir, { recursive: true, force: true }));
const reg = await registerEmitter(log, dir, 'mcp-wrapper');
const fsroot = path.join(dir, 'fsroot');
await fs.mkdir(fsroot);
await fs.writeFile(path.join(fsroot, 'note.txt'), 'audited content\n');

const wrapArgs = (mode: string, spool: string, timeoutMs = 5000): string[] => [
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
  mode,
  '--spool-dir',
  spool,
  '--timeout',
  String(timeoutMs),
  '--',
];

type Rec = Record<string, unknown>;
const msg = (r: Rec): Rec => (r['message'] ?? {}) as Rec;
const params = (r: Rec): Rec => (msg(r)['params'] ?? {}) as Rec;
const corr = (r: Rec): string => JSON.stringify(r['correlation']);

/** The session (wrapper stream) whose echo request carried `message`. */
async function sessionOfEcho(message: string): Promise<string> {
  const found = await searchUntil(log, reg.policyFile, { tool: 'echo' }, (f) =>
    f.some((x) => (params(x.record)['arguments'] as Rec | undefined)?.['message'] === message),
  );
  const hit = found.find((x) => (params(x.record)['arguments'] as Rec | undefined)?.['message'] === message)!;
  return hit.record['session'] as string;
}

/** Every record of a session once the wrapper's process exit and unanswered requests are in. */
async function sessionRecords(session: string, extra: (f: Found[]) => boolean = () => true): Promise<Rec[]> {
  const found = await searchUntil(
    log,
    reg.policyFile,
    { session },
    (f) => f.some((x) => x.record['kind'] === 'mcp.process.exit') && extra(f),
  );
  return found.map((x) => x.record);
}

for (const mode of ['sync', 'spool']) {
  t.test(`${mode}: SDK client -> vigil mcp wrap -> server-everything; every call in the log`, async (t) => {
    const transport = new StdioClientTransport({
      command: process.execPath,
      args: [...wrapArgs(mode, path.join(dir, `spool-${mode}`)), process.execPath, everythingEntry, 'stdio'],
      stderr: 'pipe',
    });
    const client = samplingClient('e2e');
    await client.connect(transport);
    const seen = await exerciseEverything(client, mode);
    await client.close();

    const session = await sessionOfEcho(`hello ${mode}`);
    const records = await sessionRecords(session, (f) =>
      f.some((x) => x.record['kind'] === 'mcp.unanswered'),
    );
    t.ok(
      records.some((r) => r['kind'] === 'mcp.process.start' && r['command'] === process.execPath),
      'the process start is recorded',
    );
    t.ok(
      records.some((r) => r['kind'] === 'mcp.process.exit'),
      'the process exit is recorded',
    );
    checkClientSaw(t, seen, `hello ${mode}`);
    checkEverythingSession(t, records, seen, 'stdio');
  });
}

t.test('sync: SDK client -> vigil mcp wrap -> server-filesystem: read and denied write', async (t) => {
  const transport = new StdioClientTransport({
    command: process.execPath,
    args: [...wrapArgs('sync', path.join(dir, 'spool-fs')), process.execPath, filesystemEntry, fsroot],
    stderr: 'pipe',
  });
  const client = new Client({ name: 'e2e-fs', version: '0' });
  await client.connect(transport);
  const readArgs = { path: path.join(fsroot, 'note.txt') };
  const read = await client.callTool({ name: 'read_text_file', arguments: readArgs });
  t.match(JSON.stringify(read.content), /audited content/);
  const writeArgs = { path: path.join(os.tmpdir(), 'vigil-denied-write.txt'), content: 'x' };
  const write = await client.callTool({ name: 'write_file', arguments: writeArgs });
  t.equal(write.isError, true);
  t.match(JSON.stringify(write.content), /Access denied/);
  await client.close();
  await t.rejects(fs.stat(writeArgs.path), 'the denied write wrote nothing');

  const reads = await searchUntil(log, reg.policyFile, { tool: 'read_text_file' }, (f) => f.length > 0);
  const session = reads[0]!.record['session'] as string;
  const records = await sessionRecords(session);
  for (const [tool, args, result] of [
    ['read_text_file', readArgs, read],
    ['write_file', writeArgs, write],
  ] as const) {
    const request = records.find(
      (r) => r['gen_ai.tool.name'] === tool && r['direction'] === 'client_to_server',
    )!;
    t.same(params(request)['arguments'], args, `${tool}: the arguments the client sent`);
    const answer = records.find((r) => r['direction'] === 'server_to_client' && corr(r) === corr(request))!;
    t.same(msg(answer)['result'], result, `${tool}: the result the client got`);
  }
  t.match(
    records.find((r) => r['gen_ai.tool.name'] === 'write_file' && r['direction'] === 'server_to_client'),
    { 'error.type': 'tool_error' },
  );
});

t.test(
  'a message too large for one entry travels as its sealed bytes; the log serves them back',
  async (t) => {
    const transport = new StdioClientTransport({
      command: process.execPath,
      args: [...wrapArgs('sync', path.join(dir, 'spool-blob')), process.execPath, everythingEntry, 'stdio'],
      stderr: 'pipe',
    });
    const client = new Client({ name: 'e2e-blob', version: '0' });
    await client.connect(transport);
    const big = `big-${'x'.repeat(120_000)}`;
    const echo = await client.callTool({ name: 'echo', arguments: { message: big } });
    await client.close();
    t.same(echo.content, [{ type: 'text', text: `Echo: ${big}` }]);

    // The entry as the tree holds it: no message, only the commitment to its sealed bytes.
    const isLarge = (x: Found): boolean =>
      x.entry.record['message'] === undefined && isSealedRef(x.entry.record['wire']);
    const found = await searchUntil(log, reg.policyFile, { tool: 'echo' }, (f) => f.some(isLarge));
    const request = found.find(isLarge)!;
    const session = request.record['session'] as string;
    const records = await searchUntil(log, reg.policyFile, { session }, (f) =>
      f.some((x) => x.record['kind'] === 'mcp.process.exit'),
    );
    const reader = { authorization: `Bearer ${await log.readerToken()}` };
    const opened = async (x: Found): Promise<Rec> => {
      const ref = x.entry.record['wire'] as SealedRef;
      t.equal(
        (await fetch(`${log.url}v1/blobs/${ref.$sealed.sha256}`)).status,
        404,
        'S is not a public blob',
      );
      t.equal(
        (await fetch(`${log.url}v1/sealed/${ref.$sealed.sha256}`)).status,
        401,
        'nor served without a reader token',
      );
      const res = await fetch(`${log.url}v1/sealed/${ref.$sealed.sha256}`, { headers: reader });
      if (!res.ok) throw new Error(`sealed ${ref.$sealed.sha256}: HTTP ${res.status}`);
      const bytes = openSealedBytes(ref, new Uint8Array(await res.arrayBuffer()));
      t.equal(x.record['wire'], Buffer.from(bytes).toString('base64'), 'search opened the same bytes');
      return JSON.parse(new TextDecoder().decode(bytes)) as Rec;
    };
    const echoes = records.filter((x) => x.record['gen_ai.tool.name'] === 'echo');
    t.equal(echoes.length, 2, 'request and answer recorded');
    for (const x of echoes) {
      t.ok(JSON.stringify(x.entry.record).length < 60_000, 'the entry itself stays small');
      t.ok(isLarge(x), 'the content is in the sealed bytes beside the record');
    }
    const [req, answer] = [await opened(echoes[0]!), await opened(echoes[1]!)];
    t.same(
      (req!['params'] as Rec)['arguments'],
      { message: big },
      'the request rebuilt from its sealed bytes',
    );
    t.same(answer!['result'], echo, 'the answer rebuilt from its sealed bytes is what the client got');
  },
);

/** Runs a command with fixed stdin; resolves with its stdout bytes. */
function run(cmd: string, args: string[], input: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'ignore'] });
    const out: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.on('error', reject);
    child.on('close', () => resolve(Buffer.concat(out)));
    child.stdin.end(input);
  });
}

t.test('byte for byte: server-filesystem answers the same with and without the wrapper', async (t) => {
  const lines = [
    {
      jsonrpc: '2.0',
      id: 0,
      method: 'initialize',
      params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'raw', version: '0' } },
    },
    { jsonrpc: '2.0', method: 'notifications/initialized' },
    { jsonrpc: '2.0', id: 1, method: 'tools/list' },
    {
      jsonrpc: '2.0',
      id: 2,
      method: 'tools/call',
      params: { name: 'read_text_file', arguments: { path: path.join(fsroot, 'note.txt') } },
    },
    {
      jsonrpc: '2.0',
      id: '3',
      method: 'tools/call',
      params: { name: 'write_file', arguments: { path: '/etc/vigil-denied', content: 'x' } },
    },
  ];
  const input = lines.map((l) => JSON.stringify(l)).join('\n') + '\n';
  const direct = await run(process.execPath, [filesystemEntry, fsroot], input);
  const wrapped = await run(
    process.execPath,
    [...wrapArgs('sync', path.join(dir, 'spool-bytes')), process.execPath, filesystemEntry, fsroot],
    input,
  );
  t.ok(direct.length > 0);
  t.equal(wrapped.toString('hex'), direct.toString('hex'), 'identical bytes');
  t.match(direct.toString(), /audited content/);
  t.match(direct.toString(), /Access denied/);
});

/**
 * Resolves once no live process holds a spool slot under `spool` (a LOCK naming a pid that is gone or
 * a zombie), or throws after `timeoutMs`. A wrapper still running (giving its shipper a few seconds to
 * reach the log) holds its slot, and the next run would ship only a slot of its own.
 */
async function waitForSpoolRelease(spool: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const holders = async (): Promise<number[]> => {
    const files = (await fs.readdir(spool, { recursive: true })).filter((f) => f.endsWith('LOCK'));
    const live: number[] = [];
    for (const f of files) {
      const pid = Number((await fs.readFile(path.join(spool, f), 'utf8').catch(() => '')).trim());
      if (!Number.isInteger(pid) || pid <= 0) continue;
      const stat = await fs.readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined);
      const state = stat?.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
      if (state !== undefined && state !== 'Z' && state !== 'X') live.push(pid);
    }
    return live;
  };
  for (let live = await holders(); live.length > 0; live = await holders()) {
    if (Date.now() > deadline) throw new Error(`spool ${spool} still held by ${live.join(', ')}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

t.test('log down: spool mode serves and ships later; sync mode refuses and runs nothing', async (t) => {
  t.equal(await log.kill('SIGTERM'), 0, 'log stopped');
  const spool = path.join(dir, 'spool-outage');
  const offline = async (mode: string, message: string): Promise<unknown> => {
    const transport = new StdioClientTransport({
      command: process.execPath,
      args: [...wrapArgs(mode, spool, 1000), process.execPath, everythingEntry, 'stdio'],
      stderr: 'pipe',
    });
    const client = new Client({ name: `e2e-outage-${mode}`, version: '0' });
    try {
      await client.connect(transport);
      return await client.callTool({ name: 'echo', arguments: { message } });
    } catch (err) {
      return err;
    } finally {
      await client.close();
    }
  };
  const spooled = await offline('spool', 'while the log is down');
  t.match(spooled, { content: [{ text: 'Echo: while the log is down' }] }, 'spool mode answers');
  // Sync mode: even `initialize` is a request, so the session never starts.
  const refused = await offline('sync', 'must not run');
  t.match(refused, { message: /audit log unavailable/ }, 'sync mode answers with a JSON-RPC error');

  await waitForSpoolRelease(spool, 30_000);
  await log.restart();
  // The next run on the same spool ships what the outage left, then its own records.
  const transport = new StdioClientTransport({
    command: process.execPath,
    args: [...wrapArgs('spool', spool), process.execPath, everythingEntry, 'stdio'],
    stderr: 'pipe',
  });
  const client = new Client({ name: 'e2e-after', version: '0' });
  let wrapperStderr = '';
  transport.stderr?.on('data', (b: Buffer) => (wrapperStderr += b.toString()));
  await client.connect(transport);
  await client.callTool({ name: 'echo', arguments: { message: 'after the outage' } });
  // The wrapper ships in the background while it runs; on exit it gives shipping only a few seconds
  // (what is left stays in the spool for the next run). Wait while it runs, then close.
  const echoes = await searchUntil(
    log,
    reg.policyFile,
    { tool: 'echo' },
    (f) =>
      f.some((x) => JSON.stringify(x.record).includes('after the outage')) &&
      f.some((x) => JSON.stringify(x.record).includes('while the log is down')),
  )
    .catch(async (err: unknown) => {
      // What a reviewer of a failed run needs: the spool left behind and what the wrapper said.
      const files = await fs.readdir(spool, { recursive: true }).catch(() => []);
      t.comment(`spool ${spool}: ${files.join(', ')}`);
      t.comment(`wrapper stderr: ${wrapperStderr.slice(-4000)}`);
      throw err;
    })
    .finally(() => client.close());
  const outageSession = echoes.find((x) => JSON.stringify(x.record).includes('while the log is down'))!
    .record['session'] as string;
  const outage = await sessionRecords(outageSession);
  t.ok(
    outage.some(
      (r) =>
        r['direction'] === 'server_to_client' &&
        JSON.stringify(r['message']).includes('Echo: while the log is down'),
    ),
    'the answer given during the outage reached the log',
  );
  t.notOk(
    echoes.some((x) => JSON.stringify(x.record).includes('must not run')),
    'the refused session never sent its call',
  );
  // The refused initialize: recorded (spooled, shipped now) with only the wrapper's refusal as answer.
  const inits = await searchLog(log, reg.policyFile, { method: 'initialize' });
  const refusedSessions: string[] = [];
  for (const session of new Set(inits.map((x) => x.record['session'] as string))) {
    const records = await sessionRecords(session);
    const answers = records.filter(
      (r) => r['kind'] === 'mcp.message' && r['direction'] === 'server_to_client',
    );
    if (answers.length > 0 && answers.every((r) => r['synthesized'] === true)) refusedSessions.push(session);
  }
  t.equal(refusedSessions.length, 1, 'one session was refused, and the server answered nothing in it');
});
