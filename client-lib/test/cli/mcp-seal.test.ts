// `vigil mcp wrap --seal ...` as a process against the in-test log: what reaches the log's entries
// (public) and what only travels as S beside them. Markers planted in the params, the answer, the
// server's stderr, its command line and its environment appear in no entry under payload (the
// default) and all; `all` also hides the tool name; `none` records them in clear. A bad --seal value
// is refused before anything runs (exit 2), for wrap and proxy.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import t, { type Test } from 'tap';
import { generateKey } from '../../src/index.js';
import { useNodeCrypto } from '../../src/node.js';
import { isSealedRef, openSealed, type SealedRef } from '../../src/sealed.js';
import type { JsonObject, JsonValue } from '../../src/mcp/types.js';
import { startFakeLog } from '../helpers/fake-log.js';

useNodeCrypto();
// Each run starts the CLI and a server process and ships its stream: slow on a loaded machine.
t.setTimeout(240_000);

const here = path.dirname(fileURLToPath(import.meta.url));
const cli = path.join(here, '../../src/cli/main.js');
const server = path.join(here, '../mcp/fixtures/seal-server.js');

function run(
  args: string[],
  input: string,
  env: Record<string, string> = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cli, ...args], {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { ...process.env, NO_COLOR: '1', ...env },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
    child.stdin.end(input);
  });
}

const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'vigil-mcp-seal-'));
t.teardown(() => fs.rm(dir, { recursive: true, force: true }));
const key = generateKey('capture.example/wrap');
const log = await startFakeLog({ emitters: new Map([['capture.example/wrap', key.verifierKey]]) });
t.teardown(() => log.close());
const keyFile = path.join(dir, 'wrap.key');
await fs.writeFile(keyFile, key.signerKey + '\n', { mode: 0o600 });
const policyFile = path.join(dir, 'policy');
await fs.writeFile(policyFile, log.policy);

/** Every `$sealed` commitment in a value. */
function sealedRefs(value: JsonValue, out: SealedRef[] = []): SealedRef[] {
  if (isSealedRef(value)) out.push(value);
  else if (Array.isArray(value)) for (const v of value) sealedRefs(v, out);
  else if (typeof value === 'object' && value !== null)
    for (const v of Object.values(value)) sealedRefs(v, out);
  return out;
}

/**
 * Runs one wrapped session at `seal` (undefined: the default) with fresh markers; returns the records
 * of that run's stream as the log holds them, the opened S of their commitments, and the markers.
 */
async function wrappedRun(t: Test, seal: string | undefined) {
  const tag = randomBytes(6).toString('hex');
  const mark = {
    params: `prm-${tag}`,
    result: `res-${tag}`,
    argv: `arg-${tag}`,
    envName: `SEAL_TEST_ENV_${tag.toUpperCase()}`,
    envValue: `envval-${tag}`,
  };
  const before = log.entries.length;
  const request = {
    jsonrpc: '2.0',
    id: 1,
    method: 'tools/call',
    params: { name: 'probe_tool', arguments: { secret: mark.params } },
  };
  const r = await run(
    [
      'mcp',
      'wrap',
      '--log',
      log.url,
      '--key',
      keyFile,
      '--policy',
      policyFile,
      '--mode',
      'spool',
      '--spool-dir',
      path.join(dir, `spool-${tag}`),
      ...(seal === undefined ? [] : ['--seal', seal]),
      '--',
      process.execPath,
      server,
      `--secret=${mark.argv}`,
    ],
    JSON.stringify(request) + '\n',
    { [mark.envName]: mark.envValue, SEAL_TEST_RESULT: mark.result },
  );
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, `answer ${mark.result}`, 'the client got the answer');
  const entries = log.entries.slice(before).map((e) => JSON.parse(new TextDecoder().decode(e)) as JsonObject);
  const records = entries.map((e) => e['record'] as JsonObject);
  t.ok(
    records.some((x) => x['kind'] === 'stream.close'),
    'the whole stream reached the log before the wrapper exited',
  );
  const opened: string[] = [];
  for (const ref of sealedRefs(records as JsonValue)) {
    const b64 = log.blobs.get(ref.$sealed.sha256);
    if (b64 === undefined) throw new Error(`the log got no S for ${ref.$sealed.sha256}`);
    opened.push(JSON.stringify(openSealed(ref, Buffer.from(b64, 'base64'))));
  }
  const publicText = log.entries
    .slice(before)
    .map((e) => new TextDecoder().decode(e))
    .join('\n');
  return { records, publicText, sealedText: opened.join('\n'), mark };
}

for (const seal of [undefined, 'all'] as const) {
  t.test(`--seal ${seal ?? '(default)'}: content only in S, never in an entry`, async (t) => {
    const { records, publicText, sealedText, mark } = await wrappedRun(t, seal);
    for (const m of [mark.params, mark.result, mark.argv, mark.envName]) {
      t.notOk(publicText.includes(m), `${m} is in no entry`);
      t.ok(sealedText.includes(m), `${m} is in an S`);
    }
    t.notOk(publicText.includes(mark.envValue), 'environment values are never recorded');
    t.notOk(sealedText.includes(mark.envValue), 'not even sealed');
    const open = records.find((x) => x['kind'] === 'stream.open')!;
    t.ok(isSealedRef(open['command']), 'stream.open command sealed');
    t.ok(isSealedRef(open['args']), 'stream.open args sealed');
    t.equal(open['seal'], seal ?? 'payload', 'stream.open says the level');
    const call = records.find(
      (x) => x['kind'] === 'mcp.message' && x['messageType'] === 'request',
    ) as JsonObject;
    t.same(Object.keys(call['principal'] as JsonObject).sort(), ['claims', 'type']);
    t.equal((call['principal'] as JsonObject)['type'], 'process');
    t.equal(call['mcp.method.name'], 'tools/call');
    if (seal === 'all') {
      t.notOk(publicText.includes('probe_tool'), 'all: the tool name is in no entry');
      t.ok(isSealedRef(call['gen_ai.tool.name']));
    } else {
      t.equal(call['gen_ai.tool.name'], 'probe_tool', 'payload: the tool name stays searchable');
    }
  });
}

t.test('--seal none: the content is recorded in clear', async (t) => {
  const { records, publicText, mark } = await wrappedRun(t, 'none');
  for (const m of [mark.params, mark.result, mark.argv, mark.envName, 'probe_tool']) {
    t.ok(publicText.includes(m), `${m} is in an entry`);
  }
  const open = records.find((x) => x['kind'] === 'stream.open')!;
  t.equal(open['command'], process.execPath);
  const sealed = sealedRefs(records as JsonValue);
  const wires = records.flatMap((x) => (isSealedRef(x['wire']) ? [x['wire']] : []));
  t.same(sealed, wires, 'the only sealed values are the wire commitments');
});

for (const sub of ['wrap', 'proxy']) {
  t.test(`${sub}: a bad --seal value exits 2 with a clear message`, async (t) => {
    const common = ['--log', log.url, '--key', keyFile, '--policy', policyFile, '--seal', 'secret'];
    const args =
      sub === 'wrap'
        ? ['mcp', 'wrap', ...common, '--', process.execPath, server]
        : ['mcp', 'proxy', '--upstream', 'http://127.0.0.1:9/mcp', '--listen', '127.0.0.1:0', ...common];
    const before = log.entries.length;
    const r = await run(args, '');
    t.equal(r.code, 2);
    t.match(r.stderr, /seal must be none, payload or all, not secret/);
    t.equal(log.entries.length, before, 'nothing was recorded');
  });
}
