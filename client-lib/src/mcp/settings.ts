/**
 * Settings shared by `vigil mcp wrap` and `vigil mcp proxy`: from flags, else the environment
 * (`VIGIL_LOG_URL`, `VIGIL_KEY_FILE`, `VIGIL_POLICY_FILE`, `VIGIL_MODE`, `VIGIL_SPOOL_DIR`, `VIGIL_SEAL`,
 * `VIGIL_RECEIPTS`), else a
 * JSON config file (`--config`, `VIGIL_CONFIG`, default `~/.config/vigil/config.json` when present).
 * The point is the drop-in: an MCP client config that ran `npx server args` runs
 * `vigil mcp wrap -- npx server args` with nothing else changed. Node only.
 */
import { readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { isSealLevel, type SealLevel } from './seal.js';
import type { AuditMode } from './types.js';

/** The capture settings after every source was applied. */
export interface CaptureSettings {
  logUrl: string;
  keyFile: string;
  policyFile?: string;
  mode: AuditMode;
  /** Base spool directory; each running capture takes a free numbered slot under `<base>/<emitter>`. */
  spoolDir: string;
  /** Sync mode: how long a request waits for the log before it is refused (ms). */
  syncTimeoutMs: number;
  /** What records seal (mcp/seal.ts); default `payload`. */
  seal: SealLevel;
  /** Sync mode: answers carry the log's receipts in `_meta` (mcp/receipt-meta.ts); default off. */
  receipts: boolean;
}

/** Flag values as given (undefined when absent). */
export interface SettingFlags {
  log?: string;
  key?: string;
  policy?: string;
  mode?: string;
  spoolDir?: string;
  timeout?: string;
  config?: string;
  seal?: string;
  /** `--receipts` given. */
  receipts?: boolean;
}

/** A settings problem: the message says what to do. */
export class SettingsError extends Error {
  override readonly name = 'SettingsError';
}

interface ConfigFile {
  log?: string;
  key?: string;
  policy?: string;
  mode?: string;
  spoolDir?: string;
  timeoutMs?: number;
  seal?: string;
  receipts?: boolean;
}

/**
 * Resolves the settings. Relative paths in a config file are taken relative to the file. Throws
 * `SettingsError` naming the missing setting and the three ways to give it.
 */
export async function resolveSettings(
  flags: SettingFlags,
  env: Record<string, string | undefined>,
): Promise<CaptureSettings> {
  const home = env['HOME'] ?? os.homedir();
  const explicitConfig = flags.config ?? env['VIGIL_CONFIG'];
  const configPath =
    explicitConfig ?? path.join(env['XDG_CONFIG_HOME'] ?? path.join(home, '.config'), 'vigil', 'config.json');
  let config: ConfigFile = {};
  try {
    config = JSON.parse(await readFile(configPath, 'utf8')) as ConfigFile;
    if (typeof config !== 'object' || config === null)
      throw new SettingsError(`${configPath}: not a JSON object`);
  } catch (err) {
    if (err instanceof SettingsError) throw err;
    const missing = (err as NodeJS.ErrnoException).code === 'ENOENT';
    if (!missing || explicitConfig !== undefined) {
      throw new SettingsError(`cannot read config file ${configPath}: ${(err as Error).message}`);
    }
  }
  const fromConfig = (v: string | undefined): string | undefined =>
    v === undefined ? undefined : path.resolve(path.dirname(configPath), v);

  const logUrl = flags.log ?? env['VIGIL_LOG_URL'] ?? config.log;
  const keyFile = flags.key ?? env['VIGIL_KEY_FILE'] ?? fromConfig(config.key);
  const policyFile = flags.policy ?? env['VIGIL_POLICY_FILE'] ?? fromConfig(config.policy);
  const mode = flags.mode ?? env['VIGIL_MODE'] ?? config.mode ?? 'sync';
  const spoolDir =
    flags.spoolDir ??
    env['VIGIL_SPOOL_DIR'] ??
    fromConfig(config.spoolDir) ??
    path.join(env['XDG_STATE_HOME'] ?? path.join(home, '.local', 'state'), 'vigil', 'spool');
  const seal = flags.seal ?? env['VIGIL_SEAL'] ?? config.seal ?? 'payload';
  const receiptsText =
    flags.receipts === true ? 'true' : (env['VIGIL_RECEIPTS'] ?? String(config.receipts ?? false));
  const timeoutText = flags.timeout ?? env['VIGIL_SYNC_TIMEOUT_MS'] ?? String(config.timeoutMs ?? 5000);

  if (logUrl === undefined) {
    throw new SettingsError('no log URL: pass --log URL, set VIGIL_LOG_URL, or put "log" in the config file');
  }
  if (keyFile === undefined) {
    throw new SettingsError(
      'no emitter key: pass --key FILE, set VIGIL_KEY_FILE, or put "key" in the config file',
    );
  }
  if (mode !== 'sync' && mode !== 'spool') throw new SettingsError(`mode must be sync or spool, not ${mode}`);
  if (!isSealLevel(seal)) throw new SettingsError(`seal must be none, payload or all, not ${String(seal)}`);
  if (!/^[1-9][0-9]*$/.test(timeoutText))
    throw new SettingsError(`timeout must be a positive integer (ms), not ${timeoutText}`);
  if (receiptsText !== 'true' && receiptsText !== 'false' && receiptsText !== '1' && receiptsText !== '0')
    throw new SettingsError(`receipts must be true or false, not ${receiptsText}`);
  const receipts = receiptsText === 'true' || receiptsText === '1';
  if (receipts && mode !== 'sync')
    throw new SettingsError('receipts need sync mode: only then does the log answer before the server does');
  const settings: CaptureSettings = {
    logUrl,
    keyFile,
    mode,
    spoolDir,
    syncTimeoutMs: Number(timeoutText),
    seal,
    receipts,
  };
  if (policyFile !== undefined) settings.policyFile = policyFile;
  return settings;
}
