import { EventEmitter } from 'node:events';
import { fileURLToPath } from 'node:url';
import { PassThrough } from 'node:stream';
import t from 'tap';
import { openedOfKind } from './helpers/opened.js';
import { createCapture } from '../../src/mcp/capture.js';
import { MemorySink } from '../../src/mcp/memory-sink.js';
import { runWrap } from '../../src/mcp/wrap.js';
import type { AuditMode } from '../../src/mcp/types.js';

const toy = fileURLToPath(new URL('./fixtures/toy-server.js', import.meta.url));

/** Runs the toy server through the wrapper with in-memory client streams. */
function harness(mode: AuditMode, sink = new MemorySink(), syncTimeoutMs = 5000) {
  const stdin = new PassThrough();
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  stdout.on('data', (c: Buffer) => out.push(c));
  stderr.on('data', (c: Buffer) => err.push(c));
  const signals = new EventEmitter();
  const capture = createCapture({ sink, transport: 'stdio', mode, syncTimeoutMs });
  const done = runWrap({
    command: process.execPath,
    args: [toy],
    capture,
    stdin,
    stdout,
    stderr,
    signalSource: signals,
    session: 'run-1',
  });
  const output = (): string => Buffer.concat(out).toString('utf8');
  /** Polls until the client has received `n` lines (no sleeps as synchronisation). */
  const waitLines = async (n: number): Promise<void> => {
    const deadline = Date.now() + 10_000;
    while (output().split('\n').length - 1 < n) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${n} lines, have: ${output()}`);
      await new Promise((r) => setImmediate(r));
    }
  };
  return {
    stdin,
    output,
    stderrText: () => Buffer.concat(err).toString('utf8'),
    signals,
    sink,
    done,
    waitLines,
  };
}

for (const mode of ['sync', 'spool'] as const) {
  t.test(`${mode}: passes bytes through unchanged and records both directions`, async (t) => {
    const h = harness(mode);
    const lines = [
      '{"method":"initialize","params":{"a":1},"jsonrpc":"2.0","id":0}\n',
      '{"jsonrpc":"2.0","id":"0","method":"garbage"}\r\n',
      '{"jsonrpc":"2.0","method":"notifications/initialized"}\n',
      'plain words\n',
    ];
    // Split writes across line boundaries to exercise the framing.
    const all = lines.join('');
    h.stdin.write(all.slice(0, 10));
    h.stdin.write(all.slice(10, 80));
    h.stdin.end(all.slice(80));
    const result = await h.done;
    t.equal(result.status, 0);
    t.equal(
      h.output(),
      '{"result":{"echo":{"a":1}},"jsonrpc":"2.0","id":0}\n' +
        'this is not json\n' +
        '{"result":{"echo":null},"jsonrpc":"2.0","id":"0"}\n' +
        'not json: plain words\n',
    );
    t.equal(h.stderrText(), 'got initialize\ngot garbage\ngot notifications/initialized\n');
    const m = openedOfKind(h.sink, 'mcp.message');
    const types = (d: string): unknown[] =>
      m.filter((f) => f['direction'] === d).map((f) => f['messageType']);
    t.same(types('client_to_server'), ['request', 'request', 'notification', 'invalid'], 'every client line');
    t.same(types('server_to_client'), ['result', 'invalid', 'result', 'invalid'], 'every server line');
    t.same(
      openedOfKind(h.sink, 'mcp.stderr').map((f) => f['line']),
      ['got initialize', 'got garbage', 'got notifications/initialized'],
    );
    const start = openedOfKind(h.sink, 'mcp.process.start')[0];
    t.match(start, { command: process.execPath, args: [toy], session: 'run-1' });
    t.ok(Array.isArray(start?.['envNames']) && (start['envNames'] as string[]).includes('PATH'));
    t.notOk(JSON.stringify(start).includes(process.env['PATH'] ?? '\u0000'), 'env values are not recorded');
    t.match(openedOfKind(h.sink, 'mcp.process.exit')[0], { code: 0, signal: null });
    t.same(openedOfKind(h.sink, 'mcp.unanswered'), []);
  });
}

t.test('sync: a request is refused and not forwarded when the log is down', async (t) => {
  const sink = new MemorySink();
  const h = harness('sync', sink);
  h.stdin.write('{"jsonrpc":"2.0","id":1,"method":"ping"}\n');
  await h.waitLines(1);
  sink.logDown = new Error('ECONNREFUSED');
  h.stdin.write('{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"rm"}}\n');
  await h.waitLines(2);
  sink.logDown = undefined;
  h.stdin.end('{"jsonrpc":"2.0","id":3,"method":"ping"}\n');
  const result = await h.done;
  t.equal(result.status, 0);
  const out = h
    .output()
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  t.match(out[1], { id: 2, error: { code: -32000, message: /audit log unavailable/ } });
  t.match(out[2], { id: 3, result: {} });
  t.notMatch(h.stderrText(), /tools\/call/, 'the server never saw the refused request');
  const synthesized = openedOfKind(sink, 'mcp.message').filter((f) => f['synthesized'] === true);
  t.equal(synthesized.length, 1, 'the refusal is recorded');
});

t.test('sync: a batch line holding a tools/call waits for the log like a request', async (t) => {
  const sink = new MemorySink();
  const h = harness('sync', sink);
  const batch = (id: number, path: string): string =>
    JSON.stringify([
      { jsonrpc: '2.0', id, method: 'tools/call', params: { name: 'rm', arguments: { path } } },
      { jsonrpc: '2.0', method: 'notifications/progress' },
    ]) + '\n';
  sink.logDown = new Error('ECONNREFUSED');
  h.stdin.write(batch(1, '/refused'));
  await h.waitLines(1);
  sink.logDown = undefined;
  h.stdin.end(batch(2, '/allowed'));
  const result = await h.done;
  t.equal(result.status, 0);
  const out = h
    .output()
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as unknown);
  t.match(out[0], [{ id: 1, error: { code: -32000, message: /audit log unavailable/ } }]);
  t.equal((out[0] as unknown[]).length, 1, 'one refusal: the notification gets no answer');
  t.match(out[1], [{ id: 2, result: { echo: { arguments: { path: '/allowed' } } } }]);
  t.equal(
    h.stderrText(),
    'got tools/call\ngot notifications/progress\n',
    'the server saw only the second batch',
  );
  const calls = openedOfKind(sink, 'mcp.message').filter(
    (f) => f['direction'] === 'client_to_server' && f['gen_ai.tool.name'] === 'rm',
  );
  t.match(calls, [
    {
      messageType: 'request',
      batch: { index: 0, size: 2 },
      message: { params: { arguments: { path: '/allowed' } } },
    },
  ]);
  const answer = openedOfKind(sink, 'mcp.message').find(
    (f) => f['direction'] === 'server_to_client' && f['synthesized'] !== true,
  );
  t.match(answer, {
    messageType: 'result',
    matched: true,
    'gen_ai.tool.name': 'rm',
    batch: { index: 0, size: 1 },
  });
});

t.test(
  'sync: a request with an unusable id, and a line that is not JSON, wait for the log too',
  async (t) => {
    const sink = new MemorySink();
    const h = harness('sync', sink);
    sink.logDown = new Error('ECONNREFUSED');
    h.stdin.write('{"jsonrpc":"2.0","method":"tools/call","id":{"not":"an id"}}\n');
    h.stdin.write('{"jsonrpc":"2.0","method":"tools/call"\n');
    await h.waitLines(2);
    sink.logDown = undefined;
    h.stdin.end('{"jsonrpc":"2.0","id":3,"method":"ping"}\n');
    await h.done;
    const out = h
      .output()
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as unknown);
    t.equal(out.length, 3);
    t.match(out[0], { id: null, error: { code: -32000 } });
    t.match(out[1], { id: null, error: { code: -32000 } });
    t.match(out[2], { id: 3, result: {} });
    t.equal(h.stderrText(), 'got ping\n', 'the server saw only the ping');
    t.notMatch(h.output(), /not json/, 'nor the broken line');
    t.equal(
      openedOfKind(sink, 'mcp.message').filter((f) => f['synthesized'] === true).length,
      2,
      'both refusals are recorded',
    );
  },
);

t.test('sync: a request waits for the acknowledgement before the server sees it', async (t) => {
  const sink = new MemorySink();
  sink.hold();
  const h = harness('sync', sink);
  h.stdin.write('{"jsonrpc":"2.0","id":1,"method":"ping"}\n');
  const deadline = Date.now() + 5000;
  while (sink.records.filter((r) => r.fields['kind'] === 'mcp.message').length < 1 && Date.now() < deadline) {
    await new Promise((r) => setImmediate(r));
  }
  t.equal(h.stderrText(), '', 'not forwarded yet');
  sink.release();
  await h.waitLines(1);
  h.stdin.end();
  await h.done;
  t.equal(h.stderrText(), 'got ping\n');
});

t.test('exit status and unanswered requests; signals propagate', async (t) => {
  const h = harness('spool');
  h.stdin.write('{"jsonrpc":"2.0","id":9,"method":"hang"}\n');
  const deadline = Date.now() + 10_000;
  while (!h.stderrText().includes('got hang')) {
    if (Date.now() > deadline) throw new Error('server never got hang');
    await new Promise((r) => setImmediate(r));
  }
  h.signals.emit('SIGTERM');
  const result = await h.done;
  t.equal(result.signal, 'SIGTERM');
  t.equal(result.status, 143);
  t.match(openedOfKind(h.sink, 'mcp.process.exit')[0], { code: null, signal: 'SIGTERM' });
  t.match(openedOfKind(h.sink, 'mcp.unanswered'), [
    { reason: 'process_exit', correlation: { requester: 'client', id: 9 } },
  ]);

  const h2 = harness('spool');
  h2.stdin.write('{"jsonrpc":"2.0","method":"exit"}\n');
  t.equal((await h2.done).status, 3);
});

t.test('a command that cannot start exits 127 and is recorded', async (t) => {
  const sink = new MemorySink();
  const capture = createCapture({ sink, transport: 'stdio' });
  const result = await runWrap({
    command: '/nonexistent/vigil-test-binary',
    args: [],
    capture,
    stdin: new PassThrough(),
    stdout: new PassThrough(),
    stderr: new PassThrough(),
    signalSource: null,
  });
  t.equal(result.status, 127);
  t.match(openedOfKind(sink, 'mcp.process.start')[0], { error: /ENOENT/ });
});
