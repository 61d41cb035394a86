// End to end: `vigil mcp wrap --receipts` (the compiled CLI, sync mode) in front of the reference
// server-everything, driven by the SDK client, against a real log. Each tool result the client gets
// carries the receipt of its request's record in `_meta["io.vigil/receipt"]`, which verifies offline
// (`verifyReceipt`, the log's policy) against that request's entry bytes as the log holds them and
// against no other entry; later results list the receipts of earlier answers' records in
// `_meta["io.vigil/receipts"]`. Without the flag nothing is added. The same through
// `vigil mcp proxy --receipts`: server-everything over Streamable HTTP (SSE answers, SDK v1 client) and
// the v2 SDK server in the 2026-07-28 era (v2 client).
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  Client as V2Client,
  StreamableHTTPClientTransport as V2HttpTransport,
} from '@modelcontextprotocol/client';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { formatEntry, parsePolicy, verifyReceipt } from '@vigil/client';
import tap from 'tap';
const t = tap;
import { startLog } from '../helpers/log.js';
import {
  everythingEntry,
  registerEmitter,
  searchUntil,
  spawnNode,
  startProxy,
  wrapArgv,
  startEverythingHttp,
  type Found,
} from '../helpers/mcp.js';

const v2Server = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'helpers', 'v2-server.js');

const log = await startLog();
t.teardown(() => log.stop());
const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'vigil-mcp-receipts-'));
t.teardown(() => fs.rm(dir, { recursive: true, force: true }));
const reg = await registerEmitter(log, dir, 'mcp-receipts');
const policy = parsePolicy(log.policy);

type Rec = Record<string, unknown>;
type Meta = Record<string, unknown>;

async function connect(receipts: boolean, spool: string): Promise<Client> {
  const transport = new StdioClientTransport({
    command: process.execPath,
    args: [
      ...wrapArgv(log, reg, path.join(dir, spool), ['--mode', 'sync', ...(receipts ? ['--receipts'] : [])]),
      process.execPath,
      everythingEntry,
      'stdio',
    ],
    stderr: 'pipe',
  });
  const client = new Client({ name: 'e2e-receipts', version: '0' });
  await client.connect(transport);
  return client;
}

/** The log's record of a client request with the given message, by its echoed text. */
const requestOf =
  (text: string) =>
  (f: Found): boolean => {
    const r = f.record as Rec;
    const args = (((r['message'] ?? {}) as Rec)['params'] ?? {}) as Rec;
    return (
      r['direction'] === 'client_to_server' &&
      r['messageType'] === 'request' &&
      ((args['arguments'] ?? {}) as Rec)['message'] === text
    );
  };

t.test('--receipts: each result carries its request record receipt, verifiable offline', async (t) => {
  const client = await connect(true, 'spool-receipts');
  t.teardown(() => client.close());
  const first = await client.callTool({ name: 'echo', arguments: { message: 'receipt one' } });
  const meta = (first._meta ?? {}) as Meta;
  const receipt = meta['io.vigil/receipt'];
  t.type(receipt, 'string', 'the result carries a receipt');
  t.same(
    first.content,
    [{ type: 'text', text: 'Echo: receipt one' }],
    'the result is otherwise the server’s',
  );

  const found = await searchUntil(log, reg.policyFile, { tool: 'echo' }, (f) =>
    f.some(requestOf('receipt one')),
  );
  const request = found.find(requestOf('receipt one')) as Found;
  const v = verifyReceipt(receipt as string, formatEntry(request.entry), policy);
  t.equal(v.index, request.index, 'the receipt proves the request record, at its index');
  const others = found.filter((f) => f.index !== request.index);
  t.ok(others.length > 0, 'there are other entries to try it on');
  for (const other of others) {
    t.throws(
      () => verifyReceipt(receipt as string, formatEntry(other.entry), policy),
      `not entry ${other.index}`,
    );
  }

  // The answer's record was emitted acknowledged too: its receipt reaches the client on a later
  // result (the one whose request the log acknowledged after it, normally the very next).
  let listed: { id: unknown; index: string; receipt: string }[] | undefined;
  for (let i = 0; i < 20 && listed === undefined; i++) {
    const next = await client.callTool({ name: 'echo', arguments: { message: `receipt next ${i}` } });
    const nextMeta = (next._meta ?? {}) as Meta;
    t.type(nextMeta['io.vigil/receipt'], 'string', `call ${i} has its own receipt`);
    t.not(nextMeta['io.vigil/receipt'], receipt, 'a different receipt');
    const list = nextMeta['io.vigil/receipts'] as
      { id: unknown; index: string; receipt: string }[] | undefined;
    listed = list?.filter((x) => x.id === 1);
  }
  t.equal(listed?.length, 1, 'the first answer (id 1) is listed once');
  const answerFound = await searchUntil(log, reg.policyFile, { tool: 'echo' }, (f) =>
    f.some((x) => String(x.index) === listed?.[0]?.index),
  );
  const answer = answerFound.find((x) => String(x.index) === listed?.[0]?.index) as Found;
  const answerRecord = answer.record as Rec;
  t.equal(answerRecord['direction'], 'server_to_client');
  t.equal(answerRecord['messageType'], 'result');
  t.same(answerRecord['correlation'], { requester: 'client', id: 1 });
  t.equal(
    verifyReceipt(listed?.[0]?.receipt as string, formatEntry(answer.entry), policy).index,
    answer.index,
    'the listed receipt proves the answer record',
  );
});

t.test('without --receipts the results carry no receipts', async (t) => {
  const client = await connect(false, 'spool-plain');
  t.teardown(() => client.close());
  for (let i = 0; i < 3; i++) {
    const r = await client.callTool({ name: 'echo', arguments: { message: `plain ${i}` } });
    const meta = (r._meta ?? {}) as Meta;
    t.equal(meta['io.vigil/receipt'], undefined);
    t.equal(meta['io.vigil/receipts'], undefined);
  }
});

/** Starts `vigil mcp proxy --receipts` in front of `upstream`; resolves with its URL. */
async function startReceiptsProxy(
  t: Pick<typeof tap, 'teardown'>,
  upstream: string,
  spool: string,
): Promise<string> {
  const proxy = await startProxy(log, reg, upstream, path.join(dir, spool), ['--mode', 'sync', '--receipts']);
  t.teardown(() => proxy.process.stop());
  return proxy.url;
}

/** Verifies `receipt` against the log's record of the tools/call request matching `isRequest`. */
async function checkRequestReceipt(
  t: Pick<typeof tap, 'equal' | 'type' | 'match'>,
  tool: string,
  receipt: unknown,
  isRequest: (r: Rec) => boolean,
  contentType: RegExp,
): Promise<void> {
  t.type(receipt, 'string', 'the result carries a receipt');
  const match = (f: Found): boolean =>
    f.record['direction'] === 'client_to_server' &&
    f.record['messageType'] === 'request' &&
    isRequest(f.record);
  const found = await searchUntil(log, reg.policyFile, { tool }, (f) => f.some(match));
  const request = found.find(match) as Found;
  t.equal(verifyReceipt(receipt as string, formatEntry(request.entry), policy).index, request.index);
  const answer = found.find(
    (f) =>
      f.record['direction'] === 'server_to_client' &&
      f.record['session'] === request.record['session'] &&
      JSON.stringify(f.record['correlation']) === JSON.stringify(request.record['correlation']),
  );
  t.match(((answer?.record['http'] ?? {}) as Rec)['contentType'], contentType, 'the answer came this way');
}

t.test('proxy --receipts: server-everything over Streamable HTTP, SDK v1 client', async (t) => {
  const upstream = await startEverythingHttp();
  t.teardown(() => upstream.process.stop());
  const url = await startReceiptsProxy(t, upstream.url, 'spool-proxy');
  const client = new Client({ name: 'e2e-receipts-http', version: '0' });
  await client.connect(new StreamableHTTPClientTransport(new URL(url)));
  t.teardown(() => client.close());
  const r = await client.callTool({ name: 'echo', arguments: { message: 'receipt over http' } });
  t.same(r.content, [{ type: 'text', text: 'Echo: receipt over http' }]);
  await checkRequestReceipt(
    t,
    'echo',
    ((r._meta ?? {}) as Meta)['io.vigil/receipt'],
    (x) =>
      ((((x['message'] ?? {}) as Rec)['params'] ?? {}) as Rec)['arguments'] !== undefined &&
      JSON.stringify(x['message']).includes('receipt over http'),
    /event-stream/,
  );
});

t.test('proxy --receipts: v2 server and client, 2026-07-28', async (t) => {
  const upstream = spawnNode(v2Server, ['http']);
  t.teardown(() => upstream.stop());
  const upstreamUrl = (await upstream.waitFor(/listening on (\S+)/))[1]!;
  const url = await startReceiptsProxy(t, upstreamUrl, 'spool-proxy-v2');
  const client = new V2Client(
    { name: 'e2e-receipts-v2', version: '0' },
    { versionNegotiation: { mode: { pin: '2026-07-28' } } },
  );
  await client.connect(new V2HttpTransport(new URL(url)));
  t.teardown(() => client.close());
  const r = await client.callTool({ name: 'add', arguments: { a: 40, b: 2 } });
  t.same(r.content, [{ type: 'text', text: '42' }]);
  await checkRequestReceipt(
    t,
    'add',
    ((r._meta ?? {}) as Meta)['io.vigil/receipt'],
    (x) => JSON.stringify(x['message']).includes('"a":40'),
    /^application\/json/,
  );
});
