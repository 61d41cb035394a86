// `vigil reconcile` as a process: two perspectives of one session (a client's auditTransport view and
// a wrapper's view, built with the real capture), from files and from a log. Exit 0 when they agree,
// 1 with the differences listed (or when a search result does not verify), 2 when it cannot run.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { formatEntry, generateKey, recordHash, sealValue, signRecord, type Sealed } from '../../src/index.js';
import { createCapture, sinkFromEmitter } from '../../src/mcp/index.js';
import { MemorySink, type SunkRecord } from '../../src/mcp/memory-sink.js';
import type { JsonObject, McpTransportName } from '../../src/mcp/types.js';
import { createEmitter, useNodeCrypto } from '../../src/node.js';
import { startFakeLog } from '../helpers/fake-log.js';

useNodeCrypto();

const cli = path.join(path.dirname(fileURLToPath(import.meta.url)), '../../src/cli/main.js');

function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cli, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'vigil-reconcile-'));
t.teardown(() => fs.rm(dir, { recursive: true, force: true }));

/** The session both sides saw: [direction, message], in order. */
const session: ['client_to_server' | 'server_to_client', JsonObject][] = [
  ['client_to_server', { jsonrpc: '2.0', id: 1, method: 'tools/list' }],
  ['server_to_client', { jsonrpc: '2.0', id: 1, result: { tools: [{ name: 'echo' }] } }],
  [
    'client_to_server',
    { jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'echo', arguments: { message: 'hi' } } },
  ],
  ['server_to_client', { jsonrpc: '2.0', id: 2, result: { content: [{ type: 'text', text: 'Echo: hi' }] } }],
  [
    'client_to_server',
    { jsonrpc: '2.0', id: '3', method: 'tools/call', params: { name: 'rm', arguments: { path: '/' } } },
  ],
  ['server_to_client', { jsonrpc: '2.0', id: '3', error: { code: -32602, message: 'denied' } }],
];

/** The records one side writes for `messages` (spool mode: nothing waits for a log), sealed. */
async function recordsOf(
  transport: McpTransportName,
  name: string,
  messages: typeof session,
  seal: 'none' | 'payload' = 'payload',
): Promise<SunkRecord[]> {
  const sink = new MemorySink();
  const capture = createCapture({ sink, transport, mode: 'spool', seal });
  for (const [direction, message] of messages) {
    await capture.observeValue(direction, message, { session: name }).gate;
  }
  await capture.close('end');
  return sink.records;
}

/**
 * Writes records as JSON lines: with their sealed bytes beside them (`{record, blobs}`, as an emitter
 * submits them) when `withSealed`, else the bare records (what anyone without a reader token has).
 */
const jsonl = async (file: string, records: SunkRecord[], withSealed = true): Promise<string> => {
  const p = path.join(dir, file);
  const line = (r: SunkRecord): string => {
    if (!withSealed) return JSON.stringify(r.fields);
    const blobs = Object.fromEntries(
      Object.entries(r.options.blobs ?? {}).map(([hex, bytes]) => [
        hex,
        Buffer.from(bytes).toString('base64'),
      ]),
    );
    return JSON.stringify({ record: r.fields, blobs });
  };
  await fs.writeFile(p, records.map(line).join('\n') + '\n');
  return p;
};

t.test('files: agreeing sides exit 0; each kind of difference exits 1 and is listed', async (t) => {
  const a = await jsonl('a.jsonl', await recordsOf('sdk', 'client-view', session));
  const b = await jsonl('b.jsonl', await recordsOf('stdio', 'wrapper-stream', session));
  const same = await run(['reconcile', a, b]);
  t.equal(same.code, 0, same.stderr);
  t.match(same.stdout, /compared 3 requests in 1 paired sessions\nboth sides agree/);

  // The wrapper saw another answer to id 2, and never saw request "3" (it bypassed the wrapper).
  const tampered = session
    .filter(([, m]) => m['id'] !== '3')
    .map(([d, m]): (typeof session)[number] =>
      m['id'] === 2 && 'result' in m
        ? [d, { jsonrpc: '2.0', id: 2, result: { content: [{ type: 'text', text: 'Echo: bye' }] } }]
        : [d, m],
    );
  const b2 = await jsonl('b2.jsonl', await recordsOf('stdio', 'wrapper-stream', tampered));
  const diff = await run(['reconcile', a, b2, '--json']);
  t.equal(diff.code, 1);
  const report = JSON.parse(diff.stdout) as { findings: JsonObject[] };
  t.same(
    report.findings.map((f) => [f['problem'], f['id'], f['tool']]),
    [
      ['response_differs', 2, 'echo'],
      ['missing_in_b', '3', 'rm'],
    ],
  );
  const text = await run(['reconcile', a, b2]);
  t.equal(text.code, 1);
  t.match(text.stdout, /response_differs\s+client:2\s+tools\/call echo\s+client-view\s+wrapper-stream/);
  t.match(text.stdout, /2 differences/);

  // Without the sealed bytes the content cannot be compared (each side salts its own): the clear
  // facts still are, so the missing request is found and the changed answer is not.
  const bareA = await jsonl('bare-a.jsonl', await recordsOf('sdk', 'client-view', session), false);
  const bareB2 = await jsonl('bare-b2.jsonl', await recordsOf('stdio', 'wrapper-stream', tampered), false);
  const bare = await run(['reconcile', bareA, bareB2, '--json']);
  t.equal(bare.code, 1);
  t.same(
    (JSON.parse(bare.stdout) as { findings: JsonObject[] }).findings.map((f) => [f['problem'], f['id']]),
    [['missing_in_b', '3']],
  );
  // A changed error type is a clear fact: found without opening anything.
  const failed = session.map(([d, m]): (typeof session)[number] =>
    m['id'] === 2 && 'result' in m
      ? [d, { jsonrpc: '2.0', id: 2, error: { code: -32603, message: 'x' } }]
      : [d, m],
  );
  const bareB3 = await jsonl('bare-b3.jsonl', await recordsOf('stdio', 'wrapper-stream', failed), false);
  const facts = await run(['reconcile', bareA, bareB3, '--json']);
  t.equal(facts.code, 1);
  t.same(
    (JSON.parse(facts.stdout) as { findings: JsonObject[] }).findings.map((f) => [f['problem'], f['id']]),
    [['response_differs', 2]],
  );

  const usage = await run(['reconcile', a]);
  t.equal(usage.code, 2);
  t.match(usage.stderr, /give two files/);
});

t.test('--log: results verified against the policy; an unverifiable answer exits 1', async (t) => {
  const ka = { name: 'client.example/app', ...generateKey('client.example/app') };
  const kb = { name: 'server.example/wrapper', ...generateKey('server.example/wrapper') };
  const log = await startFakeLog({
    emitters: new Map([
      [ka.name, ka.verifierKey],
      [kb.name, kb.verifierKey],
    ]),
  });
  t.teardown(() => log.close());
  const policyFile = path.join(dir, 'log.policy');
  await fs.writeFile(policyFile, log.policy);
  const emitSide = async (
    key: { signerKey: string },
    spool: string,
    transport: McpTransportName,
    name: string,
    messages: typeof session,
  ): Promise<void> => {
    const emitter = await createEmitter({
      logUrl: log.url,
      key: key.signerKey,
      spoolDir: path.join(dir, spool),
      policy: log.policy,
    });
    const capture = createCapture({ sink: sinkFromEmitter(emitter), transport, mode: 'spool' });
    for (const [direction, message] of messages) {
      await capture.observeValue(direction, message, { session: name }).gate;
    }
    await capture.close('end');
  };
  await emitSide(ka, 'spool-a', 'sdk', 'client-view', session);
  await emitSide(kb, 'spool-b', 'stdio', 'wrapper-stream', session.slice(0, 4));

  const args = ['reconcile', '--log', log.url, '--policy', policyFile, '--a', ka.name, '--b', kb.name];
  const r = await run([...args, '--json']);
  t.equal(r.code, 1, r.stderr);
  t.match(JSON.parse(r.stdout), {
    findings: [{ problem: 'missing_in_b', id: '3', tool: 'rm', sessionA: 'client-view' }],
    sessions: [{ a: 'client-view', b: 'wrapper-stream', requests: 3 }],
  });

  log.searchTamper = (e) => ({ ...e, peer: '10.9.9.9' });
  const lied = await run(args);
  t.equal(lied.code, 1);
  t.match(lied.stderr, /search result [0-9]+ for emitter client\.example\/app failed verification/);
  t.equal(lied.stdout, '', 'nothing compared from an unverified answer');
  delete log.searchTamper;

  const noPolicy = await run(['reconcile', '--log', log.url, '--a', ka.name, '--b', kb.name]);
  t.equal(noPolicy.code, 2);
  t.match(noPolicy.stderr, /--log needs --policy FILE/);
});

t.test(
  '--log with a reader token: sealed message parts are compared opened, each side with its own salts',
  async (t) => {
    const TOKEN = 'vigil_rt_' + 'R'.repeat(43);
    const ka = { name: 'client.example/sealed', ...generateKey('client.example/sealed') };
    const kb = { name: 'server.example/sealed', ...generateKey('server.example/sealed') };
    const log = await startFakeLog({
      emitters: new Map([
        [ka.name, ka.verifierKey],
        [kb.name, kb.verifierKey],
      ]),
    });
    t.teardown(() => log.close());
    const policyFile = path.join(dir, 'sealed.policy');
    await fs.writeFile(policyFile, log.policy);
    let saltCounter = 0;
    /** One side's records with params / result / error sealed (its own salts), appended signed. */
    const append = (emitter: string, signerKey: string, records: JsonObject[]): Sealed[] => {
      const sealedValues: Sealed[] = [];
      let prev: string | undefined;
      records.forEach((fields, seq) => {
        const message = fields['message'] as JsonObject | undefined;
        const sealedMessage: Record<string, unknown> | undefined =
          message === undefined ? undefined : { ...message };
        for (const part of ['params', 'result', 'error'])
          if (sealedMessage !== undefined && part in sealedMessage) {
            const s = sealValue(sealedMessage[part], new Uint8Array(16).fill(++saltCounter));
            log.sealed.set(s.ref.$sealed.sha256, s.bytes);
            sealedValues.push(s);
            sealedMessage[part] = s.ref;
          }
        const record: Record<string, unknown> = {
          v: 1,
          stream: `${emitter}-stream`,
          seq,
          ...(prev !== undefined ? { prev } : {}),
          time: new Date().toISOString(),
          ...fields,
          ...(sealedMessage !== undefined ? { message: sealedMessage } : {}),
        };
        prev = recordHash(record);
        log.appendRaw([
          formatEntry({
            received: new Date().toISOString(),
            emitter,
            peer: 'p',
            record,
            sig: signRecord(record, signerKey),
          }),
        ]);
      });
      return sealedValues;
    };
    // Captured in clear, sealed here with salts of this test (so a forged value can be planted).
    const clear = async (transport: McpTransportName, name: string, messages: typeof session) =>
      (await recordsOf(transport, name, messages, 'none')).map((r) => r.fields);
    const sealedA = append(ka.name, ka.signerKey, await clear('sdk', 'client-view', session));
    append(kb.name, kb.signerKey, await clear('stdio', 'wrapper-stream', session.slice(0, 4)));
    const args = [
      'reconcile',
      '--log',
      log.url,
      '--policy',
      policyFile,
      '--a',
      ka.name,
      '--b',
      kb.name,
      '--json',
    ];

    // Without a token (a log that does not ask for one) salted commitments never agree, so only the
    // clear facts are compared (method, tool, answer type): the sides agree, b lacks id 3.
    const unopened = await run(args);
    t.equal(unopened.code, 1);
    t.same(
      (JSON.parse(unopened.stdout) as { findings: JsonObject[] }).findings.map((f) => [
        f['problem'],
        f['id'],
      ]),
      [['missing_in_b', '3']],
      'sealed content is not compared by its commitments',
    );

    log.readers.add(TOKEN);
    const opened = await run([...args, '--reader-token', TOKEN]);
    t.equal(opened.code, 1, opened.stderr);
    t.same(
      (JSON.parse(opened.stdout) as { findings: JsonObject[] }).findings.map((f) => [f['problem'], f['id']]),
      [['missing_in_b', '3']],
      'opened, the sides agree on everything both saw',
    );

    // sealedA: the result of id 1, then the params of id 2 (tools/list has no params).
    log.sealed.set(sealedA[1]!.ref.$sealed.sha256, sealValue('forged', new Uint8Array(16)).bytes);
    const forged = await run([...args, '--reader-token', TOKEN]);
    t.equal(forged.code, 1);
    t.match(
      forged.stderr,
      /search result [0-9]+: the sealed value at message\.params does not match its commitment/,
    );
    t.equal(forged.stdout, '', 'nothing compared from an answer that does not match');
    t.notMatch(forged.stderr + opened.stderr, 'RRRRRRRR', 'the token is never printed');
  },
);
