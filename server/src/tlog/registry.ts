// The emitter registry as the tree holds it (DESIGN.md "Log server", Emitter administration), and the
// operator emitter's key. The `emitters` table is the operator's request ("register this name with
// this key"); the registry records in the tree are what the log enforces and auditors check against.
// A key changed in the table later (a DBA's UPDATE) is refused, never re-registered.
//
// Owner: the sequencer (the one writer of the tree) loads the registry at start and applies the
// records of each batch after its commit; the route reads it to refuse a mismatched key early.
import { existsSync } from 'node:fs';
import {
  EMITTER_ADD,
  bytesEqual,
  hashLeaf,
  operatorNameFor,
  parseEntry,
  parseRegistryChange,
  verifyRecordSignature,
  type RegistryChange,
} from '@vigil/client';
import type { Db } from '../db/repository.js';
import { getRegistryEntries } from '../db/repository.js';
import { createKeyFile, readKeyFile } from './signer.js';

/** One emitter as the tree registered it: its key, the index of its emitter.add and of its revocation. */
export interface Registration {
  vkey: string;
  index: bigint;
  revokedAt: bigint | undefined;
}

/** The operator emitter: it signs the registry records (and other records of the log itself). */
export interface OperatorKey {
  name: string;
  signerKey: string;
  vkey: string;
}

/**
 * The registry the tree holds: name -> registration, and where it began (the operator's own
 * emitter.add). Plain data; `apply` is the one transition.
 */
export class EmitterRegistry {
  readonly #byName = new Map<string, Registration>();
  #start: bigint | undefined;

  /** Index of the operator's own registration (undefined: the registry has not begun). */
  get start(): bigint | undefined {
    return this.#start;
  }

  get(name: string): Registration | undefined {
    return this.#byName.get(name);
  }

  get size(): number {
    return this.#byName.size;
  }

  /**
   * Applies a committed registry record at `index`. Throws when the change contradicts the
   * registry (a second emitter.add of a name, a revocation of an unknown or other key): the tree
   * must never hold such a record, so the caller halts.
   */
  apply(change: RegistryChange, index: bigint, operator: string): void {
    const known = this.#byName.get(change.name);
    if (change.kind === EMITTER_ADD) {
      if (known) throw new Error(`entry ${index} registers ${change.name} again (first at ${known.index})`);
      if (this.#start === undefined && change.name !== operator)
        throw new Error(`entry ${index} registers ${change.name} before the operator registered itself`);
      if (this.#start === undefined) this.#start = index;
      this.#byName.set(change.name, { vkey: change.vkey, index, revokedAt: undefined });
      return;
    }
    if (!known || known.vkey !== change.vkey || known.revokedAt !== undefined)
      throw new Error(`entry ${index} revokes ${change.name}, which is not registered with that key`);
    known.revokedAt = index;
  }

  /**
   * Loads the registry from the stored tree: every registry record of `operator.name`, its bytes
   * checked against the stored leaf hash and its signature against the operator key (so a row a
   * DBA forged without the key is refused even when the start-up check is `quick`).
   */
  static async load(db: Db, operator: OperatorKey): Promise<EmitterRegistry> {
    const registry = new EmitterRegistry();
    for (const row of await getRegistryEntries(db, operator.name)) {
      if (!bytesEqual(hashLeaf(row.entry), row.leafHash))
        throw new Error(`registry entry ${row.index} does not hash to its stored leaf hash`);
      const entry = parseEntry(row.entry);
      try {
        verifyRecordSignature(entry.record, entry.sig, operator.vkey);
      } catch {
        throw new Error(`registry entry ${row.index} is not signed by the operator key ${operator.vkey}`);
      }
      registry.apply(parseRegistryChange(entry.record), row.index, operator.name);
    }
    return registry;
  }
}

/**
 * Reads the operator key of the log `origin` from `file`, or creates it (mode 0600) when the file is
 * missing and the tree has no operator yet: the path for a new log and for a log created before the
 * registry existed. Throws when the file's key is not the one the tree registered, or when the file is
 * missing although the tree has an operator (restore it: a new key would not be trusted).
 */
export async function loadOperatorKey(
  db: Db,
  file: string,
  origin: string,
): Promise<OperatorKey & { created: boolean }> {
  const name = operatorNameFor(origin);
  const registered = await firstOperatorRegistration(db, name);
  let created = false;
  if (!existsSync(file)) {
    if (registered)
      throw new Error(
        `operator key file ${file} is missing; the log registered operator key ${registered.vkey} at entry ${registered.index}: restore the file`,
      );
    await createKeyFile(file, name);
    created = true;
  }
  const key = await readKeyFile(file);
  if (key.name !== name) throw new Error(`operator key file ${file} is for ${key.name}, not ${name}`);
  if (registered && registered.vkey !== key.vkey)
    throw new Error(
      `operator key file ${file} holds ${key.vkey}; the log registered operator key ${registered.vkey} at entry ${registered.index}`,
    );
  return { name, signerKey: key.signerKey, vkey: key.vkey, created };
}

async function firstOperatorRegistration(
  db: Db,
  name: string,
): Promise<{ vkey: string; index: bigint } | undefined> {
  // The registry begins with the operator's own emitter.add (EmitterRegistry.apply refuses others).
  const [row] = await getRegistryEntries(db, name, 1);
  if (!row) return undefined;
  const change = parseRegistryChange(parseEntry(row.entry).record);
  if (change.kind !== EMITTER_ADD || change.name !== name)
    throw new Error(`registry entry ${row.index} is not the operator's own registration`);
  return { vkey: change.vkey, index: row.index };
}
