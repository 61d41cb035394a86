// Added latency of `vigil mcp wrap` per tool call: the SDK client calls server-everything's echo tool
// directly and through the wrapper. Usage: node test/dist/bench/mcp-wrap.js KEY_FILE [LOG_URL]
// (without a reachable LOG_URL only spool mode is meaningful: it measures the local fsync path).
// Reports p50/p90/p99 per call for: direct, a bare byte relay (one more process hop, no recording),
// the wrapper in spool mode, and with LOG_URL the wrapper in sync mode, in sync mode with
// `--receipts`, and over Streamable HTTP: direct, through `vigil mcp proxy` (sync), and through the
// proxy validating a JWT bearer token on every request (`--jwt-public-key --require-auth`).
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import { type ChildProcess, spawn } from 'node:child_process';
import { generateKeyPairSync, sign } from 'node:crypto';
import * as fs from 'node:fs/promises';
import { createServer } from 'node:net';
import { createRequire } from 'node:module';
import * as os from 'node:os';
import * as path from 'node:path';
import { vigilMain } from '../helpers/log.js';

const require = createRequire(import.meta.url);
const everything = path.join(
  path.dirname(require.resolve('@modelcontextprotocol/server-everything/package.json')),
  'dist',
  'index.js',
);

async function bench(label: string, command: string, args: string[], calls = 300): Promise<void> {
  await benchOver(label, new StdioClientTransport({ command, args, stderr: 'ignore' }), calls);
}

async function benchOver(label: string, transport: Transport, calls = 300): Promise<void> {
  const client = new Client({ name: 'bench', version: '0' });
  await client.connect(transport);
  for (let i = 0; i < 20; i++) await client.callTool({ name: 'echo', arguments: { message: 'warm' } });
  const times: number[] = [];
  for (let i = 0; i < calls; i++) {
    const start = performance.now();
    await client.callTool({ name: 'echo', arguments: { message: `m${i}` } });
    times.push(performance.now() - start);
  }
  times.sort((a, b) => a - b);
  const at = (q: number): string =>
    times[Math.min(times.length - 1, Math.floor(q * times.length))]!.toFixed(3);
  const mean = (times.reduce((a, b) => a + b, 0) / calls).toFixed(3);
  process.stdout.write(
    `${label.padEnd(12)} p50 ${at(0.5)} ms  p90 ${at(0.9)} ms  p99 ${at(0.99)} ms  mean ${mean} ms (${calls} calls)\n`,
  );
  await client.close();
}

const [keyFile, logUrl = 'http://127.0.0.1:9/'] = process.argv.slice(2);
if (keyFile === undefined) {
  process.stderr.write('usage: node test/dist/bench/mcp-wrap.js KEY_FILE [LOG_URL]\n');
  process.exit(2);
}
const signerKeyFile: string = keyFile;
const spool = await fs.mkdtemp(path.join(os.tmpdir(), 'vigil-bench-'));
const wrap = (mode: string, extra: string[] = []): string[] => [
  vigilMain,
  'mcp',
  'wrap',
  '--log',
  logUrl,
  '--key',
  keyFile,
  '--mode',
  mode,
  '--spool-dir',
  path.join(spool, `${mode}${extra.join('')}`),
  ...extra,
  '--',
  process.execPath,
  everything,
  'stdio',
];
// A relay that only pipes bytes through one more process: the cost of the extra hop alone, so that
// `wrap` minus `relay` is what recording costs.
const relay = [
  '-e',
  "const c = require('node:child_process').spawn(process.argv[1], process.argv.slice(2), " +
    "{ stdio: ['pipe', 'pipe', 'inherit'] }); process.stdin.pipe(c.stdin); c.stdout.pipe(process.stdout); " +
    'c.on("exit", (code) => process.exit(code ?? 1));',
  process.execPath,
  everything,
  'stdio',
];
await bench('direct', process.execPath, [everything, 'stdio']);
await bench('relay', process.execPath, relay);
await bench('wrap spool', process.execPath, wrap('spool'));
if (process.argv[3] !== undefined) {
  await bench('wrap sync', process.execPath, wrap('sync'));
  await bench('wrap receipts', process.execPath, wrap('sync', ['--receipts']));
  await benchHttp();
}
await fs.rm(spool, { recursive: true, force: true });

/** Starts `node args`; resolves with the first match of `pattern` in its output. */
function start(
  args: string[],
  pattern: RegExp,
  env: NodeJS.ProcessEnv = {},
): Promise<[ChildProcess, string]> {
  const child = spawn(process.execPath, args, {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return new Promise((resolve, reject) => {
    let seen = '';
    const look = (chunk: Buffer): void => {
      seen += chunk.toString('utf8');
      const m = pattern.exec(seen);
      if (m !== null) resolve([child, m[1] ?? m[0]]);
    };
    child.stdout?.on('data', look);
    child.stderr?.on('data', look);
    child.once('exit', (code) => reject(new Error(`${args.join(' ')} exited ${code}: ${seen.slice(-2000)}`)));
  });
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** server-everything over Streamable HTTP: direct, through the proxy, through the proxy with JWTs. */
async function benchHttp(): Promise<void> {
  const children: ChildProcess[] = [];
  try {
    const port = await freePort();
    const [upstream] = await start([everything, 'streamableHttp'], /listening on port/, {
      PORT: String(port),
    });
    children.push(upstream);
    const upstreamUrl = `http://127.0.0.1:${port}/mcp`;
    const issuer = generateKeyPairSync('ed25519');
    const jwtKeyFile = path.join(spool, 'issuer.pub.pem');
    await fs.writeFile(jwtKeyFile, issuer.publicKey.export({ type: 'spki', format: 'pem' }));
    const b64 = (o: unknown): string => Buffer.from(JSON.stringify(o)).toString('base64url');
    const claims = {
      iss: 'https://issuer.bench',
      sub: 'bench',
      client_id: 'bench',
      exp: Math.floor(Date.now() / 1000) + 3600,
    };
    const head = `${b64({ alg: 'EdDSA', typ: 'at+jwt' })}.${b64(claims)}`;
    const token = `${head}.${sign(null, Buffer.from(head), issuer.privateKey).toString('base64url')}`;
    const proxy = async (name: string, extra: string[]): Promise<string> => {
      const [child, url] = await start(
        [
          vigilMain,
          'mcp',
          'proxy',
          '--upstream',
          upstreamUrl,
          '--listen',
          '127.0.0.1:0',
          '--log',
          logUrl,
          '--key',
          signerKeyFile,
          '--mode',
          'sync',
          '--spool-dir',
          path.join(spool, name),
          ...extra,
        ],
        /listening on (\S+) ->/,
      );
      children.push(child);
      return url;
    };
    const plain = await proxy('proxy', []);
    const validating = await proxy('proxy-jwt', [
      '--jwt-public-key',
      jwtKeyFile,
      '--jwt-issuer',
      'https://issuer.bench',
      '--require-auth',
    ]);
    await benchOver('http direct', new StreamableHTTPClientTransport(new URL(upstreamUrl)));
    await benchOver('proxy sync', new StreamableHTTPClientTransport(new URL(plain)));
    await benchOver(
      'proxy jwt',
      new StreamableHTTPClientTransport(new URL(validating), {
        requestInit: { headers: { authorization: `Bearer ${token}` } },
      }),
    );
  } finally {
    // Each proxy flushes its spool as it stops: wait for that, so the spool is not removed under it.
    await Promise.all(children.map(stopChild));
  }
}

/** SIGTERM, then resolves once the process exited (SIGKILL after 10 s). */
function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill('SIGTERM');
  });
}
