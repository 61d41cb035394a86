import fs from 'node:fs/promises';
import net from 'node:net';
import { parseVerifierKey } from '@vigil/client';
import { isWitnessError, WitnessError } from './errors.js';
import type { WitnessStore } from './store.js';

/**
 * Admin commands (`log add`, `log list`, `log disable`). On the embedded store the running `serve`
 * owns the data directory, so the CLI sends the command over `<data-dir>/admin.sock` (mode 0600) and the
 * server runs it against its store; with Postgres (or no server running) the CLI runs it directly.
 * Either way the same `runAdminCommand` does the work. Protocol: one JSON line each way.
 */
export type AdminCommand =
  | { cmd: 'log-add'; origin: string; vkey: string; url: string | null; pullIntervalMs: number }
  | { cmd: 'log-list' }
  | { cmd: 'log-disable'; origin: string };

export interface AdminLogView {
  origin: string;
  vkey: string;
  url: string | null;
  pullIntervalMs: number;
  disabled: boolean;
  size: string;
}

export type AdminResult =
  { ok: true; logs?: AdminLogView[]; message: string } | { ok: false; code: string; message: string };

/** Parses `5s`, `500ms`, `2m` or a bare number of seconds into milliseconds (at least 100 ms). */
export function parseInterval(text: string): number {
  const m = /^([1-9][0-9]*|0)(ms|s|m)?$/.exec(text);
  if (m === null) throw new WitnessError('REQUEST_MALFORMED', `interval ${text} is not like 5s, 500ms or 2m`);
  const n = Number(m[1]);
  const ms = m[2] === 'ms' ? n : m[2] === 'm' ? n * 60_000 : n * 1000;
  if (ms < 100) throw new WitnessError('REQUEST_MALFORMED', `interval ${text} is below 100ms`);
  return ms;
}

/** Checks and runs one admin command against the store. Never deletes a log's state. */
export async function runAdminCommand(store: WitnessStore, command: AdminCommand): Promise<AdminResult> {
  try {
    switch (command.cmd) {
      case 'log-add': {
        let key;
        try {
          key = parseVerifierKey(command.vkey);
        } catch (err) {
          throw new WitnessError('REQUEST_MALFORMED', `log vkey is malformed: ${String(err)}`);
        }
        if (key.type !== 1)
          throw new WitnessError('REQUEST_MALFORMED', 'log vkey must be an Ed25519 note key (type 0x01)');
        if (command.origin === '' || /\s/.test(command.origin)) {
          throw new WitnessError('REQUEST_MALFORMED', 'origin must be non-empty without spaces');
        }
        if (command.url !== null) {
          const url = new URL(command.url);
          if (url.protocol !== 'http:' && url.protocol !== 'https:') {
            throw new WitnessError('REQUEST_MALFORMED', `log url ${command.url} is not http(s)`);
          }
        }
        if (!Number.isInteger(command.pullIntervalMs) || command.pullIntervalMs < 100) {
          throw new WitnessError(
            'REQUEST_MALFORMED',
            `pull interval ${command.pullIntervalMs}ms is below 100ms`,
          );
        }
        await store.addLog(command);
        const note =
          key.name === command.origin ? '' : ` (note: key name ${key.name} differs from the origin)`;
        return { ok: true, message: `added log ${command.origin}${note}` };
      }
      case 'log-list': {
        const logs: AdminLogView[] = [];
        for (const log of await store.listLogs()) {
          const latest = await store.latest(log.origin);
          logs.push({
            origin: log.origin,
            vkey: log.vkey,
            url: log.url,
            pullIntervalMs: log.pullIntervalMs,
            disabled: log.disabled,
            size: (latest?.size ?? 0n).toString(),
          });
        }
        return { ok: true, logs, message: `${logs.length} logs` };
      }
      case 'log-disable': {
        if (!(await store.disableLog(command.origin))) {
          throw new WitnessError('ORIGIN_UNKNOWN', `unknown log ${command.origin}`);
        }
        return { ok: true, message: `disabled log ${command.origin} (its state is kept)` };
      }
    }
  } catch (err) {
    if (isWitnessError(err)) return { ok: false, code: err.code, message: err.message };
    if (err instanceof TypeError) return { ok: false, code: 'REQUEST_MALFORMED', message: err.message };
    throw err;
  }
}

/**
 * Serves admin commands on a Unix socket (mode 0600: only the witness's user may administer it). A
 * stale socket file from a dead process is replaced; the data-directory lock guarantees no live owner.
 */
export async function listenAdminSocket(socketPath: string, store: WitnessStore): Promise<net.Server> {
  await fs.rm(socketPath, { force: true });
  const server = net.createServer((socket) => {
    let buffer = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      buffer += chunk;
      if (buffer.length > 65_536) socket.destroy();
      const newline = buffer.indexOf('\n');
      if (newline < 0) return;
      const line = buffer.slice(0, newline);
      buffer = '';
      void (async () => {
        let result: AdminResult;
        try {
          result = await runAdminCommand(store, JSON.parse(line) as AdminCommand);
        } catch {
          result = { ok: false, code: 'INTERNAL', message: 'internal error' };
        }
        socket.end(`${JSON.stringify(result)}\n`);
      })();
    });
    socket.on('error', () => undefined);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () => resolve());
  });
  await fs.chmod(socketPath, 0o600);
  return server;
}

/**
 * Sends one command to a running witness. Resolves undefined when nobody listens on the socket (the
 * CLI then opens the store itself).
 */
export async function sendAdminCommand(
  socketPath: string,
  command: AdminCommand,
): Promise<AdminResult | undefined> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(socketPath);
    let buffer = '';
    socket.setEncoding('utf8');
    socket.on('connect', () => socket.write(`${JSON.stringify(command)}\n`));
    socket.on('data', (chunk: string) => (buffer += chunk));
    socket.on('end', () => {
      try {
        resolve(JSON.parse(buffer) as AdminResult);
      } catch (err) {
        reject(new Error('malformed answer from the admin socket', { cause: err }));
      }
    });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT' || err.code === 'ECONNREFUSED') resolve(undefined);
      else reject(err);
    });
  });
}
