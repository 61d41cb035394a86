/**
 * Opens a capture on a real emitter from resolved settings: reads the key and policy files, takes a
 * free spool slot, and creates the emitter whose `stream.open` names the capture. Node only.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { createEmitter, type Emitter } from '../emitter/emitter.js';
import { SpoolLockedError } from '../emitter/spool.js';
import { parseSignerKey } from '../note/keys.js';
import { createCapture, type McpCapture } from './capture.js';
import { RecordSealer } from './seal.js';
import type { CaptureSettings } from './settings.js';
import { sinkFromEmitter } from './sink.js';
import type { JsonObject, McpTransportName } from './types.js';

/** Spool slots tried under `<spoolDir>/<emitter>` before giving up (one per concurrent capture). */
const SPOOL_SLOTS = 64;

/** An open capture and the emitter behind it. */
export interface OpenCapture {
  capture: McpCapture;
  emitter: Emitter;
  /** Ends open sessions, writes `stream.close` and waits (bounded) for the log; never throws. */
  close(reason: string): Promise<void>;
}

/**
 * Opens the emitter in spool mode (its per-record mode comes from the capture: sync-mode requests are
 * emitted acknowledged) and the capture on top. `open` goes into the `stream.open` record, sealed at
 * the settings' level (the wrapped server's `command` and `args`; an `upstream` URL stays clear), its
 * sealed bytes beside it. Warnings
 * (retries, torn spool tails, trust on first use) go to `onWarning`, never to stdout: on stdio, stdout
 * is the MCP channel.
 */
export async function openCapture(
  settings: CaptureSettings,
  transport: McpTransportName,
  open: Record<string, unknown>,
  onWarning: (message: string) => void,
): Promise<OpenCapture> {
  const key = (await readFile(settings.keyFile, 'utf8')).trim();
  const { name } = parseSignerKey(key);
  const policy = settings.policyFile === undefined ? undefined : await readFile(settings.policyFile, 'utf8');
  const openBlobs: Record<string, Uint8Array> = {};
  const sealedOpen = new RecordSealer(settings.seal).sealFields(open as JsonObject, openBlobs);
  const base = path.join(settings.spoolDir, name.replace(/[^A-Za-z0-9._-]/g, '_'));
  let emitter: Emitter | undefined;
  for (let slot = 0; slot < SPOOL_SLOTS && emitter === undefined; slot++) {
    try {
      emitter = await createEmitter({
        logUrl: settings.logUrl,
        key,
        spoolDir: path.join(base, String(slot)),
        mode: 'spool',
        syncTimeoutMs: settings.syncTimeoutMs,
        open: { capture: transport, mode: settings.mode, seal: settings.seal, ...sealedOpen },
        ...(Object.keys(openBlobs).length > 0 ? { openBlobs } : {}),
        ...(policy === undefined ? {} : { policy }),
        onWarning: (err) => onWarning(err.message),
        onError: (err) => onWarning(`emitter alarm: ${err.message}`),
      });
    } catch (err) {
      if (!(err instanceof SpoolLockedError)) throw err;
    }
  }
  if (emitter === undefined) throw new Error(`all ${SPOOL_SLOTS} spool slots under ${base} are in use`);
  const opened = emitter;
  const sink = sinkFromEmitter({
    // Blobs ride along in the options: the emitter spools them with the record and submits them.
    emit: (fields, options) => opened.emit(fields, options ?? {}),
    close: () => opened.close({ timeoutMs: 5000 }),
  });
  const capture = createCapture({
    sink,
    transport,
    mode: settings.mode,
    syncTimeoutMs: settings.syncTimeoutMs,
    seal: settings.seal,
    receipts: settings.receipts,
    onError: (err) => onWarning(`could not record: ${String(err)}`),
  });
  return {
    capture,
    emitter: opened,
    async close(reason: string): Promise<void> {
      try {
        await capture.close(reason);
      } catch (err) {
        onWarning(`${(err as Error).message}; they will be shipped by the next run using ${base}`);
      }
    },
  };
}
