import t from 'tap';
import { openedOfKind, openRecord } from './helpers/opened.js';
import { AUDIT_UNAVAILABLE_CODE, createCapture, refusalFor, refusalOf } from '../../src/mcp/capture.js';
import { MemorySink } from '../../src/mcp/memory-sink.js';
import { canonicalJson } from '../../src/record.js';
import { isSealedRef, openSealedBytes, sealBytes } from '../../src/sealed.js';
import { reconcile } from '../../src/mcp/reconcile.js';
import type { JsonObject } from '../../src/mcp/types.js';
import { utf8 } from '../../src/encoding.js';
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
  const m = openedOfKind(sink, 'mcp.message');
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
  t.ok(isSealedRef(m[4]?.['wire']), 'the wire bytes are committed to, salted');
  t.notOk('rawSha256' in (m[4] ?? {}), 'no unsalted digest of the message');
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
  const u = openedOfKind(sink, 'mcp.unanswered');
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
  const m = openedOfKind(sink, 'mcp.message');
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
  const records = sink.records.filter((r) => r.fields['kind'] === 'mcp.message');
  const m = records.map(openRecord);
  const batchOf = (f: JsonObject | undefined): { id: string; index: number; size: number } =>
    f?.['batch'] as { id: string; index: number; size: number };
  t.same(
    m.map((f) => [
      f['messageType'],
      batchOf(f).index,
      batchOf(f).size,
      f['mcp.method.name'],
      f['gen_ai.tool.name'],
    ]),
    [
      ['request', 0, 3, 'tools/call', 'rm'],
      ['notification', 1, 3, 'notifications/initialized', undefined],
      ['other', 2, 3, undefined, undefined],
      ['result', 0, 1, 'tools/call', 'rm'],
    ],
  );
  t.match(m[0], { message: { params: { arguments: { path: '/' } } } });
  t.match(batchOf(m[0]).id, /^[0-9a-f]{32}$/);
  t.equal(batchOf(m[1]).id, batchOf(m[0]).id, 'the members name the same batch');
  t.equal(batchOf(m[2]).id, batchOf(m[0]).id, 'the members name the same batch');
  t.not(batchOf(m[3]).id, batchOf(m[0]).id, 'another batch has another id');
  t.notOk(JSON.stringify(m).includes('rawSha256'), 'no unsalted digest of the batch');
  // The batch's bytes are committed to once, salted, on its first member; S opens to them exactly.
  const ref = m[0]?.['wire'];
  if (!isSealedRef(ref)) throw new Error('the first member has no wire commitment');
  const s = records[0]!.options.blobs?.[ref.$sealed.sha256];
  if (s === undefined) throw new Error('S does not travel with the first member');
  t.equal(new TextDecoder().decode(openSealedBytes(ref, s)), batch, "the batch's exact bytes");
  t.notOk('wire' in m[1]! || 'wire' in m[2]!, 'the other members refer to it by the batch id');
  t.ok(isSealedRef(m[3]?.['wire']), 'the answer batch has its own commitment');
  t.match(m[3], { matched: true, correlation: { requester: 'client', id: 1 } });
});

t.test("a batch over the budget: members classified, bytes in the first member's sealed parts", async (t) => {
  const sink = new MemorySink();
  sink.logDown = new Error('ECONNREFUSED');
  const capture = createCapture({ sink, transport: 'stdio', mode: 'sync', partBytes: 64 * 1024 });
  const batch = JSON.stringify([
    {
      jsonrpc: '2.0',
      id: 'a',
      method: 'tools/call',
      params: { name: 'w', arguments: { x: 'v'.repeat(150_000) } },
    },
    { jsonrpc: '2.0', method: 'notifications/progress' },
  ]);
  const o = capture.observeText('client_to_server', batch, ctx);
  await t.rejects(o.gate, /ECONNREFUSED/, 'the batch holds a request: it waits for the log');
  t.match(refusalOf(o.classified, 'down'), [{ id: 'a' }], 'the refusal still names the request');
  sink.logDown = undefined;
  const sink2 = new MemorySink();
  const capture2 = createCapture({ sink: sink2, transport: 'stdio', mode: 'spool', partBytes: 64 * 1024 });
  await capture2.observeText('client_to_server', batch, ctx).gate;
  const parts = sink2.records.filter((r) => r.fields['kind'] === 'mcp.part');
  const m = openedOfKind(sink2, 'mcp.message');
  t.same(
    m.map((f) => [f['mcp.method.name'], f['gen_ai.tool.name'], 'message' in f]),
    [
      ['tools/call', 'w', false],
      ['notifications/progress', undefined, false],
    ],
  );
  const listed = (m[0]?.['wire'] as { $sealedParts: { size: number } }).$sealedParts;
  t.equal(listed.size, utf8(batch).length);
  const rebuilt: number[] = [];
  for (const p of parts) {
    const ref = p.fields['part'];
    if (!isSealedRef(ref)) throw new Error('part is not sealed');
    rebuilt.push(...openSealedBytes(ref, p.options.blobs![ref.$sealed.sha256]!));
  }
  t.equal(Buffer.from(rebuilt).toString('utf8'), batch, 'the parts open to the batch');
  for (const f of m) t.ok(canonicalJson(f).length < 48 * 1024, 'each member record is within the budget');
});

t.test('a batch whose bytes are not utf-8: base64 once, on the first member', async (t) => {
  const sink = new MemorySink();
  const capture = createCapture({ sink, transport: 'stdio', mode: 'spool' });
  const wire = Buffer.concat([
    Buffer.from('[{"jsonrpc":"2.0","id":1,"method":"a","params":{"s":"'),
    Buffer.from([0xff]),
    Buffer.from('"}},{"jsonrpc":"2.0","id":2,"method":"b"}]'),
  ]);
  capture.observeText('client_to_server', wire.toString('utf8'), ctx, wire);
  const m = openedOfKind(sink, 'mcp.message');
  t.same(
    m.map((f) => [f['mcp.method.name'], 'message' in f, 'rawBase64' in f]),
    [
      ['a', false, true],
      ['b', false, false],
    ],
  );
  t.equal(m[0]?.['rawBase64'], wire.toString('base64'), 'the exact bytes, no lossy decoding');
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

t.test('a message over the budget is carried by its sealed bytes, within the budget', async (t) => {
  const sink = new MemorySink();
  const capture = createCapture({ sink, transport: 'stdio', mode: 'spool' });
  const text = 'y'.repeat(200_000);
  const wire = JSON.stringify({ jsonrpc: '2.0', id: 3, result: { content: [{ type: 'text', text }] } });
  capture.observeText('server_to_client', wire, ctx);
  const r = sink.records[0]!;
  t.equal(sink.records.length, 1, 'one record: S rides beside it');
  t.ok(canonicalJson(r.fields).length < 48 * 1024);
  t.match(r.fields, { 'jsonrpc.request.id': '3', messageType: 'result' });
  t.notOk('message' in r.fields, 'the content is not copied into the record');
  const ref = r.fields['wire'];
  if (!isSealedRef(ref)) throw new Error('wire is not a sealed reference');
  const s = r.options.blobs?.[ref.$sealed.sha256];
  if (s === undefined) throw new Error('S does not travel with the record');
  t.equal(new TextDecoder().decode(openSealedBytes(ref, s)), wire, 'S opens to the exact message');
});

t.test('a message over the part size is split into mcp.part records, each within the limits', async (t) => {
  const sink = new MemorySink();
  const capture = createCapture({ sink, transport: 'stdio', mode: 'sync', partBytes: 64 * 1024 });
  const wire = utf8(
    JSON.stringify({
      jsonrpc: '2.0',
      id: 9,
      method: 'tools/call',
      params: { name: 'big', arguments: { x: 'z'.repeat(300_000) } },
    }),
  );
  const obs = capture.observeText('client_to_server', new TextDecoder().decode(wire), ctx, wire);
  await obs.gate;
  const parts = sink.records.filter((r) => r.fields['kind'] === 'mcp.part');
  const message = sink.records.at(-1)!;
  t.equal(parts.length, Math.ceil(wire.length / (64 * 1024)));
  t.equal(sink.records.indexOf(message), parts.length, 'the parts come before the message record');
  t.equal(message.options.acknowledged, true, 'the request itself still waits for the log');
  t.match(message.fields, { 'gen_ai.tool.name': 'big', 'jsonrpc.request.id': '9' });
  const listed = (message.fields['wire'] as { $sealedParts: { size: number; parts: unknown[] } })
    .$sealedParts;
  t.equal(listed.size, wire.length);
  const rebuilt: number[] = [];
  parts.forEach((p, i) => {
    const ref = p.fields['part'];
    if (!isSealedRef(ref)) throw new Error('part is not sealed');
    t.same(listed.parts[i], ref.$sealed, `part ${i} is listed in order`);
    t.ok(Object.keys(p.options.blobs ?? {}).length === 1, `part ${i} carries its own S`);
    t.ok(p.options.blobs![ref.$sealed.sha256]!.length < 64 * 1024 * 1.4 + 100, `part ${i} is bounded`);
    rebuilt.push(...openSealedBytes(ref, p.options.blobs![ref.$sealed.sha256]!));
  });
  t.same(Buffer.from(rebuilt).equals(Buffer.from(wire)), true, 'the parts open to the exact bytes');
});

t.test('a message beyond every limit gets a marker with its size and salted digest', async (t) => {
  const sink = new MemorySink();
  const salt = new Uint8Array(16).fill(7);
  const capture = createCapture({
    sink,
    transport: 'stdio',
    mode: 'spool',
    partBytes: 1024,
    maxMessageBytes: 4096,
    salt: () => salt,
    // Under `payload` the record would carry its (small enough) result sealed beside it; this is
    // about the marker, which is the same under every level.
    seal: 'none',
  });
  const wire = utf8(JSON.stringify({ jsonrpc: '2.0', id: 1, result: { t: 'q'.repeat(10_000) } }));
  await capture.observeText('server_to_client', new TextDecoder().decode(wire), ctx, wire).gate;
  t.equal(sink.records.length, 1);
  const marker = sink.records[0]!.fields['wire'] as {
    $oversize: { size: number; salt: string; sha256: string };
  };
  t.equal(marker.$oversize.size, wire.length);
  t.equal(marker.$oversize.salt, Buffer.from(salt).toString('base64'));
  t.equal(marker.$oversize.sha256, sealBytes(wire, salt).ref.$sealed.sha256, 'digest of S, streamed');
  t.same(sink.records[0]!.options.blobs, undefined, 'nothing of the content travels');
});

t.test('the streamed $oversize marker is the same whatever the pieces the bytes come in', async (t) => {
  const salt = new Uint8Array(16).fill(9);
  const capture = createCapture({ sink: new MemorySink(), transport: 'streamable-http', salt: () => salt });
  const wire = utf8('{"jsonrpc":"2.0","id":1,"result":{"t":"' + 'é'.repeat(5000) + '"}}');
  const want = { size: wire.length, salt: Buffer.from(salt).toString('base64') };
  const digest = sealBytes(wire, salt).ref.$sealed.sha256;
  for (const step of [1, 2, 3, 4, 7, 1000, wire.length]) {
    const hasher = capture.oversizeHasher();
    for (let at = 0; at < wire.length; at += step) hasher.update(wire.subarray(at, at + step));
    t.same(hasher.digest(), { $oversize: { ...want, sha256: digest } }, `pieces of ${step}`);
  }
});

t.test('bytes that are not utf-8 are recorded as base64 of the exact bytes', async (t) => {
  const sink = new MemorySink();
  const capture = createCapture({ sink, transport: 'stdio', mode: 'spool' });
  const wire = Buffer.from([
    ...Buffer.from('{"jsonrpc":"2.0","method":"x","params":{"s":"'),
    0xff,
    0xc3,
    ...Buffer.from('"}}\n'),
  ]);
  capture.observeText('server_to_client', wire.toString('utf8').trimEnd(), ctx, wire);
  const f = sink.records[0]!.fields;
  t.ok(isSealedRef(f['rawBase64']), 'the bytes are sealed');
  t.equal(openRecord(sink.records[0]!)['rawBase64'], wire.toString('base64'));
  t.notOk('message' in f, 'no lossy (U+FFFD) copy of the message');
  t.equal(f['mcp.method.name'], 'x', 'still classified');
  const ref = f['wire'];
  if (!isSealedRef(ref)) throw new Error('no wire commitment');
  t.ok(Buffer.from(openSealedBytes(ref, sink.records[0]!.options.blobs![ref.$sealed.sha256]!)).equals(wire));
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

t.test('reconcile still sees large (sealed-only) messages: a missing answer is reported', async (t) => {
  const big = JSON.stringify({
    jsonrpc: '2.0',
    id: 1,
    method: 'tools/call',
    params: { name: 'x', arguments: { a: 'p'.repeat(100_000) } },
  });
  const answer = JSON.stringify({
    jsonrpc: '2.0',
    id: 1,
    result: { content: [{ type: 'text', text: 'r'.repeat(100_000) }] },
  });
  const side = (withAnswer: boolean): JsonObject[] => {
    const sink = new MemorySink();
    const capture = createCapture({ sink, transport: 'stdio', mode: 'spool' });
    capture.observeText('client_to_server', big, ctx);
    if (withAnswer) capture.observeText('server_to_client', answer, ctx);
    return openedOfKind(sink, 'mcp.message');
  };
  t.same(reconcile(side(true), side(true)).findings, [], 'the same large exchange on both sides agrees');
  t.match(reconcile(side(true), side(false)).findings, [
    { problem: 'response_missing_in_b', method: 'tools/call', tool: 'x' },
  ]);
});

t.test('sync mode gives a large request one more second per MiB to reach the log', async (t) => {
  const sink = new MemorySink();
  const capture = createCapture({ sink, transport: 'stdio', mode: 'sync', syncTimeoutMs: 5000 });
  const text = JSON.stringify({
    jsonrpc: '2.0',
    id: 1,
    method: 'tools/call',
    params: { a: 'm'.repeat(2_600_000) },
  });
  await capture.observeText('client_to_server', text, ctx).gate;
  const request = sink.records.at(-1)!;
  t.equal(request.options.acknowledged, true);
  t.equal(request.options.timeoutMs, 7000);
  await capture.observeText('client_to_server', '{"jsonrpc":"2.0","id":2,"method":"ping"}', ctx).gate;
  t.equal(sink.records.at(-1)!.options.timeoutMs, undefined, 'a small request keeps the default');
});
