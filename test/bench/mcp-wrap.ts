// Added latency of `vigil mcp wrap` per tool call: the SDK client calls server-everything's echo tool
// directly and through the wrapper. Usage: node test/dist/bench/mcp-wrap.js KEY_FILE [LOG_URL]
// (without a reachable LOG_URL only spool mode is meaningful: it measures the local fsync path).
// Reports p50/p90/p99 per call for: direct, a bare byte relay (one more process hop, no recording),
// the wrapper in spool mode, and with LOG_URL the wrapper in sync mode.
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import * as fs from 'node:fs/promises';
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
  const client = new Client({ name: 'bench', version: '0' });
  await client.connect(new StdioClientTransport({ command, args, stderr: 'ignore' }));
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
const spool = await fs.mkdtemp(path.join(os.tmpdir(), 'vigil-bench-'));
const wrap = (mode: string): string[] => [
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
  path.join(spool, mode),
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
if (process.argv[3] !== undefined) await bench('wrap sync', process.execPath, wrap('sync'));
await fs.rm(spool, { recursive: true, force: true });
