// Secrets, TLS and authorization against the real processes. The log and a witness run over HTTPS
// with a certificate made in the test (openssl), at LOG_LEVEL=debug so they log as much as they can.
// The test captures ALL their output, every CLI's output, every HTTP response body (errors, metrics,
// entries, checkpoints) and then searches it for the log, witness and emitter private keys (as key
// text, base64 and hex seed) and for a bearer token sent in every request. Also: key files are 0600,
// TLS below 1.2 is refused, only registered and unrevoked emitters can write, and no administration
// is reachable over HTTP.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs/promises';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import t from 'tap';
import { generateKey, parseSignerKey, signRecord } from '@vigil/client';
import { useNodeCrypto } from '@vigil/client/node';
import { runNode, serverMain, until, vigilMain } from '../helpers/log.js';

useNodeCrypto();

const witnessMain = path.join(path.dirname(serverMain), '../../../witness/dist/src/main.js');
const TOKEN = `vigil-test-bearer-${Math.random().toString(36).slice(2)}-do-not-log`;

/** Everything observed during the test, to be searched for secrets at the end. */
const observed: string[] = [];

interface Served {
  child: ChildProcess;
  port: number;
  output: () => string;
  exit: Promise<number | null>;
}

/** Spawns a service and waits until it prints an https URL with its port. */
async function serve(script: string, args: string[], env: NodeJS.ProcessEnv): Promise<Served> {
  const child = spawn(process.execPath, [script, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (out += d));
  const exit = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  let exited = false;
  void exit.then(() => (exited = true));
  let port = 0;
  await until(
    `${path.basename(path.dirname(path.dirname(path.dirname(script))))} listening`,
    () => {
      if (exited) throw new Error(`exited during start-up:\n${out}`);
      const m = /https:\/\/127\.0\.0\.1:([0-9]+)/.exec(out);
      if (m === null) return false;
      port = Number(m[1]);
      return true;
    },
    60_000,
  );
  return { child, port, output: () => out, exit };
}

interface Res {
  status: number;
  body: string;
}

/** An HTTPS request trusting only the test CA, always carrying the bearer token. */
function request(
  ca: Buffer,
  port: number,
  method: string,
  url: string,
  body?: string,
  type = 'application/json',
): Promise<Res> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: '127.0.0.1',
        port,
        method,
        path: url,
        ca,
        headers: {
          authorization: `Bearer ${TOKEN}`,
          cookie: `session=${TOKEN}`,
          ...(body === undefined ? {} : { 'content-type': type }),
        },
      },
      (res) => {
        let data = '';
        res.setEncoding('utf8').on('data', (d: string) => (data += d));
        res.on('end', () => {
          observed.push(data);
          resolve({ status: res.statusCode ?? 0, body: data });
        });
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** Resolves the negotiated protocol, or the error code when the handshake fails. */
function handshake(ca: Buffer, port: number, options: tls.ConnectionOptions): Promise<string> {
  return new Promise((resolve) => {
    const socket = tls.connect({ host: '127.0.0.1', port, ca, servername: 'localhost', ...options }, () => {
      const protocol = socket.getProtocol() ?? 'none';
      socket.end();
      resolve(protocol);
    });
    socket.on('error', (err: NodeJS.ErrnoException) => resolve(`error ${err.code ?? err.message}`));
  });
}

async function mode(file: string): Promise<number> {
  return (await fs.stat(file)).mode & 0o777;
}

t.test('log and witness over TLS: no secret in any output, keys 0600, TLS 1.2+, authorization', async (t) => {
  t.setTimeout(180_000);
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'vigil-secrets-'));
  t.teardown(() => fs.rm(dir, { recursive: true, force: true }));
  const cert = path.join(dir, 'cert.pem');
  const tlsKey = path.join(dir, 'tls-key.pem');
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-days',
      '1',
      '-subj',
      '/CN=localhost',
      '-addext',
      'subjectAltName=DNS:localhost,IP:127.0.0.1',
      '-keyout',
      tlsKey,
      '-out',
      cert,
    ],
    { stdio: 'ignore' },
  );
  const ca = await fs.readFile(cert);
  const baseEnv = { PATH: process.env.PATH, LOG_LEVEL: 'debug', NODE_EXTRA_CA_CERTS: cert };

  // The log: embedded store, quick start over HTTPS.
  const logDir = path.join(dir, 'log');
  const log = await serve(
    serverMain,
    [
      'start',
      '--data-dir',
      logDir,
      '--host',
      '127.0.0.1',
      '--port',
      '0',
      '--origin',
      'secrets.test/log',
      '--tls-cert',
      cert,
      '--tls-key',
      tlsKey,
    ],
    baseEnv,
  );
  t.teardown(async () => {
    if (log.child.exitCode === null) log.child.kill('SIGKILL');
    await log.exit;
  });
  t.equal(await mode(path.join(logDir, 'log.key')), 0o600, 'log.key is 0600');

  // An emitter key from the CLI: written 0600, only the vkey printed.
  const emitterKeyFile = path.join(dir, 'emitter.key');
  const keygen = await runNode(
    vigilMain,
    ['keygen', 'secrets.test/emitter', '--out', emitterKeyFile],
    baseEnv,
  );
  observed.push(keygen.stdout, keygen.stderr);
  t.equal(keygen.code, 0, 'vigil keygen');
  t.equal(await mode(emitterKeyFile), 0o600, 'the emitter key file is 0600');
  const emitterKey = (await fs.readFile(emitterKeyFile, 'utf8')).trim();
  const emitterVkey = keygen.stdout.trim();

  // Authorization: an unregistered emitter is refused.
  const record = (seq: number, stream = '7b0c1f8e-3c1a-4f7e-9a51-9f0e6a1d2c3b') => ({
    v: 1,
    stream,
    seq,
    time: new Date().toISOString(),
    kind: seq === 0 ? 'stream.open' : 'app.event',
  });
  const submit = (key: string, name: string, rec: Record<string, unknown>) =>
    request(
      ca,
      log.port,
      'POST',
      '/v1/entries',
      JSON.stringify({ entries: [{ emitter: name, record: rec, sig: signRecord(rec, key) }] }),
    );
  let res = await submit(emitterKey, 'secrets.test/emitter', record(0));
  t.ok(res.status >= 400 && res.status < 500, `unregistered emitter refused (${res.status} ${res.body})`);
  const add = await runNode(
    serverMain,
    ['emitter', 'add', 'secrets.test/emitter', emitterVkey, '--data-dir', logDir],
    baseEnv,
  );
  observed.push(add.stdout, add.stderr);
  t.equal(add.code, 0, 'emitter add while the log runs');
  const first = record(0);
  res = await submit(emitterKey, 'secrets.test/emitter', first);
  t.equal(res.status, 200, `registered emitter accepted: ${res.body.slice(0, 200)}`);
  // A record signed by another key under the registered name is refused.
  const impostor = generateKey('secrets.test/emitter');
  res = await submit(
    impostor.signerKey,
    'secrets.test/emitter',
    record(0, '11111111-2222-4333-8444-555555555555'),
  );
  t.ok(res.status >= 400 && res.status < 500, `wrong key under a registered name refused (${res.status})`);
  // Revocation: refused from then on, past entries stay.
  const revoke = await runNode(
    serverMain,
    ['emitter', 'revoke', 'secrets.test/emitter', '--data-dir', logDir],
    baseEnv,
  );
  observed.push(revoke.stdout, revoke.stderr);
  t.equal(revoke.code, 0, 'emitter revoke');
  res = await submit(emitterKey, 'secrets.test/emitter', record(0, '99999999-2222-4333-8444-555555555555'));
  t.ok(
    res.status >= 400 && res.status < 500,
    `revoked emitter refused (${res.status} ${res.body.slice(0, 200)})`,
  );
  res = await request(ca, log.port, 'GET', '/v1/entries/0');
  t.equal(res.status, 200, "the revoked emitter's past entry is still served");

  // No administration over HTTP: nothing answers 2xx to admin-looking requests, bearer or not.
  for (const [method, url, body] of [
    ['POST', '/v1/emitters', JSON.stringify({ name: 'x', vkey: emitterVkey })],
    ['PUT', '/v1/emitters/secrets.test%2Femitter', '{}'],
    ['DELETE', '/v1/emitters/secrets.test%2Femitter', undefined],
    ['POST', '/v1/witnesses', '{}'],
    ['POST', '/admin', '{}'],
    ['POST', '/v1/admin/emitter/add', '{}'],
    ['POST', '/v1/quorum', '{"quorum":0}'],
    ['GET', '/v1/emitters/secrets.test%2Femitter/revoke', undefined],
  ] as const) {
    const r = await request(ca, log.port, method, url, body);
    t.ok(r.status >= 400 && r.status < 500, `log: ${method} ${url} is not an admin endpoint (${r.status})`);
  }
  const info = JSON.parse((await request(ca, log.port, 'GET', '/v1/log')).body) as {
    emitters?: { name: string; revoked: boolean }[];
  };
  t.same(
    info.emitters?.find((e) => e.name === 'secrets.test/emitter')?.revoked,
    true,
    'still revoked after the HTTP attempts',
  );

  // Errors, metrics and the other read endpoints, all observed.
  for (const url of [
    '/metrics',
    '/checkpoint',
    '/v1/log',
    '/v1/entries/0',
    '/v1/receipt/0',
    '/v1/entries/999',
    '/nope',
    '/tile/entries/000.p/1',
  ]) {
    await request(ca, log.port, 'GET', url);
  }
  await request(ca, log.port, 'POST', '/v1/entries', '{"entries":[{"emitter":"x"');
  await request(ca, log.port, 'POST', '/v1/entries', 'x'.repeat(2_000_000));

  // TLS: 1.0 and 1.1 refused, 1.2 and 1.3 accepted.
  t.match(
    await handshake(ca, log.port, { minVersion: 'TLSv1', maxVersion: 'TLSv1.1' }),
    /^error/,
    'log refuses TLS 1.1',
  );
  t.equal(
    await handshake(ca, log.port, { minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2' }),
    'TLSv1.2',
    'log speaks TLS 1.2',
  );
  t.equal(await handshake(ca, log.port, { minVersion: 'TLSv1.3' }), 'TLSv1.3', 'log speaks TLS 1.3');

  // The witness, over TLS too.
  const wDir = path.join(dir, 'witness');
  const wEnv = { ...baseEnv, VIGIL_DATA_DIR: wDir };
  const wInit = await runNode(witnessMain, ['init', '--name', 'secrets.test/witness'], wEnv);
  observed.push(wInit.stdout, wInit.stderr);
  t.equal(wInit.code, 0, 'vigil-witness init');
  t.equal(await mode(path.join(wDir, 'witness.key')), 0o600, 'witness.key is 0600');
  const logInfo = JSON.parse((await request(ca, log.port, 'GET', '/v1/log')).body) as {
    vkey: string;
    origin: string;
  };
  const wAdd = await runNode(
    witnessMain,
    [
      'log',
      'add',
      logInfo.origin,
      logInfo.vkey,
      '--url',
      `https://localhost:${log.port}/`,
      '--pull-interval',
      '200ms',
    ],
    wEnv,
  );
  observed.push(wAdd.stdout, wAdd.stderr);
  t.equal(wAdd.code, 0, 'witness log add');
  const witness = await serve(
    witnessMain,
    ['serve', '--port', '0', '--tls-cert', cert, '--tls-key', tlsKey],
    wEnv,
  );
  t.teardown(async () => {
    if (witness.child.exitCode === null) witness.child.kill('SIGKILL');
    await witness.exit;
  });
  // The puller reaches the log over TLS (NODE_EXTRA_CA_CERTS) and cosigns it.
  await until(
    'witness cosigned the log',
    async () => {
      const r = await request(ca, witness.port, 'GET', '/v1/witness');
      return /"size":"[1-9]/.test(r.body);
    },
    60_000,
  );
  for (const [method, url] of [
    ['POST', '/add-checkpoint'],
    ['POST', '/v1/logs'],
    ['DELETE', '/v1/logs/x'],
    ['GET', '/v1/evidence'],
    ['GET', '/metrics'],
  ] as const) {
    const r = await request(
      ca,
      witness.port,
      method,
      url,
      method === 'POST' ? 'old 0\n\nnot a note\n' : undefined,
      'text/plain',
    );
    // Evidence and metrics are public reads (OPERATIONS.md); their bodies join the secret search.
    if (url === '/v1/evidence' || url === '/metrics')
      t.equal(r.status, 200, `witness: ${method} ${url} -> ${r.status}`);
    else t.ok(r.status >= 400 && r.status < 500, `witness: ${method} ${url} -> ${r.status}`);
  }
  t.match(
    await handshake(ca, witness.port, { minVersion: 'TLSv1', maxVersion: 'TLSv1.1' }),
    /^error/,
    'witness refuses TLS 1.1',
  );
  t.equal(
    await handshake(ca, witness.port, { minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2' }),
    'TLSv1.2',
    'witness speaks TLS 1.2',
  );

  // Graceful stop so shutdown output is captured too.
  witness.child.kill('SIGTERM');
  log.child.kill('SIGTERM');
  t.equal(await witness.exit, 0, 'witness exits 0 on SIGTERM');
  t.equal(await log.exit, 0, 'log exits 0 on SIGTERM');
  observed.push(log.output(), witness.output());

  // The search: every private key in every encoding, and the bearer token.
  const secrets: [string, string][] = [['bearer token', TOKEN]];
  for (const [what, file] of [
    ['log key', path.join(logDir, 'log.key')],
    ['witness key', path.join(wDir, 'witness.key')],
    ['emitter key', emitterKeyFile],
  ] as const) {
    const text = (await fs.readFile(file, 'utf8')).trim();
    const seed = Buffer.from(parseSignerKey(text).seed);
    secrets.push(
      [`${what} text`, text],
      // PRIVATE+KEY+<name>+<key id>+<base64>: the base64 may itself hold '+'.
      [`${what} base64 body`, text.split('+').slice(4).join('+')],
      [`${what} seed base64`, seed.toString('base64')],
      [`${what} seed hex`, seed.toString('hex')],
    );
  }
  const pem = (await fs.readFile(tlsKey, 'utf8'))
    .split('\n')
    .filter((l) => l !== '' && !l.startsWith('-----'));
  secrets.push(['TLS private key', pem.join('')]);
  const all = observed.join('\n');
  t.ok(all.length > 5000, `searched ${all.length} characters of output`);
  t.match(all, /secrets\.test\/emitter/, 'the captured output is the real thing (names the emitter)');
  for (const [what, secret] of secrets) {
    t.ok(secret.length >= 32, `${what}: searched whole (${secret.length} characters)`);
    t.notOk(all.includes(secret), `${what} appears nowhere in logs, errors, records or metrics`);
  }
  t.notOk(/PRIVATE\+KEY\+/.test(all), 'no PRIVATE+KEY+ text anywhere');
  t.notOk(/BEGIN (EC )?PRIVATE KEY/.test(all), 'no PEM private key anywhere');
});
