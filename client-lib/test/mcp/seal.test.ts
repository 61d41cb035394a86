// What capture seals at each level (mcp/seal.ts; contract "Capture"): with a fixed salt the
// commitments are reproducible, S opens (openSealed) to the original values, and under payload/all a
// marker planted in the content appears in no record (only in S beside it).
import t from 'tap';
import { auditTransport } from '../../src/mcp/audit-transport.js';
import { createCapture, type MessageContext } from '../../src/mcp/capture.js';
import { MemorySink, type SunkRecord } from '../../src/mcp/memory-sink.js';
import { isBlobRef } from '../../src/mcp/message.js';
import { isSealLevel, RecordSealer, type SealLevel } from '../../src/mcp/seal.js';
import type { JsonObject, JsonValue } from '../../src/mcp/types.js';
import { canonicalJson } from '../../src/record.js';
import { isSealedRef, openSealed, sealValue, type SealedRef } from '../../src/sealed.js';
import { openRecord } from './helpers/opened.js';

const salt = new Uint8Array(16).fill(5);
const MARK = 'zq-marker-7f3a';

const call = {
  jsonrpc: '2.0',
  id: 4,
  method: 'tools/call',
  params: { name: 'read_file', arguments: { path: `/home/${MARK}/notes.txt` } },
};
const answer = { jsonrpc: '2.0', id: 4, result: { content: [{ type: 'text', text: `hello ${MARK}` }] } };
const failure = { jsonrpc: '2.0', id: 5, error: { code: -32602, message: `no such file ${MARK}` } };

const context: MessageContext = {
  session: 's1',
  principal: { type: 'jwt', sub: `user-${MARK}`, clientId: 'app', tokenSha256: 'ab'.repeat(32) },
  http: {
    method: 'POST',
    path: '/mcp',
    status: 200,
    contentType: 'application/json',
    mcpName: 'read_file',
    origin: `https://${MARK}.example`,
    traceparent: `00-${MARK}-01`,
    authorizationSha256: 'cd'.repeat(32),
  },
};

/** Records of one exchange (request, answer, error answer, stderr, process start) at a level. */
async function exchange(seal: SealLevel | undefined, fieldsBudget?: number): Promise<MemorySink> {
  const sink = new MemorySink();
  const capture = createCapture({
    sink,
    transport: 'streamable-http',
    mode: 'spool',
    salt: () => salt,
    ...(seal === undefined ? {} : { seal }),
    ...(fieldsBudget === undefined ? {} : { fieldsBudget }),
  });
  await capture.observeValue('client_to_server', call, context).gate;
  await capture.observeValue('server_to_client', answer, context).gate;
  await capture.observeValue('client_to_server', { jsonrpc: '2.0', id: 5, method: 'tools/call' }, context)
    .gate;
  await capture.observeValue('server_to_client', failure, context).gate;
  await capture.observeText('client_to_server', `not json ${MARK}`, context).gate;
  await capture.stderrLine('s1', `stderr ${MARK}`, new TextEncoder().encode(`stderr ${MARK}`));
  await capture.event({
    kind: 'mcp.process.start',
    session: 's1',
    command: `/opt/${MARK}/server`,
    args: [`--token=${MARK}`],
    cwd: `/srv/${MARK}`,
    envNames: [`${MARK.toUpperCase()}_KEY`, 'PATH'],
    pid: 42,
  });
  await capture.close('end');
  return sink;
}

/** Every `$sealed` commitment in a value. */
function sealedRefs(value: JsonValue, out: SealedRef[] = []): SealedRef[] {
  if (isSealedRef(value)) out.push(value);
  else if (Array.isArray(value)) for (const v of value) sealedRefs(v, out);
  else if (typeof value === 'object' && value !== null)
    for (const v of Object.values(value)) sealedRefs(v, out);
  return out;
}

/** Every `$blob` reference in a value. */
function blobRefs(value: JsonValue, out: string[] = []): string[] {
  if (isBlobRef(value)) out.push(value.$blob.sha256);
  else if (Array.isArray(value)) for (const v of value) blobRefs(v, out);
  else if (typeof value === 'object' && value !== null)
    for (const v of Object.values(value)) blobRefs(v, out);
  return out;
}

/** Runs `use` on a fresh payload capture, then `check` on what it recorded. */
async function capture0(
  use: (capture: ReturnType<typeof createCapture>) => Promise<void>,
  check: (records: SunkRecord[]) => void,
): Promise<void> {
  const sink = new MemorySink();
  await use(createCapture({ sink, transport: 'streamable-http', mode: 'spool' }));
  check(sink.records);
}

const messages = (sink: MemorySink): SunkRecord[] =>
  sink.records.filter((r) => r.fields['kind'] === 'mcp.message');

t.test('the seal levels are exactly none, payload and all', async (t) => {
  t.same(['none', 'payload', 'all', 'Payload', '', undefined, 1].map(isSealLevel), [
    true,
    true,
    true,
    false,
    false,
    false,
    false,
  ]);
  t.throws(() => new RecordSealer('some' as SealLevel), /seal must be none, payload or all, not some/);
  t.throws(
    () => createCapture({ sink: new MemorySink(), transport: 'sdk', seal: 'some' as SealLevel }),
    /seal must be none, payload or all/,
  );
});

t.test('payload (the default): params are one sealed value whose S opens to them', async (t) => {
  const sink = await exchange(undefined);
  const request = messages(sink)[0]!;
  const message = request.fields['message'] as JsonObject;
  t.same(Object.keys(message).sort(), ['id', 'jsonrpc', 'method', 'params']);
  t.same([message['jsonrpc'], message['id'], message['method']], ['2.0', 4, 'tools/call'], 'kept in clear');
  const ref = message['params'];
  if (!isSealedRef(ref)) throw new Error('params are not sealed');
  t.same(ref, sealValue(call.params, salt).ref, 'the commitment to the params with this salt');
  const bytes = request.options.blobs?.[ref.$sealed.sha256];
  t.ok(bytes, 'S travels beside the record, keyed by its hash');
  t.same(openSealed(ref, bytes!), call.params, 'S opens to the params');
  t.match(request.fields, {
    'mcp.method.name': 'tools/call',
    'gen_ai.tool.name': 'read_file',
    'jsonrpc.request.id': '4',
    correlation: { requester: 'client', id: 4 },
    messageType: 'request',
    direction: 'client_to_server',
  });

  const [, result, , error, raw] = messages(sink);
  t.ok(isSealedRef((result!.fields['message'] as JsonObject)['result']), 'result sealed');
  t.ok(isSealedRef((error!.fields['message'] as JsonObject)['error']), 'error sealed');
  t.equal(error!.fields['error.type'], '-32602', 'the error code stays a clear fact');
  t.ok(isSealedRef(raw!.fields['raw']), 'a non-JSON line is sealed');
  t.same(openRecord(result!)['message'], answer);
  t.same(openRecord(error!)['message'], failure);
});

t.test('payload: principals keep only their type, HTTP facts with content are sealed', async (t) => {
  const sink = await exchange('payload');
  for (const r of messages(sink)) {
    const principal = r.fields['principal'] as JsonObject;
    t.same(Object.keys(principal).sort(), ['claims', 'type']);
    t.equal(principal['type'], 'jwt');
    t.ok(isSealedRef(principal['claims']));
    const http = r.fields['http'] as JsonObject;
    t.match(http, { method: 'POST', path: '/mcp', status: 200, contentType: 'application/json' });
    t.equal(http['mcpName'], 'read_file', 'the tool name header stays clear under payload');
    for (const k of ['origin', 'traceparent', 'authorizationSha256']) t.ok(isSealedRef(http[k]), k);
  }
  const opened = openRecord(messages(sink)[0]!);
  t.same(opened['principal'], context.principal as unknown as JsonObject, 'the claims open');
  t.same(opened['http'], context.http as unknown as JsonObject, 'the HTTP facts open');

  // A record without a message (the proxy's bodiless requests) seals the same way.
  await capture0(
    async (capture) => {
      await capture.event({
        kind: 'mcp.http.request',
        session: 's1',
        principal: context.principal as unknown as JsonObject,
        http: context.http as unknown as JsonObject,
      });
    },
    (records) => {
      const f = records[0]!.fields;
      t.same(Object.keys(f['principal'] as JsonObject).sort(), ['claims', 'type']);
      t.ok(isSealedRef((f['http'] as JsonObject)['origin']));
      t.notOk(canonicalJson(f).includes(MARK));
      t.same(openRecord(records[0]!)['principal'], context.principal as unknown as JsonObject);
    },
  );

  // An optional fact left undefined is simply absent (nothing to seal, and RFC 8785 has no undefined).
  await capture0(
    async (capture) => {
      const http = { method: 'GET', path: '/mcp', origin: undefined } as unknown as JsonObject;
      await capture.event({ kind: 'mcp.http.request', session: 's1', http });
    },
    (records) => t.same(records[0]!.fields['http'], { method: 'GET', path: '/mcp' }),
  );

  const anonymous = new MemorySink();
  const capture = createCapture({ sink: anonymous, transport: 'stdio', mode: 'spool' });
  await capture.observeValue('client_to_server', call, { session: 'a', principal: { type: 'anonymous' } })
    .gate;
  t.same(anonymous.records[0]!.fields['principal'], { type: 'anonymous' }, 'nothing to seal');
});

t.test('payload: the marker is in no record, only in the S beside them', async (t) => {
  const sink = await exchange('payload');
  for (const r of sink.records) {
    t.notOk(canonicalJson(r.fields).includes(MARK), `${String(r.fields['kind'])}: no marker in the record`);
    for (const hex of blobRefs(r.fields)) {
      const bytes = r.options.blobs?.[hex];
      t.notOk(new TextDecoder().decode(bytes).includes(MARK), 'nor in a public blob');
    }
    // Every S beside a record belongs to a commitment in it and opens.
    for (const ref of sealedRefs(r.fields)) {
      const bytes = r.options.blobs?.[ref.$sealed.sha256];
      if (bytes === undefined) throw new Error('a sealed value without its S');
      t.doesNotThrow(() => openSealed(ref, bytes));
    }
  }
  const everyS = sink.records.flatMap((r) => Object.values(r.options.blobs ?? {}));
  const opened = everyS.map((b) => new TextDecoder().decode(b)).join('\n');
  for (const where of [
    'home/',
    'hello ',
    'no such file ',
    'not json ',
    'stderr ',
    '/opt/',
    '--token=',
    '/srv/',
  ]) {
    t.ok(opened.includes(where + MARK), `S holds ${where}`);
  }
  const start = sink.ofKind('mcp.process.start')[0]!;
  for (const k of ['command', 'args', 'cwd', 'envNames']) t.ok(isSealedRef(start[k]), `process ${k} sealed`);
  t.equal(start['pid'], 42, 'the pid stays clear');
  t.ok(isSealedRef(sink.ofKind('mcp.stderr')[0]!['line']), 'the stderr line is sealed');
});

t.test('payload: content is sealed before it could move to a public blob', async (t) => {
  // A record a little over the fields budget: under none its params move to a $blob (public).
  const bigWith = (text: string): JsonObject => ({
    ...call,
    params: { name: 'read_file', arguments: { text } },
  });
  // The message itself fits the budget (4,000 of 4,096 bytes), its record does not.
  const big = bigWith(`${MARK} `.padEnd(4000 - JSON.stringify(bigWith('')).length, 'x'));
  t.equal(JSON.stringify(big).length, 4000);
  const run = async (seal: SealLevel): Promise<MemorySink> => {
    const sink = new MemorySink();
    const capture = createCapture({ sink, transport: 'stdio', mode: 'spool', fieldsBudget: 4096, seal });
    await capture.observeValue('client_to_server', big, { session: 's' }).gate;
    return sink;
  };
  const clear = (await run('none')).records[0]!;
  const moved = blobRefs(clear.fields);
  t.equal(moved.length, 1, 'none: the params went to a blob');
  t.ok(new TextDecoder().decode(clear.options.blobs![moved[0]!]).includes(MARK));
  const sealed = (await run('payload')).records[0]!;
  t.same(blobRefs(sealed.fields), [], 'payload: no blob at all');
  t.notOk(canonicalJson(sealed.fields).includes(MARK));
  t.same(openRecord(sealed)['message'], big, 'the sealed params open whole');
});

t.test('all: tool, prompt and resource names are sealed too', async (t) => {
  const sink = await exchange('all');
  for (const r of sink.records) t.notOk(canonicalJson(r.fields).includes('read_file'), 'no tool name');
  const [request, result] = messages(sink);
  t.ok(isSealedRef(request!.fields['gen_ai.tool.name']), 'request');
  t.ok(isSealedRef(result!.fields['gen_ai.tool.name']), 'its answer');
  t.ok(isSealedRef((request!.fields['http'] as JsonObject)['mcpName']), 'the Mcp-Name header');
  t.equal(request!.fields['mcp.method.name'], 'tools/call', 'the method stays clear');
  t.equal((request!.fields['message'] as JsonObject)['method'], 'tools/call', 'also inside message');
  t.equal(openRecord(request!)['gen_ai.tool.name'], 'read_file');

  const other = new MemorySink();
  const capture = createCapture({ sink: other, transport: 'stdio', mode: 'spool', seal: 'all' });
  const ctx = { session: 'p' };
  const prompt = { jsonrpc: '2.0', id: 1, method: 'prompts/get', params: { name: 'summarise' } };
  const resource = { jsonrpc: '2.0', id: 2, method: 'resources/read', params: { uri: 'file:///etc/x' } };
  await capture.observeValue('client_to_server', prompt, ctx).gate;
  await capture.observeValue('client_to_server', resource, ctx).gate;
  await capture.observeValue('client_to_server', call, ctx).gate;
  await capture.close('end');
  const [p, res] = other.ofKind('mcp.message');
  t.ok(isSealedRef(p!['gen_ai.prompt.name']), 'prompt name');
  t.ok(isSealedRef(res!['mcp.resource.uri']), 'resource uri');
  const unanswered = other.records.filter((r) => r.fields['kind'] === 'mcp.unanswered');
  t.equal(unanswered.length, 3);
  const tool = unanswered.find((r) => r.fields['mcp.method.name'] === 'tools/call')!;
  t.ok(isSealedRef(tool.fields['gen_ai.tool.name']), 'the unanswered call hides its tool');
  t.equal(openRecord(tool)['gen_ai.tool.name'], 'read_file');
  const text = other.records.map((r) => canonicalJson(r.fields)).join('\n');
  for (const name of ['summarise', 'file:///etc/x', 'read_file']) t.notOk(text.includes(name), name);
});

t.test('payload keeps tool, prompt and resource names clear (search works on them)', async (t) => {
  const sink = new MemorySink();
  const capture = createCapture({ sink, transport: 'stdio', mode: 'spool' });
  await capture.observeValue(
    'client_to_server',
    { jsonrpc: '2.0', id: 2, method: 'resources/read', params: { uri: 'file:///etc/x' } },
    { session: 's' },
  ).gate;
  await capture.close('end');
  t.equal(sink.ofKind('mcp.message')[0]!['mcp.resource.uri'], 'file:///etc/x');
  t.equal(sink.ofKind('mcp.unanswered')[0]!['mcp.method.name'], 'resources/read');
});

t.test('none: records keep their content in clear (only wire is sealed)', async (t) => {
  const sink = await exchange('none');
  const [request, result] = messages(sink);
  t.same(request!.fields['message'], call);
  t.same(result!.fields['message'], answer);
  t.same(request!.fields['principal'], context.principal as unknown as JsonObject);
  t.equal((request!.fields['http'] as JsonObject)['origin'], context.http!.origin);
  t.equal(sink.ofKind('mcp.stderr')[0]!['line'], `stderr ${MARK}`);
  for (const r of messages(sink)) {
    const sealed = sealedRefs(r.fields);
    t.same(sealed, [r.fields['wire']], 'the one sealed value is the wire commitment');
  }
});

t.test('auditTransport: seal per transport, over the capture level', async (t) => {
  const sink = new MemorySink();
  const capture = createCapture({ sink, transport: 'sdk', mode: 'spool' });
  const sent: unknown[] = [];
  const inner = {
    start: async (): Promise<void> => {},
    send: async (m: unknown): Promise<void> => {
      sent.push(m);
    },
    close: async (): Promise<void> => {},
  };
  const all = auditTransport({ ...inner }, { capture, side: 'client', seal: 'all', session: 'x' });
  const none = auditTransport({ ...inner }, { capture, side: 'client', seal: 'none', session: 'y' });
  const byDefault = auditTransport({ ...inner }, { capture, side: 'client', session: 'z' });
  await all.send(call);
  await none.send(call);
  await byDefault.send(call);
  t.equal(sent.length, 3, 'every message went through');
  const [a, n, d] = sink.ofKind('mcp.message');
  t.ok(isSealedRef(a!['gen_ai.tool.name']), 'all: tool name sealed');
  t.same(n!['message'], call, 'none: clear');
  t.ok(isSealedRef((d!['message'] as JsonObject)['params']), 'default: the capture level (payload)');
  t.equal(d!['gen_ai.tool.name'], 'read_file');
  t.throws(
    () => auditTransport({ ...inner }, { capture, side: 'client', seal: 'secret' as SealLevel }),
    /seal must be none, payload or all, not secret/,
  );
});
