// The 2026-07-28 era's links, on hand-made wire messages: MRTR rounds (an `input_required` answer and
// the retry with a new id) are one call (`correlation.call` names the first request, also across the
// per-exchange sessions of stateless HTTP); `io.modelcontextprotocol/tasks` requests and status
// notifications name the request that created the task; `server/discover` and `initialize` are the
// handshake (`mcp.handshake`).
import t from 'tap';
import { openedOfKind } from './helpers/opened.js';
import { createCapture } from '../../src/mcp/capture.js';
import { MemorySink } from '../../src/mcp/memory-sink.js';

type Rec = Record<string, unknown>;
const line = (m: Rec): string => JSON.stringify({ jsonrpc: '2.0', ...m });
const meta = { 'io.modelcontextprotocol/protocolVersion': '2026-07-28' };
const deploy = { name: 'deploy', arguments: { env: 'prod' }, _meta: meta };

t.test('MRTR: the retry and its answer name the first round, across exchanges', async (t) => {
  const sink = new MemorySink();
  const capture = createCapture({ sink, transport: 'streamable-http', mode: 'spool' });
  capture.observeText('client_to_server', line({ id: 'a', method: 'tools/call', params: deploy }), {
    session: 'x1',
  });
  const inputRequired = {
    resultType: 'input_required',
    inputRequests: { confirm: { method: 'elicitation/create', params: { message: 'sure?' } } },
    requestState: 'state-1',
  };
  capture.observeText('server_to_client', line({ id: 'a', result: inputRequired }), { session: 'x1' });
  // A retry with another state is not this call's; neither is a plain new call of the same tool.
  capture.observeText(
    'client_to_server',
    line({
      id: 'b',
      method: 'tools/call',
      params: { ...deploy, inputResponses: {}, requestState: 'forged' },
    }),
    { session: 'x2' },
  );
  capture.observeText('client_to_server', line({ id: 'c', method: 'tools/call', params: deploy }), {
    session: 'x3',
  });
  const retry = { ...deploy, inputResponses: { confirm: { action: 'accept' } }, requestState: 'state-1' };
  capture.observeText('client_to_server', line({ id: 'd', method: 'tools/call', params: retry }), {
    session: 'x4',
  });
  // A second input_required round keeps naming the first request.
  capture.observeText(
    'server_to_client',
    line({ id: 'd', result: { ...inputRequired, requestState: 'state-2' } }),
    { session: 'x4' },
  );
  const again = { ...retry, requestState: 'state-2' };
  capture.observeText('client_to_server', line({ id: 'e', method: 'tools/call', params: again }), {
    session: 'x5',
  });
  capture.observeText(
    'server_to_client',
    line({ id: 'e', result: { resultType: 'complete', content: [] } }),
    {
      session: 'x5',
    },
  );
  // The state was used once: replaying the retry does not join the call.
  capture.observeText('client_to_server', line({ id: 'f', method: 'tools/call', params: retry }), {
    session: 'x6',
  });
  const m = openedOfKind(sink, 'mcp.message') as Rec[];
  const call = (id: string, direction: string): unknown =>
    (
      m.find((r) => (r['correlation'] as Rec)['id'] === id && r['direction'] === direction)![
        'correlation'
      ] as Rec
    )['call'];
  const first = { session: 'x1', id: 'a' };
  t.equal(call('a', 'client_to_server'), undefined);
  t.equal(call('b', 'client_to_server'), undefined, 'another request state');
  t.equal(call('c', 'client_to_server'), undefined, 'no input responses');
  t.same(call('d', 'client_to_server'), first);
  t.same(call('d', 'server_to_client'), first);
  t.same(call('e', 'client_to_server'), first, 'the third round');
  t.same(call('e', 'server_to_client'), first);
  t.equal(call('f', 'client_to_server'), undefined, 'a replayed state');
});

t.test('tasks: tasks/get, tasks/update and status notifications name the creating request', async (t) => {
  const sink = new MemorySink();
  const capture = createCapture({ sink, transport: 'stdio', mode: 'spool' });
  const ctx = { session: 's' };
  capture.observeText(
    'client_to_server',
    line({ id: 1, method: 'tools/call', params: { name: 'build', arguments: {}, task: { ttl: 60000 } } }),
    ctx,
  );
  capture.observeText(
    'server_to_client',
    line({ id: 1, result: { task: { taskId: 'T-9', status: 'working' } } }),
    ctx,
  );
  capture.observeText(
    'client_to_server',
    line({ id: 2, method: 'tasks/get', params: { taskId: 'T-9' } }),
    ctx,
  );
  capture.observeText(
    'server_to_client',
    line({ id: 2, result: { task: { taskId: 'T-9', status: 'input_required' } } }),
    ctx,
  );
  capture.observeText(
    'client_to_server',
    line({ id: 3, method: 'tasks/update', params: { taskId: 'T-9', inputResponses: {} } }),
    ctx,
  );
  capture.observeText(
    'server_to_client',
    line({ method: 'notifications/tasks/status', params: { taskId: 'T-9', status: 'completed' } }),
    ctx,
  );
  capture.observeText(
    'client_to_server',
    line({ id: 4, method: 'tasks/get', params: { taskId: 'T-unknown' } }),
    ctx,
  );
  const m = openedOfKind(sink, 'mcp.message') as Rec[];
  const creator = { session: 's', id: 1 };
  t.match(m[1], { 'mcp.task.id': 'T-9', correlation: { id: 1 } }, 'the answer that created the task');
  t.equal((m[1]!['correlation'] as Rec)['call'], undefined);
  t.match(m[2], {
    'mcp.method.name': 'tasks/get',
    'mcp.task.id': 'T-9',
    correlation: { id: 2, call: creator },
  });
  t.match(m[3], { 'mcp.task.id': 'T-9', correlation: { id: 2, call: creator } });
  t.match(m[4], { 'mcp.method.name': 'tasks/update', correlation: { id: 3, call: creator } });
  t.match(m[5], { 'mcp.method.name': 'notifications/tasks/status', correlation: { call: creator } });
  t.match(m[6], { 'mcp.task.id': 'T-unknown' });
  t.equal((m[6]!['correlation'] as Rec)['call'], undefined, 'an unknown task links nothing');
});

t.test('server/discover and initialize are the handshake, request and answer', async (t) => {
  const sink = new MemorySink();
  const capture = createCapture({ sink, transport: 'stdio', mode: 'spool' });
  const ctx = { session: 's' };
  capture.observeText(
    'client_to_server',
    line({ id: 1, method: 'server/discover', params: { _meta: meta } }),
    ctx,
  );
  capture.observeText(
    'server_to_client',
    line({ id: 1, result: { supportedVersions: ['2026-07-28'], capabilities: {}, resultType: 'complete' } }),
    ctx,
  );
  capture.observeText('client_to_server', line({ id: 2, method: 'initialize', params: {} }), ctx);
  capture.observeText('server_to_client', line({ id: 2, result: { protocolVersion: '2025-11-25' } }), ctx);
  capture.observeText('client_to_server', line({ id: 3, method: 'tools/list' }), ctx);
  const m = openedOfKind(sink, 'mcp.message') as Rec[];
  t.same(
    m.map((r) => r['mcp.handshake']),
    ['discover', 'discover', 'initialize', 'initialize', undefined],
  );
});
