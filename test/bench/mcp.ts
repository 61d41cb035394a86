// MCP wrapper and proxy overhead: runs test/bench/mcp-wrap.ts (owned by the MCP work; it calls
// server-everything's echo tool directly and through `vigil mcp wrap` in spool and sync mode, sync
// with --receipts, and over Streamable HTTP directly, through `vigil mcp proxy`, and with JWTs)
// against a real log, and turns its p50 lines into rows.
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { generateKey } from '@vigil/client';
import type { BenchLog } from './lib/log-server.js';
import { trackDir, untrackDir } from './lib/procs.js';
import { SkipError, type Row } from './lib/report.js';
import { runScript } from './lib/service.js';

const script = path.join(path.dirname(fileURLToPath(import.meta.url)), 'mcp-wrap.js');

export interface McpBenchOptions {
  /** A running log (the last store of the run). */
  log: BenchLog;
  /** Idle acknowledgement p50 of that log in this run (ms), for the sync-mode goal. */
  idleAckP50: number | undefined;
}

function p50(output: string, label: string): number {
  const m = new RegExp(`^${label}\\s+p50 ([0-9.]+) ms`, 'm').exec(output);
  if (m === null) throw new Error(`mcp-wrap printed no "${label}" line:\n${output.slice(-2000)}`);
  return Number(m[1]);
}

export async function benchMcp(o: McpBenchOptions): Promise<Row[]> {
  try {
    await fs.access(script);
  } catch {
    throw new SkipError('test/bench/mcp-wrap.ts is not built');
  }
  const log = o.log;
  const dir = trackDir(await fs.mkdtemp(path.join(os.tmpdir(), 'vigil-bench-mcp-')));
  try {
    const name = 'bench/mcp-wrap';
    const { signerKey, verifierKey } = generateKey(name);
    const keyFile = path.join(dir, 'emitter.key');
    await fs.writeFile(keyFile, `${signerKey}\n`, { mode: 0o600 });
    await log.addEmitters([{ name, vkey: verifierKey }]);
    const out = await runScript(script, [keyFile, `${log.base}/`]);
    const direct = p50(out, 'direct');
    const spool = p50(out, 'wrap spool');
    const sync = p50(out, 'wrap sync');
    const receipts = p50(out, 'wrap receipts');
    const httpDirect = p50(out, 'http direct');
    const proxySync = p50(out, 'proxy sync');
    const proxyJwt = p50(out, 'proxy jwt');
    const syncBudget = (o.idleAckP50 ?? Number.NaN) + 2;
    return [
      {
        bench: 'mcp wrap',
        store: log.store,
        what: `added p50 per echo call, spool mode (direct p50 ${direct.toFixed(2)} ms)`,
        figure: spool - direct,
        unit: 'ms',
        goal: '<= 1 ms',
        met: spool - direct <= 1,
      },
      {
        bench: 'mcp wrap',
        store: log.store,
        what: 'added p50 per echo call, sync mode',
        figure: sync - direct,
        unit: 'ms',
        goal: `<= idle ack p50 + 2 ms (${Number.isNaN(syncBudget) ? 'not measured' : `${syncBudget.toFixed(2)} ms`})`,
        met: Number.isNaN(syncBudget) ? undefined : sync - direct <= syncBudget,
      },
      {
        bench: 'mcp wrap',
        store: log.store,
        what: 'added p50 per echo call, sync mode with --receipts against without (same run)',
        figure: receipts - sync,
        unit: 'ms',
        goal: '-',
        met: undefined,
      },
      {
        bench: 'mcp proxy',
        store: log.store,
        what: `added p50 per echo call over Streamable HTTP, sync mode (direct p50 ${httpDirect.toFixed(2)} ms)`,
        figure: proxySync - httpDirect,
        unit: 'ms',
        goal: `<= idle ack p50 + 2 ms (${Number.isNaN(syncBudget) ? 'not measured' : `${syncBudget.toFixed(2)} ms`})`,
        met: Number.isNaN(syncBudget) ? undefined : proxySync - httpDirect <= syncBudget,
      },
      {
        bench: 'mcp proxy',
        store: log.store,
        what: 'added p50 per echo call, JWT validated on every request against none (same run)',
        figure: proxyJwt - proxySync,
        unit: 'ms',
        goal: '-',
        met: undefined,
      },
    ];
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
    untrackDir(dir);
  }
}
