import t from 'tap';
import { AUDIT_UNAVAILABLE_CODE, createCapture, refusalFor, refusalOf } from '../../src/mcp/capture.js';
import { sha256Hex } from '../../src/mcp/message.js';
import { MemorySink } from '../../src/mcp/memory-sink.js';
import { canonicalJson } from '../../src/record.js';
import type { JsonValue } from '../../src/mcp/types.js';

const ctx = { session: 's1' };

t.test('correlates by session, requesting side and typed id', async (t) => {
  const sink = new MemorySink();
  const capture = createCapture({ sink, transport: 'stdio', mode: 'spool' });
  capture.observeText(
    'client_to_server',
    '{"method":"tools/call","params":{"name":"echo","arguments":{}},"jsonrpc":"2.0","id":1}',
    ctx,
  );
  // Server-to-client request with the same id: its own id space.
  capture.observeText('server_to_client', '{"method":"roots/list","jsonrpc":"2.0","id":1}', ctx);
  // "1" (a string) does not answer the numeric 1.
  capture.observeText('server_to_client', '{"result":{},"jsonrpc":"2.0","id":"1"}', ctx);
  capture.observeText('client_to_server', '{"result":{"roots":[]},"jsonrpc":"2.0","id":1}', ctx);
  t.same(capture.openRequests('s1'), [{ requester: 'client', id: 1, method: 'tools/call' }]);
  capture.observeText(
    'server_to_client',
    '{"result":{"content":[],"isError":true},"jsonrpc":"2.0","id":1}',
    ctx,
  );
  t.same(capture.openRequests('s1'), []);
  const m = sink.ofKind('mcp.message');
  t.equal(m.length, 5);
  t.match(m[0], {
    direction: 'client_to_server',
    messageType: 'request',
    'mcp.method.name': 'tools/call',
    'gen_ai.tool.name': 'echo',
    'jsonrpc.request.id': '1',
    correlation: { requester: 'client', id: 1 },
    session: 's1',
    transport: 'stdio',
  });
  t.match(m[1], { correlation: { requester: 'server', id: 1 }, 'mcp.method.name': 'roots/list' });
  t.match(m[2], { correlation: { requester: 'client', id: '1' }, matched: false });
  t.match(m[3], {
    correlation: { requester: 'server', id: 1 },
    matched: true,
    'mcp.method.name': 'roots/list',
  });
  t.match(m[4], {
    matched: true,
    'mcp.method.name': 'tools/call',
    'gen_ai.tool.name': 'echo',
    'error.type': 'tool_error',
  });
  t.type(m[4]?.['rawSha256'], 'string');
});

t.test('unanswered and cancelled requests are recorded when the session ends', async (t) => {
  const sink = new MemorySink();
  const capture = createCapture({ sink, transport: 'stdio' });
  capture.observeText(
    'client_to_server',
    '{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"slow"}}',
    ctx,
  );
  capture.observeText('client_to_server', '{"jsonrpc":"2.0","id":"a","method":"ping"}', ctx);
  capture.observeText(
    'client_to_server',
    '{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":5}}',
    ctx,
  );
  await capture.endSession('s1', 'process_exit');
  const u = sink.ofKind('mcp.unanswered');
  t.same(
    u.map((f) => [f['reason'], f['correlation'], f['mcp.method.name']]),
    [
      ['cancelled', { requester: 'client', id: 5 }, 'tools/call'],
      ['process_exit', { requester: 'client', id: 'a' }, 'ping'],
    ],
  );
  t.equal(u[0]?.['gen_ai.tool.name'], 'slow');
});

t.test('raw lines: non-JSON and an empty batch keep their text', async (t) => {
  const sink = new MemorySink();
  const capture = createCapture({ sink, transport: 'stdio', mode: 'spool' });
  capture.observeText('server_to_client', 'hello there', ctx);
  capture.observeText('client_to_server', '[]', ctx);
  const m = sink.ofKind('mcp.message');
  t.match(m[0], { messageType: 'invalid', raw: 'hello there' });
  t.notOk('message' in (m[0] ?? {}));
  t.match(m[1], { messageType: 'batch', raw: '[]' });
});

t.test('a batch is recorded member by member and its answers correlate', async (t) => {
  const sink = new MemorySink();
  const capture = createCapture({ sink, transport: 'streamable-http', mode: 'spool' });
  const batch =
    '[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"rm","arguments":{"path":"/"}}},' +
    '{"jsonrpc":"2.0","method":"notifications/initialized"},7]';
  capture.observeText('client_to_server', batch, ctx);
  capture.observeText('server_to_client', '[{"jsonrpc":"2.0","id":1,"result":{"content":[]}}]', ctx);
  const m = sink.ofKind('mcp.message');
  t.same(
    m.map((f) => [f['messageType'], f['batch'], f['mcp.method.name'], f['gen_ai.tool.name']]),
    [
      ['request', { index: 0, size: 3 }, 'tools/call', 'rm'],
      ['notification', { index: 1, size: 3 }, 'notifications/initialized', undefined],
      ['other', { index: 2, size: 3 }, undefined, undefined],
      ['result', { index: 0, size: 1 }, 'tools/call', 'rm'],
    ],
  );
  t.match(m[0], { message: { params: { arguments: { path: '/' } } }, rawSha256: sha256Hex(batch) });
  t.equal(m[1]?.['rawSha256'], sha256Hex(batch), 'the members share the batch hash');
  t.match(m[3], { matched: true, correlation: { requester: 'client', id: 1 } });
});

t.test('sync mode gates what the server could act on; refusals answer each gated member', async (t) => {
  const sink = new MemorySink();
  sink.logDown = new Error('ECONNREFUSED');
  const capture = createCapture({ sink, transport: 'stdio', mode: 'sync' });
  const cases: [string, unknown][] = [
    ['[{"jsonrpc":"2.0","id":"a","method":"tools/call"},{"jsonrpc":"2.0","method":"n"}]', [{ id: 'a' }]],
    ['not json', { id: null }],
    ['{"jsonrpc":"2.0","method":7,"id":3}', { id: null }],
    ['[{"jsonrpc":"2.0","id":2,"method":"ping"},5]', [{ id: 2 }, { id: null }]],
  ];
  for (const [text, refusal] of cases) {
    const o = capture.observeText('client_to_server', text, ctx);
    const err = await o.gate.then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    t.ok(err instanceof Error, `${text}: waits for the log and is refused`);
    t.match(refusalOf(o.classified, 'down'), refusal);
  }
  for (const text of ['{"jsonrpc":"2.0","method":"n"}', '[{"jsonrpc":"2.0","id":1,"result":{}}]', '[]']) {
    const o = capture.observeText('client_to_server', text, ctx);
    await o.gate;
    t.equal(refusalOf(o.classified, 'down'), undefined, `${text}: not gated`);
  }
});

t.test('sync mode gates only client-to-server requests on the acknowledgement', async (t) => {
  const sink = new MemorySink();
  sink.hold();
  const capture = createCapture({ sink, transport: 'stdio', mode: 'sync', syncTimeoutMs: 10_000 });
  const req = capture.observeText('client_to_server', '{"jsonrpc":"2.0","id":1,"method":"tools/list"}', ctx);
  const note = capture.observeText(
    'client_to_server',
    '{"jsonrpc":"2.0","method":"notifications/initialized"}',
    ctx,
  );
  const resp = capture.observeText('server_to_client', '{"jsonrpc":"2.0","id":1,"result":{}}', ctx);
  let passed = false;
  void req.gate.then(() => (passed = true));
  await note.gate;
  await resp.gate;
  t.equal(passed, false, 'request waits for the log');
  t.same(
    sink.records.map((r) => r.options.acknowledged),
    [true, false, false],
  );
  sink.release();
  await req.gate;
  t.equal(passed, true);
});

t.test('sync mode refuses when the log fails or times out', async (t) => {
  const sink = new MemorySink();
  sink.fail = new Error('connect ECONNREFUSED');
  const capture = createCapture({ sink, transport: 'stdio' });
  const req = capture.observeText('client_to_server', '{"jsonrpc":"2.0","id":1,"method":"tools/list"}', ctx);
  await t.rejects(req.gate, { code: 'AUDIT_UNAVAILABLE' });
  const slow = new MemorySink();
  slow.hold();
  const capture2 = createCapture({ sink: slow, transport: 'stdio', syncTimeoutMs: 20 });
  const req2 = capture2.observeText(
    'client_to_server',
    '{"jsonrpc":"2.0","id":1,"method":"tools/list"}',
    ctx,
  );
  await t.rejects(req2.gate, { code: 'AUDIT_UNAVAILABLE', message: /within 20 ms/ });
  slow.release();
  t.match(refusalFor('x', 'down'), { jsonrpc: '2.0', id: 'x', error: { code: AUDIT_UNAVAILABLE_CODE } });
});

t.test('spool mode gates client-to-server messages on the durable write, not answers', async (t) => {
  const sink = new MemorySink();
  sink.fail = new Error('disk full');
  const errors: unknown[] = [];
  const capture = createCapture({ sink, transport: 'stdio', mode: 'spool', onError: (e) => errors.push(e) });
  const req = capture.observeText('client_to_server', '{"jsonrpc":"2.0","id":1,"method":"tools/list"}', ctx);
  await t.rejects(req.gate, /disk full/);
  const note = capture.observeText('client_to_server', '{"jsonrpc":"2.0","method":"notifications/x"}', ctx);
  await t.rejects(note.gate, /disk full/);
  const resp = capture.observeText('server_to_client', '{"jsonrpc":"2.0","id":1,"result":{}}', ctx);
  await t.resolves(resp.gate, 'the answer is forwarded without waiting for the spool');
  await new Promise((r) => setImmediate(r));
  t.match(errors, [/disk full/], 'the failed answer record is reported');
});

t.test('large messages go to blobs within the budget', async (t) => {
  const sink = new MemorySink();
  const capture = createCapture({ sink, transport: 'stdio', mode: 'spool' });
  const text = 'y'.repeat(200_000);
  capture.observeText(
    'server_to_client',
    JSON.stringify({ jsonrpc: '2.0', id: 3, result: { content: [{ type: 'text', text }] } }),
    ctx,
  );
  const r = sink.records[0];
  t.ok(r?.options.blobs !== undefined && Object.keys(r.options.blobs).length === 1);
  t.ok(JSON.stringify(r?.fields).length < 48 * 1024);
  t.match(r?.fields, { message: { id: 3 }, 'jsonrpc.request.id': '3' });
});

t.test('SDK values are recorded as they go on the wire (undefined members dropped)', async (t) => {
  const sink = new MemorySink();
  const capture = createCapture({ sink, transport: 'sdk', mode: 'spool' });
  // What SDK v1 hands `send` for `client.listTools()`: params is present and undefined.
  const value = { method: 'tools/list', params: undefined, jsonrpc: '2.0', id: 1 } as unknown as JsonValue;
  await capture.observeValue('client_to_server', value, ctx).gate;
  const fields = sink.records[0]!.fields;
  t.same(fields['message'], { method: 'tools/list', jsonrpc: '2.0', id: 1 });
  t.doesNotThrow(() => canonicalJson(fields), 'the record can be signed (RFC 8785)');
});
