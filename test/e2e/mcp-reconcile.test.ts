// End to end: two perspectives of the same sessions in a real log, reconciled by the `vigil reconcile`
// CLI. The client application records its own view with `auditTransport` (emitter mcp-client); the
// server side runs behind `vigil mcp wrap` (emitter mcp-wrapper). They agree (exit 0). Then the
// client also talks to a server directly, around the wrapper: reconcile lists those calls as missing
// on the server side and exits 1.
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { auditTransport, createCapture, sinkFromEmitter } from '@vigil/client';
import { createEmitter, useNodeCrypto } from '@vigil/client/node';
import t from 'tap';
import { runNode, startLog, vigilMain } from '../helpers/log.js';
import { everythingEntry, registerEmitter, searchUntil } from '../helpers/mcp.js';

useNodeCrypto();

const log = await startLog();
t.teardown(() => log.stop());
const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'vigil-mcp-reconcile-'));
t.teardown(() => fs.rm(dir, { recursive: true, force: true }));
const wrapper = await registerEmitter(log, dir, 'mcp-wrapper');
const app = await registerEmitter(log, dir, 'mcp-client');

/** Runs one client session, recorded by the client's own auditTransport; `wrapped` puts the wrapper in. */
async function clientSession(wrapped: boolean, message: string): Promise<void> {
  const emitter = await createEmitter({
    logUrl: log.url,
    key: (await fs.readFile(app.keyFile, 'utf8')).trim(),
    spoolDir: path.join(dir, `client-spool-${message.replace(/\W/g, '_')}`),
    policy: log.policy,
  });
  const capture = createCapture({ sink: sinkFromEmitter(emitter), transport: 'sdk', mode: 'sync' });
  const wrap = [
    vigilMain,
    'mcp',
    'wrap',
    '--log',
    log.url,
    '--key',
    wrapper.keyFile,
    '--policy',
    wrapper.policyFile,
    '--spool-dir',
    path.join(dir, 'wrapper-spool'),
    '--',
    process.execPath,
  ];
  const inner = new StdioClientTransport({
    command: process.execPath,
    args: [...(wrapped ? wrap : []), everythingEntry, 'stdio'],
    stderr: 'pipe',
  });
  const client = new Client({ name: 'reconcile-e2e', version: '0' });
  await client.connect(auditTransport(inner, { capture, side: 'client' }));
  await client.listTools();
  await client.callTool({ name: 'echo', arguments: { message } });
  await client.callTool({ name: 'get-sum', arguments: { a: 1, b: 2 } });
  await client.close();
  await capture.close('session_end');
}

const reconcileArgs = [
  'reconcile',
  '--log',
  log.url,
  '--policy',
  app.policyFile,
  '--a',
  'mcp-client',
  '--b',
  'mcp-wrapper',
  '--json',
];

/** Waits until the wrapper's records of the session that echoed `message` are in the log. */
async function wrapperHas(message: string): Promise<void> {
  await searchUntil(
    log,
    wrapper.policyFile,
    { emitter: 'mcp-wrapper' },
    (f) =>
      f.some(
        (x) => x.record['direction'] === 'server_to_client' && JSON.stringify(x.record).includes(message),
      ) && f.some((x) => x.record['kind'] === 'stream.close'),
  );
}

/** The client's and the wrapper's names of the session both saw (the first test). */
let paired: { a: string; b: string } | undefined;

t.test('client view and wrapper view of the same session agree', async (t) => {
  await clientSession(true, 'seen by both');
  await wrapperHas('seen by both');
  const r = await runNode(vigilMain, reconcileArgs, { VIGIL_READER_TOKEN: await log.readerToken() });
  t.equal(r.code, 0, r.stderr);
  const report = JSON.parse(r.stdout) as {
    findings: unknown[];
    sessions: { a: string; b: string }[];
    requestsCompared: number;
  };
  t.same(report.findings, []);
  t.equal(report.sessions.length, 1, 'the two sessions were paired');
  paired = report.sessions[0]!;
  t.ok(report.requestsCompared >= 4, 'initialize, tools/list and both calls compared');
});

t.test('calls made around the wrapper show up as missing on the server side', async (t) => {
  await clientSession(false, 'around the wrapper');
  const r = await runNode(vigilMain, reconcileArgs, { VIGIL_READER_TOKEN: await log.readerToken() });
  t.equal(r.code, 1, 'differences found');
  const report = JSON.parse(r.stdout) as { findings: Record<string, unknown>[] };
  const missing = report.findings.filter((f) => f['problem'] === 'missing_in_b');
  t.ok(
    missing.some((f) => f['tool'] === 'echo') && missing.some((f) => f['tool'] === 'get-sum'),
    'both unwrapped tool calls are listed as missing in the wrapper view',
  );
  t.ok(
    report.findings.every((f) => f['problem'] === 'missing_in_b'),
    'the wrapped session still agrees',
  );
});

t.test('reconcile by two session ids: the pair agrees, another session does not', async (t) => {
  t.ok(paired, 'the first test paired two sessions');
  const env = { VIGIL_READER_TOKEN: await log.readerToken() };
  const bySession = (a: string, b: string) =>
    runNode(
      vigilMain,
      [
        'reconcile',
        '--log',
        log.url,
        '--policy',
        app.policyFile,
        '--session-a',
        a,
        '--session-b',
        b,
        '--json',
      ],
      env,
    );
  const same = await bySession(paired!.a, paired!.b);
  t.equal(same.code, 0, same.stderr);
  const report = JSON.parse(same.stdout) as {
    findings: unknown[];
    sessions: unknown[];
    requestsCompared: number;
  };
  t.same(report.findings, []);
  t.same(report.sessions, [{ a: paired!.a, b: paired!.b, requests: report.requestsCompared }]);
  t.ok(report.requestsCompared >= 4);
  // The client's session around the wrapper against the wrapper's session: nothing pairs.
  const around = await searchUntil(log, app.policyFile, { emitter: 'mcp-client' }, (f) =>
    f.some((x) => JSON.stringify(x.record).includes('around the wrapper')),
  );
  const other = around.find((x) => JSON.stringify(x.record).includes('around the wrapper'))!.record[
    'session'
  ] as string;
  t.not(other, paired!.a);
  const differ = await bySession(other, paired!.b);
  t.equal(differ.code, 1, 'differences found');
  const both = await runNode(
    vigilMain,
    [
      'reconcile',
      '--log',
      log.url,
      '--policy',
      app.policyFile,
      '--a',
      'x',
      '--session-a',
      'y',
      '--session-b',
      'z',
    ],
    env,
  );
  t.equal(both.code, 2, 'emitters and sessions together are refused');
});
