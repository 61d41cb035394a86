// The log key and log creation. The key file holds the signer key text (PRIVATE+KEY+origin+...),
// mode 0600; it is read once at start and never logged.
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import {
  emptyRoot,
  formatCheckpoint,
  generateKey,
  parseSignerKey,
  signNote,
  verifierKeyFromSignerKey,
} from '@vigil/client';
import type { Kysely } from 'kysely';
import type { Database } from '../db/schema.js';
import { getLog, insertLog } from '../db/repository.js';

/** Writes a new Ed25519 log key named `origin` to `keyFile` (fails if the file exists). Returns the vkey. */
export async function createKeyFile(keyFile: string, origin: string): Promise<string> {
  const { signerKey, verifierKey } = generateKey(origin);
  // A fresh host (migrate against DATABASE_URL, then init) may have no data directory yet.
  await mkdir(dirname(keyFile), { recursive: true, mode: 0o700 });
  await writeFile(keyFile, `${signerKey}\n`, { mode: 0o600, flag: 'wx' });
  return verifierKey;
}

/** Reads and checks a signer key file; returns the key text and its vkey. */
export async function readKeyFile(
  keyFile: string,
): Promise<{ signerKey: string; vkey: string; name: string }> {
  const signerKey = (await readFile(keyFile, 'utf8')).trim();
  const parsed = parseSignerKey(signerKey);
  return { signerKey, vkey: verifierKeyFromSignerKey(signerKey), name: parsed.name };
}

/** Creates the log at size 0 (logs row, signed empty checkpoint, tree head). Refuses if one exists. */
export async function initLog(db: Kysely<Database>, origin: string, signerKey: string): Promise<void> {
  const existing = await getLog(db);
  if (existing) throw new Error(`a log already exists in this store (origin ${existing.origin})`);
  const vkey = verifierKeyFromSignerKey(signerKey);
  if (parseSignerKey(signerKey).name !== origin) throw new Error(`key name does not equal origin ${origin}`);
  const root = emptyRoot();
  const note = signNote(formatCheckpoint({ origin, size: 0n, root, extensions: [] }), [signerKey]);
  await insertLog(db, { origin, vkey }, { size: 0n, root, note });
}

/** Checks the key against the stored log: throws unless the log exists and has this key's vkey. */
export async function checkLogKey(
  db: Kysely<Database>,
  vkey: string,
): Promise<{ origin: string; vkey: string }> {
  const log = await getLog(db);
  if (!log) throw new Error('no log in this store: run `vigil-server init --origin <origin>` first');
  if (log.vkey !== vkey)
    throw new Error(`the key file's key (${vkey}) does not match the stored log key (${log.vkey})`);
  return log;
}
