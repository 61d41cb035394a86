// `serve --tls-cert/--tls-key` listens HTTPS with TLS 1.2 as the minimum (embedded store; TLS does not
// depend on the store). The certificate is a throwaway self-signed one made with openssl.
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { eventually } from './fake-log.js';

const MAIN = fileURLToPath(new URL('../src/main.js', import.meta.url));

function get(url: string, ca: Buffer): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    https
      .get(url, { ca }, (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      })
      .on('error', reject);
  });
}

t.test('serve over HTTPS', async (t) => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'vigil-witness-tls-'));
  t.teardown(() => fs.rm(dir, { recursive: true, force: true }));
  const cert = path.join(dir, 'cert.pem');
  const key = path.join(dir, 'key.pem');
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-days',
      '1',
      '-subj',
      '/CN=127.0.0.1',
      '-addext',
      'subjectAltName=IP:127.0.0.1',
      '-keyout',
      key,
      '-out',
      cert,
    ],
    { stdio: 'ignore' },
  );
  const env = { PATH: process.env.PATH, VIGIL_DATA_DIR: path.join(dir, 'data') };
  execFileSync(process.execPath, [MAIN, 'init', '--name', 'tls.example/w'], { env, stdio: 'ignore' });
  const child = spawn(
    process.execPath,
    [MAIN, 'serve', '--port', '0', '--tls-cert', cert, '--tls-key', key],
    {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  const exit = new Promise<number | null>((resolve) => child.on('close', resolve));
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  const url = await eventually(
    'https listening',
    () => /Server listening at (https:\/\/127\.0\.0\.1:\d+)/.exec(output)?.[1],
    30_000,
  );
  const ca = await fs.readFile(cert);
  const res = await get(`${url}/healthz`, ca);
  t.equal(res.status, 200);
  t.same(JSON.parse(res.body), { status: 'ok' });
  // TLS 1.1 is refused.
  const port = Number(new URL(url).port);
  await t.rejects(
    new Promise((resolve, reject) => {
      const socket = tls.connect(
        { host: '127.0.0.1', port, ca, maxVersion: 'TLSv1.1', minVersion: 'TLSv1' },
        () => resolve(socket),
      );
      socket.on('error', reject);
    }),
  );
  child.kill('SIGTERM');
  t.equal(await exit, 0);
});

t.test('a cert without a key is an invalid setting', async (t) => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'vigil-witness-tls-'));
  t.teardown(() => fs.rm(dir, { recursive: true, force: true }));
  const child = spawn(process.execPath, [MAIN, 'serve', '--tls-cert', path.join(dir, 'x.pem')], {
    env: { PATH: process.env.PATH, VIGIL_DATA_DIR: dir },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  t.equal(code, 1);
  t.match(stderr, /invalid setting tlsCert: give both --tls-cert and --tls-key/);
});
