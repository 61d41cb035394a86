import { parseVerifierKey } from '@vigil/client';
import { isWitnessError, WitnessError } from './errors.js';
import type { WitnessStore } from './store.js';

/**
 * Admin commands (`log add`, `log list`, `log disable`). The CLI runs them against the database
 * directly on both stores: on the embedded one through the running witness's PostgreSQL socket in the
 * data directory, or by starting it when the witness is down. A running witness re-reads its logs
 * (push: on every request; pull: every few seconds), so nothing needs telling.
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
