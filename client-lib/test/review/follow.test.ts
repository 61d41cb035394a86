// Streams out, the pure part (src/review/follow.ts): the JSON line of a verified record, the pairing of
// requests with responses (keys, reused ids, the bound on waiting requests, state that survives a
// restart as JSON) and the span of a pair (name, times, ids, MCP semantic-convention attributes,
// error status). Records are built here as the capture writes them.
import t from 'tap';
import {
  checkpointForPolicy,
  cosign,
  followLine,
  formatCheckpoint,
  generateKey,
  parsePolicy,
  signNote,
  MAX_PENDING_REQUESTS,
  openRecord,
  pairingKey,
  pairRecord,
  randomBytes,
  sealValue,
  type OpenedRecord,
  type Pairing,
  type PendingRequest,
  type SealedAnswer,
} from '../../src/index.js';
import { useNodeCrypto } from '../../src/node.js';

useNodeCrypto();

const ORIGIN = 'follow.test/log';
const at = (second: number) => `2026-12-06T12:00:${String(second).padStart(2, '0')}.000Z`;

interface Msg {
  index: bigint;
  second: number;
  direction?: 'client_to_server' | 'server_to_client';
  type: 'request' | 'result' | 'error' | 'notification';
  id?: number | string;
  method?: string;
  tool?: string;
  session?: string;
  emitter?: string;
  errorType?: string;
  message?: unknown;
  extra?: Record<string, unknown>;
}

/** A record as the wrapper writes it, opened against `answer` (undefined: no reader token). */
function message(m: Msg, answer?: SealedAnswer): OpenedRecord {
  const direction = m.direction ?? (m.type === 'request' ? 'client_to_server' : 'server_to_client');
  const requester =
    m.type === 'request'
      ? direction === 'client_to_server'
        ? 'client'
        : 'server'
      : direction === 'server_to_client'
        ? 'client'
        : 'server';
  const record: Record<string, unknown> = {
    v: 1,
    stream: 'st1',
    seq: Number(m.index),
    kind: 'mcp.message',
    transport: 'stdio',
    session: m.session ?? 's1',
    direction,
    messageType: m.type,
    time: at(m.second),
    'mcp.protocol.version': '2025-06-18',
    ...(m.method !== undefined ? { 'mcp.method.name': m.method } : {}),
    ...(m.tool !== undefined ? { 'gen_ai.tool.name': m.tool } : {}),
    ...(m.id !== undefined
      ? { 'jsonrpc.request.id': String(m.id), correlation: { requester, id: m.id } }
      : {}),
    ...(m.errorType !== undefined ? { 'error.type': m.errorType } : {}),
    ...(m.message !== undefined ? { message: m.message } : {}),
    ...m.extra,
  };
  return openRecord(
    { index: m.index, emitter: m.emitter ?? 'wrapper', received: at(m.second + 1), record },
    answer,
  );
}

const newPairing = (): Pairing => ({ pending: new Map(), dropped: 0 });

t.test('followLine: the documented shape, sealed values opened, only verified records', async (t) => {
  const answer: SealedAnswer = { sealed: new Map(), erased: new Map() };
  const args = sealValue({ name: 'echo', arguments: { message: 'secret-ish' } }, randomBytes(16));
  answer.sealed.set(args.ref.$sealed.sha256, args.bytes);
  const r = message(
    {
      index: 7n,
      second: 3,
      type: 'request',
      id: 4,
      method: 'tools/call',
      tool: 'echo',
      message: { jsonrpc: '2.0', id: 4, method: 'tools/call', params: args.ref },
    },
    answer,
  );
  const line = followLine(r, ORIGIN);
  t.same(Object.keys(line), [
    'index',
    'origin',
    'received',
    'time',
    'emitter',
    'kind',
    'session',
    'direction',
    'method',
    'tool',
    'id',
    'record',
    'sealed',
    'verified',
  ]);
  t.equal(line.index, '7');
  t.equal(line.origin, ORIGIN);
  t.equal(line.received, at(4));
  t.equal(line.time, at(3));
  t.equal(line.emitter, 'wrapper');
  t.equal(line.kind, 'mcp.message');
  t.equal(line.session, 's1');
  t.equal(line.direction, 'client_to_server');
  t.equal(line.method, 'tools/call');
  t.equal(line.tool, 'echo');
  t.equal(line.id, '4');
  t.same((line.record['message'] as { params: unknown }).params, {
    name: 'echo',
    arguments: { message: 'secret-ish' },
  });
  t.same(line.sealed, [{ sha256: args.ref.$sealed.sha256, state: 'opened' }]);
  t.equal(line.verified, true);
  t.equal(JSON.parse(JSON.stringify(line)).index, '7', 'indices are decimal strings in JSON');

  // Without a reader token: the commitment stays, its state says so.
  const sealed = followLine(
    message({
      index: 8n,
      second: 3,
      type: 'request',
      id: 5,
      method: 'tools/call',
      tool: 'echo',
      message: { jsonrpc: '2.0', id: 5, method: 'tools/call', params: args.ref },
    }),
    ORIGIN,
  );
  t.same(sealed.sealed, [{ sha256: args.ref.$sealed.sha256, state: 'sealed' }]);
  t.same((sealed.record['message'] as { params: unknown }).params, args.ref);

  // Records that are not MCP messages: the MCP fields are null.
  const plain = followLine(
    openRecord(
      {
        index: 0n,
        emitter: 'operator',
        received: at(0),
        record: { v: 1, stream: 'op', seq: 0, kind: 'emitter.add', time: at(0) },
      },
      undefined,
    ),
    ORIGIN,
  );
  t.same(
    [plain.session, plain.direction, plain.method, plain.tool, plain.id, plain.kind],
    [null, null, null, null, null, 'emitter.add'],
  );

  // Never a line for a record that did not verify or whose value did not match.
  t.throws(() => followLine({ ...r, failure: 'receipt bad' }, ORIGIN), /did not verify/);
  const wrong: SealedAnswer = {
    sealed: new Map([[args.ref.$sealed.sha256, randomBytes(40)]]),
    erased: new Map(),
  };
  const mismatched = message(
    {
      index: 9n,
      second: 3,
      type: 'request',
      id: 6,
      method: 'tools/call',
      message: { jsonrpc: '2.0', id: 6, method: 'tools/call', params: args.ref },
    },
    wrong,
  );
  t.throws(() => followLine(mismatched, ORIGIN), /failed/);
  const missing = message(
    {
      index: 9n,
      second: 3,
      type: 'request',
      id: 6,
      method: 'tools/call',
      message: { jsonrpc: '2.0', id: 6, method: 'tools/call', params: args.ref },
    },
    { sealed: new Map(), erased: new Map() },
  );
  t.throws(() => followLine(missing, ORIGIN), /missing/);
});

t.test('pairRecord: one span per request/response pair, attributes per the MCP conventions', async (t) => {
  const p = newPairing();
  t.equal(
    pairRecord(
      p,
      message({ index: 1n, second: 1, type: 'request', id: 1, method: 'tools/call', tool: 'echo' }),
      ORIGIN,
    ),
    undefined,
  );
  t.equal(p.pending.size, 1, 'the request waits');
  const span = pairRecord(
    p,
    message({ index: 3n, second: 2, type: 'result', id: 1, method: 'tools/call', tool: 'echo' }),
    ORIGIN,
  )!;
  t.equal(p.pending.size, 0, 'the response frees it');
  t.equal(span.name, 'tools/call echo');
  t.equal(span.startMs, Date.parse(at(1)), 'start: the request time (emitter clock)');
  t.equal(span.endMs, Date.parse(at(2)), 'end: the response time');
  t.equal(span.error, false);
  t.same(span.attributes, {
    'vigil.log.origin': ORIGIN,
    'vigil.emitter': 'wrapper',
    'mcp.method.name': 'tools/call',
    'gen_ai.tool.name': 'echo',
    'jsonrpc.request.id': '1',
    'mcp.protocol.version': '2025-06-18',
    'vigil.session': 's1',
    'vigil.direction': 'client_to_server',
    'gen_ai.operation.name': 'execute_tool',
    'network.transport': 'pipe',
    'vigil.request.index': '1',
    'vigil.response.index': '3',
  });
  t.match(span.traceId, /^[0-9a-f]{32}$/);
  t.match(span.spanId, /^[0-9a-f]{16}$/);

  // The same pair again (a restart that sends it twice) has the same ids; another request others.
  const again = newPairing();
  pairRecord(
    again,
    message({ index: 1n, second: 1, type: 'request', id: 1, method: 'tools/call', tool: 'echo' }),
    ORIGIN,
  );
  const twice = pairRecord(again, message({ index: 3n, second: 2, type: 'result', id: 1 }), ORIGIN)!;
  t.equal(twice.traceId, span.traceId);
  t.equal(twice.spanId, span.spanId);
  pairRecord(
    again,
    message({ index: 4n, second: 1, type: 'request', id: 1, method: 'tools/call', tool: 'echo' }),
    ORIGIN,
  );
  const other = pairRecord(again, message({ index: 5n, second: 2, type: 'result', id: 1 }), ORIGIN)!;
  t.not(other.traceId, span.traceId);
  t.not(other.spanId, span.spanId);
  t.not(
    pairRecord(
      (() => {
        const q = newPairing();
        pairRecord(q, message({ index: 1n, second: 1, type: 'request', id: 1, method: 'ping' }), 'other/log');
        return q;
      })(),
      message({ index: 2n, second: 2, type: 'result', id: 1 }),
      'other/log',
    )!.traceId,
    span.traceId,
    'ids depend on the origin',
  );
});

t.test('pairRecord: errors, methods without a target, prompts, server-to-client requests', async (t) => {
  const p = newPairing();
  pairRecord(
    p,
    message({ index: 1n, second: 1, type: 'request', id: 'a', method: 'tools/call', tool: 'nope' }),
    ORIGIN,
  );
  const err = pairRecord(
    p,
    message({
      index: 2n,
      second: 2,
      type: 'error',
      id: 'a',
      errorType: '-32602',
      message: { jsonrpc: '2.0', id: 'a', error: { code: -32602, message: 'unknown tool' } },
    }),
    ORIGIN,
  )!;
  t.equal(err.error, true, 'a JSON-RPC error is an error span');
  t.equal(err.attributes['error.type'], '-32602');
  t.equal(err.attributes['rpc.response.status_code'], '-32602');
  t.equal(err.attributes['jsonrpc.request.id'], 'a', 'string ids as they are');

  pairRecord(
    p,
    message({ index: 3n, second: 3, type: 'request', id: 2, method: 'tools/call', tool: 'fails' }),
    ORIGIN,
  );
  const toolError = pairRecord(
    p,
    message({ index: 4n, second: 4, type: 'result', id: 2, errorType: 'tool_error' }),
    ORIGIN,
  )!;
  t.equal(toolError.error, true, 'a tool result with isError is an error span');
  t.equal(toolError.attributes['error.type'], 'tool_error');
  t.equal(toolError.attributes['rpc.response.status_code'], undefined, 'no JSON-RPC code for a tool error');

  pairRecord(p, message({ index: 5n, second: 5, type: 'request', id: 3, method: 'tools/list' }), ORIGIN);
  const list = pairRecord(p, message({ index: 6n, second: 5, type: 'result', id: 3 }), ORIGIN)!;
  t.equal(list.name, 'tools/list', 'no target: the method alone');
  t.equal(list.attributes['gen_ai.operation.name'], undefined);
  t.equal(list.error, false);

  pairRecord(
    p,
    message({
      index: 7n,
      second: 6,
      type: 'request',
      id: 4,
      method: 'prompts/get',
      extra: { 'gen_ai.prompt.name': 'greet' },
    }),
    ORIGIN,
  );
  const prompt = pairRecord(p, message({ index: 8n, second: 6, type: 'result', id: 4 }), ORIGIN)!;
  t.equal(prompt.name, 'prompts/get greet');
  t.equal(prompt.attributes['gen_ai.prompt.name'], 'greet');

  // The server asks the client (sampling): the same id as a client request, another requester.
  pairRecord(
    p,
    message({ index: 9n, second: 7, type: 'request', id: 5, method: 'tools/call', tool: 'x' }),
    ORIGIN,
  );
  pairRecord(
    p,
    message({
      index: 10n,
      second: 7,
      type: 'request',
      direction: 'server_to_client',
      id: 5,
      method: 'sampling/createMessage',
    }),
    ORIGIN,
  );
  const sampling = pairRecord(
    p,
    message({ index: 11n, second: 8, type: 'result', direction: 'client_to_server', id: 5 }),
    ORIGIN,
  )!;
  t.equal(sampling.name, 'sampling/createMessage');
  t.equal(sampling.attributes['vigil.request.index'], '10');
  const call = pairRecord(p, message({ index: 12n, second: 9, type: 'result', id: 5 }), ORIGIN)!;
  t.equal(call.attributes['vigil.request.index'], '9', 'each response finds its own request');

  // Streamable HTTP: network.transport tcp, the MCP session id.
  pairRecord(
    p,
    message({
      index: 13n,
      second: 9,
      type: 'request',
      id: 6,
      method: 'ping',
      extra: { transport: 'streamable-http', 'mcp.session.id': 'sess-xyz' },
    }),
    ORIGIN,
  );
  const http = pairRecord(p, message({ index: 14n, second: 9, type: 'result', id: 6 }), ORIGIN)!;
  t.equal(http.attributes['network.transport'], 'tcp');
  t.equal(http.attributes['mcp.session.id'], 'sess-xyz');
  t.equal(p.pending.size, 0);
});

t.test('pairRecord: what does not pair', async (t) => {
  const p = newPairing();
  t.equal(
    pairRecord(p, message({ index: 1n, second: 1, type: 'result', id: 1 }), ORIGIN),
    undefined,
    'a response without its request',
  );
  t.equal(
    pairRecord(
      p,
      message({ index: 2n, second: 1, type: 'notification', method: 'notifications/initialized' }),
      ORIGIN,
    ),
    undefined,
  );
  pairRecord(p, message({ index: 3n, second: 1, type: 'request', id: 1, method: 'ping' }), ORIGIN);
  t.equal(
    pairRecord(p, message({ index: 4n, second: 1, type: 'result', id: 1, session: 's2' }), ORIGIN),
    undefined,
    'another session',
  );
  t.equal(
    pairRecord(p, message({ index: 5n, second: 1, type: 'result', id: 1, emitter: 'proxy' }), ORIGIN),
    undefined,
    'another emitter',
  );
  t.equal(
    pairRecord(p, message({ index: 6n, second: 1, type: 'result', id: '1' }), ORIGIN),
    undefined,
    'the id "1" is not the id 1',
  );
  t.ok(
    pairRecord(p, message({ index: 7n, second: 2, type: 'result', id: 1 }), ORIGIN),
    'the right one pairs',
  );
  t.equal(pairRecord(p, message({ index: 8n, second: 2, type: 'result', id: 1 }), ORIGIN), undefined, 'once');
  t.equal(
    pairingKey(
      openRecord(
        { index: 9n, emitter: 'x', received: at(1), record: { kind: 'mcp.stderr', line: 'x' } },
        undefined,
      ),
    ),
    undefined,
  );
  // A reused id: the newer request is the one the response answers.
  pairRecord(p, message({ index: 10n, second: 3, type: 'request', id: 9, method: 'ping' }), ORIGIN);
  pairRecord(p, message({ index: 11n, second: 4, type: 'request', id: 9, method: 'ping' }), ORIGIN);
  t.equal(p.pending.size, 1);
  t.equal(
    pairRecord(p, message({ index: 12n, second: 5, type: 'result', id: 9 }), ORIGIN)!.attributes[
      'vigil.request.index'
    ],
    '11',
  );
});

t.test('pairing state: bounded, oldest dropped and counted, survives JSON', async (t) => {
  t.equal(MAX_PENDING_REQUESTS, 10_000);
  const p = newPairing();
  for (let i = 0; i < 5; i++)
    pairRecord(
      p,
      message({ index: BigInt(i), second: i, type: 'request', id: i, method: 'ping' }),
      ORIGIN,
      3,
    );
  t.equal(p.pending.size, 3);
  t.equal(p.dropped, 2);
  t.same(
    [...p.pending.values()].map((r) => r.index),
    ['2', '3', '4'],
    'the oldest went first',
  );
  t.equal(
    pairRecord(p, message({ index: 9n, second: 9, type: 'result', id: 0 }), ORIGIN, 3),
    undefined,
    'a dropped request no longer pairs',
  );
  // What the state file keeps, and a restart reads back.
  const saved = JSON.stringify([...p.pending.values()]);
  const restored: Pairing = {
    pending: new Map((JSON.parse(saved) as PendingRequest[]).map((r) => [r.key, r])),
    dropped: p.dropped,
  };
  const span = pairRecord(restored, message({ index: 10n, second: 10, type: 'result', id: 3 }), ORIGIN)!;
  t.equal(span.attributes['vigil.request.index'], '3', 'a request from before the restart pairs');
  t.equal(span.startMs, Date.parse(at(3)));
  t.equal(span.endMs, Date.parse(at(10)));
});

t.test('checkpointForPolicy: the latest when it meets the quorum, else the witnessed one', async (t) => {
  const log = generateKey('follow.test/log');
  const witness = generateKey('w1.example');
  const policy = parsePolicy(`log ${log.verifierKey}\nwitness w1 ${witness.verifierKey}\nquorum w1\n`);
  const note = (size: bigint) =>
    signNote(
      formatCheckpoint({ origin: 'follow.test/log', size, root: new Uint8Array(32), extensions: [] }),
      [log.signerKey],
    );
  const older = note(5n);
  const witnessedOlder = older + cosign(older, witness.signerKey, 1700000000);
  const newer = note(9n);
  const asked: string[] = [];
  const pick = (latest: string) =>
    checkpointForPolicy(
      () => {
        asked.push('latest');
        return Promise.resolve(latest);
      },
      () => {
        asked.push('witnessed');
        return Promise.resolve(witnessedOlder);
      },
      policy,
    );
  t.equal(await pick(newer), witnessedOlder, 'short of the quorum: the newest witnessed one');
  t.same(asked, ['latest', 'witnessed']);
  const cosigned = newer + cosign(newer, witness.signerKey, 1700000001);
  t.equal(await pick(cosigned), cosigned, 'cosigned: the latest');
  const impostor = generateKey('follow.test/log');
  const forged = signNote(newer.slice(0, newer.indexOf('\n\n') + 1), [impostor.signerKey]);
  t.equal(await pick(forged), forged, 'a bad log signature is passed on for the verifier to reject');
});
