/**
 * The emitter registry in the tree (DESIGN.md "Log server", Emitter administration): every
 * registration and revocation of an emitter is a record in the log, `emitter.add` / `emitter.revoke`
 * with the emitter's name and vkey, signed by the log's operator emitter. The log accepts a record only
 * after its emitter's registration is committed; an auditor learns every emitter key from these
 * records, so a key swapped in the log's database is not the key anything is checked against.
 *
 * The operator emitter registers itself first (an `emitter.add` of its own name and vkey): that
 * record is where the registry begins. Pure: no I/O.
 */
import { TlogError } from './errors.js';
import { parseVerifierKey } from './note/keys.js';

/** Record kinds of the registry. */
export const EMITTER_ADD = 'emitter.add';
export const EMITTER_REVOKE = 'emitter.revoke';

/** A registry change as a record carries it (beside v, stream, seq, prev, time). */
export interface RegistryChange {
  kind: typeof EMITTER_ADD | typeof EMITTER_REVOKE;
  name: string;
  vkey: string;
}

/** The operator emitter's name for a log origin: `<origin>/operator`. */
export function operatorNameFor(origin: string): string {
  return `${origin}/operator`;
}

/** True when a record's kind is a registry kind (its fields must then parse). */
export function isRegistryKind(kind: unknown): boolean {
  return kind === EMITTER_ADD || kind === EMITTER_REVOKE;
}

/**
 * Reads the registry change of an `emitter.add` / `emitter.revoke` record. Requires `name` and a
 * type-0x01 (Ed25519) `vkey` whose key name is `name`; throws RECORD_INVALID otherwise.
 */
export function parseRegistryChange(record: Record<string, unknown>): RegistryChange {
  const { kind, name, vkey } = record;
  if (kind !== EMITTER_ADD && kind !== EMITTER_REVOKE)
    throw new TlogError('RECORD_INVALID', `record kind ${String(kind)} is not a registry kind`);
  if (typeof name !== 'string' || name.length === 0)
    throw new TlogError('RECORD_INVALID', `${kind} record has no emitter name`);
  if (typeof vkey !== 'string') throw new TlogError('RECORD_INVALID', `${kind} record has no vkey`);
  let key;
  try {
    key = parseVerifierKey(vkey);
  } catch (err) {
    throw new TlogError('RECORD_INVALID', `${kind} record's vkey does not parse`, { cause: err });
  }
  if (key.type !== 1)
    throw new TlogError('RECORD_INVALID', `${kind} record's vkey has type ${key.type}, want 1`);
  if (key.name !== name)
    throw new TlogError('RECORD_INVALID', `${kind} record's vkey is named ${key.name}, not ${name}`);
  return { kind, name, vkey };
}
