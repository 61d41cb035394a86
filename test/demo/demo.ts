// `npm run demo`: one command that starts a log and two witnesses, puts `vigil mcp wrap` in front of a
// real MCP server (server-everything), makes a few tool calls through the MCP SDK client, and prints
// the audit trail read back from the log, every receipt verified against the log key and both
// witnesses, and the witnessed checkpoint. Every process and temp directory is removed at the end,
// also on failure or Ctrl-C. Exit 0 only when every record verified.
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import {
  formatEntry,
  LogClient,
  openSealed,
  replaceSealed,
  parsePolicy,
  verifyCheckpoint,
  verifyReceipt,
  type Entry,
} from '@vigil/client';
import { runNode, serverMain, startLog, until, vigilMain, type LogProcess } from '../helpers/log.js';
import { everythingEntry, registerEmitter, spawnNode } from '../helpers/mcp.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const witnessMain = path.join(root, 'witness/dist/src/main.js');
const ORIGIN = 'demo.vigil.local/log';
const out = (line = ''): void => void process.stdout.write(`${line}\n`);
const clip = (s: string, n: number): string => (s.length <= n ? s : `${s.slice(0, n - 1)}…`);

const cleanups: (() => Promise<unknown>)[] = [];
async function cleanup(): Promise<void> {
  for (const f of cleanups.splice(0).reverse()) await f().catch(() => undefined);
}
process.once('SIGINT', () => void cleanup().finally(() => process.exit(130)));

async function must(script: string, args: string[]): Promise<string> {
  const r = await runNode(script, args);
  if (r.code !== 0) throw new Error(`${path.basename(script)} ${args.join(' ')}: ${r.stderr}${r.stdout}`);
  return r.stdout.trim();
}

/** Starts a pull-mode witness for the log; returns its name, cosigner vkey and process. */
async function startWitness(dir: string, n: number, log: LogProcess) {
  const name = `demo.vigil.local/w${n}`;
  const dataDir = path.join(dir, `w${n}`);
  const vkey = (await must(witnessMain, ['init', '--name', name, '--data-dir', dataDir])).split('\n').pop()!;
  await must(witnessMain, [
    'log',
    'add',
    log.origin,
    log.vkey,
    '--url',
    log.url,
    '--pull-interval',
    '200ms',
    '--data-dir',
    dataDir,
  ]);
  const proc = spawnNode(witnessMain, ['serve', '--port', '0', '--data-dir', dataDir]);
  cleanups.push(() => proc.stop());
  await proc.waitFor(/listening at (https?:\/\/\S+)/);
  await must(serverMain, ['witness', 'add', name, vkey, '--data-dir', log.dataDir]);
  return { name, vkey, proc };
}

type Rec = Record<string, unknown>;

/** One line of the audit trail: what the record says, in a few words. */
function describe(r: Rec): [string, string, string] {
  const kind = String(r['kind']);
  const m = (r['message'] ?? {}) as Rec;
  const arrow =
    r['direction'] === 'client_to_server' ? 'c→s' : r['direction'] === 'server_to_client' ? 's→c' : '';
  if (kind === 'mcp.message') {
    const method = String(r['mcp.method.name'] ?? '');
    const tool = r['gen_ai.tool.name'] !== undefined ? ` ${String(r['gen_ai.tool.name'])}` : '';
    let detail = '';
    const params = m['params'] as Rec | undefined;
    const result = m['result'] as Rec | undefined;
    if (r['messageType'] === 'request' && params?.['arguments'] !== undefined)
      detail = JSON.stringify(params['arguments']);
    else if (method === 'initialize' && params?.['clientInfo'] !== undefined)
      detail = `client ${String((params['clientInfo'] as Rec)['name'])}`;
    else if (result?.['content'] !== undefined)
      detail = ((result['content'] as Rec[])[0]?.['text'] as string | undefined) ?? '';
    else if (result?.['tools'] !== undefined) detail = `${(result['tools'] as unknown[]).length} tools`;
    else if (result?.['protocolVersion'] !== undefined)
      detail = `protocol ${String(result['protocolVersion'])}`;
    if (r['error.type'] !== undefined) detail = `error ${String(r['error.type'])}: ${detail}`;
    return [
      arrow,
      `${r['messageType'] === 'request' || r['messageType'] === 'notification' ? '' : '↳ '}${method}${tool}`,
      detail,
    ];
  }
  if (kind === 'mcp.process.start') return ['', kind, `pid ${String(r['pid'])}`];
  if (kind === 'mcp.process.exit') return ['', kind, `code ${String(r['code'])}`];
  if (kind === 'mcp.stderr') return ['', kind, String(r['line'])];
  if (kind === 'stream.open') return ['', kind, `${String(r['capture'])} mode ${String(r['mode'])}`];
  return ['', kind, ''];
}

async function main(): Promise<number> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'vigil-demo-'));
  cleanups.push(() => fs.rm(dir, { recursive: true, force: true }));

  const log = await startLog({ origin: ORIGIN, fromTemplate: false });
  cleanups.push(() => log.stop());
  const w1 = await startWitness(dir, 1, log);
  const w2 = await startWitness(dir, 2, log);
  await must(serverMain, ['quorum', '2', '--data-dir', log.dataDir]);
  const emitter = await registerEmitter(log, dir, 'demo.vigil.local/agent-host');
  const policyText = [
    `log ${log.vkey}`,
    `witness w1 ${w1.vkey}`,
    `witness w2 ${w2.vkey}`,
    'group both all w1 w2',
    'quorum both',
    '',
  ].join('\n');
  const policy = parsePolicy(policyText);

  out('Vigil demo: an MCP server behind `vigil mcp wrap`, a transparency log, two witnesses');
  out(`  log       ${log.url}  (origin ${log.origin})`);
  out(`  witnesses ${w1.name}, ${w2.name}  (pull mode; policy: log key + both cosignatures)`);
  out(`  wrapped   server-everything (stdio), mode sync: a call runs only once the log holds it`);
  out();

  const client = new Client({ name: 'demo-agent', version: '1.0.0' });
  const transport = new StdioClientTransport({
    command: process.execPath,
    args: [
      vigilMain,
      'mcp',
      'wrap',
      '--log',
      log.url,
      '--key',
      emitter.keyFile,
      '--policy',
      emitter.policyFile,
      '--mode',
      'sync',
      '--spool-dir',
      path.join(dir, 'spool'),
      '--',
      process.execPath,
      everythingEntry,
      'stdio',
    ],
    stderr: 'pipe',
  });
  cleanups.push(() => client.close());
  out('The agent (MCP SDK client) calls:');
  await client.connect(transport);
  const tools = await client.listTools();
  out(`  tools/list                            → ${tools.tools.length} tools`);
  for (const [name, args] of [
    ['echo', { message: 'hello, auditor' }],
    ['get-sum', { a: 2, b: 40 }],
    ['get-sum', { a: 'two', b: 40 }],
  ] as const) {
    const r = await client.callTool({ name, arguments: args });
    const text = ((r.content as Rec[])[0]?.['text'] as string | undefined) ?? '';
    out(
      `  ${`${name} ${JSON.stringify(args)}`.padEnd(37)} → ${r.isError === true ? 'tool error: ' : ''}${clip(text, 40)}`,
    );
  }
  await client.close();

  // The wrapper ships its last records (process exit, stream.close) as it exits; then both witnesses
  // cosign the checkpoint that holds them.
  // Search is for readers of the log (DESIGN.md "Readers and sealed payloads").
  const logClient = new LogClient(log.url, { readerToken: await log.addReader('demo') });
  let records: { index: bigint; entry: Entry }[] = [];
  await until('the wrapper stream to be closed in the log', async () => {
    const { results } = await logClient.search({ emitter: emitter.name, limit: 1000 });
    records = results.map((x) => ({ index: x.index, entry: x.entry as unknown as Entry }));
    return records.some((x) => x.entry.record['kind'] === 'stream.close');
  });
  records.sort((a, b) => (a.index < b.index ? -1 : 1));
  // Arguments, results and stderr are sealed in the records: one more search, opened, reads them (one
  // access.read record in the log), each value checked against its commitment by openSealed.
  const { sealed } = await logClient.search({ emitter: emitter.name, limit: 1000 }, { open: true });
  const opened = (record: Rec): Rec =>
    replaceSealed(record, (ref) => {
      const bytes = sealed?.get(ref.$sealed.sha256);
      return bytes === undefined ? undefined : { value: openSealed(ref, bytes) };
    }) as Rec;
  const last = records[records.length - 1]!.index;
  let witnessed = '';
  await until(
    'both witnesses to cosign',
    async () => {
      const res = await fetch(`${log.url}checkpoint/witnessed`);
      if (!res.ok) return false;
      witnessed = await res.text();
      return BigInt(witnessed.split('\n')[1]!) > last;
    },
    30_000,
  );

  const stream = String(records[0]!.entry.record['stream']);
  out();
  out(`Audit trail read back from the log: emitter ${emitter.name}, stream ${stream.slice(0, 8)}…`);
  out(`  ${'index'.padEnd(5)} ${'dir'.padEnd(3)} ${'record'.padEnd(34)} ${'detail'.padEnd(30)} receipt`);
  let verified = 0;
  for (const { index, entry } of records) {
    const receipt = await (await fetch(`${log.url}v1/receipt/${index}?witnessed=1`)).text();
    let status = 'ok (log + w1 + w2)';
    try {
      const v = verifyReceipt(receipt, formatEntry(entry), policy);
      if (v.index !== index) throw new Error(`receipt is for index ${v.index}`);
      verified++;
    } catch (err) {
      status = `FAILED: ${(err as Error).message}`;
    }
    const [dirn, what, detail] = describe(opened(entry.record));
    out(
      `  ${String(index).padEnd(5)} ${dirn.padEnd(3)} ${clip(what, 34).padEnd(34)} ${clip(detail, 30).padEnd(30)} ${status}`,
    );
  }
  const checked = verifyCheckpoint(witnessed, policy);
  out();
  out(
    `Witnessed checkpoint (verified: log signature, cosigned by ${[...checked.cosigners.keys()].join(' and ')}):`,
  );
  for (const line of witnessed.trimEnd().split('\n')) out(`  ${clip(line, 96)}`);
  out();
  const ok = verified === records.length;
  out(
    ok
      ? `All ${records.length} records verified: each is in the tree both witnesses cosigned.`
      : `${records.length - verified} of ${records.length} records FAILED verification.`,
  );
  return ok ? 0 : 1;
}

let status = 1;
try {
  status = await main();
} catch (err) {
  process.stderr.write(`demo failed: ${(err as Error).stack ?? String(err)}\n`);
} finally {
  await cleanup();
}
process.exit(status);
