/**
 * Which key each entry of a log is checked against, learnt from the tree (DESIGN.md "Log server",
 * Emitter administration). The log's operator emitter registers every emitter in the log itself
 * (`emitter.add` / `emitter.revoke`, see registry.ts); from the operator's own registration on, an
 * entry is checked against the key its emitter had at that index. A key the log's database serves in
 * /v1/log is used only for entries from before the registry began (logs older than it), and pinned in
 * the audit state the first time it is used, so a key swapped later is a problem, not a new truth.
 *
 * Root of trust: the operator's vkey, given independently (`--operator-key`, or the `--emitters`
 * list holding the operator's name), else taken from /v1/log on the first run and kept in the state.
 * Browser-safe: no I/O.
 */
import { TlogError } from '../errors.js';
import { parseVerifierKey } from '../note/index.js';
import { verifyRecordSignature, type Entry } from '../record.js';
import { EMITTER_ADD, isRegistryKind, parseRegistryChange } from '../registry.js';
import type { AuditProblem } from './auditor.js';

/** An emitter as the tree registered it (indices are decimal strings). */
export interface RegistryState {
  vkey: string;
  index: string;
  revokedAt?: string;
}

/** What the key book keeps between audit runs (part of AuditState). */
export interface KeyBookState {
  /** The operator emitter trusted as the registry's signer (pinned on first use). */
  operator?: { name: string; vkey: string };
  /** Index of the operator's own registration: where the registry begins. */
  registryStart?: string;
  registry: Record<string, RegistryState>;
  /** Keys from /v1/log (or --emitters) used for entries before the registry; pinned at first use. */
  legacyKeys: Record<string, { vkey: string; index: string }>;
}

/** The key to check an entry's signature with, and the problem its emitter's registration has. */
export interface KeyDecision {
  vkey: string | undefined;
  problem?: AuditProblem;
}

/** Parses an operator vkey given on the command line: a type-0x01 key. */
export function parseOperatorKey(vkey: string): { name: string; vkey: string } {
  const key = parseVerifierKey(vkey);
  if (key.type !== 1) throw new TlogError('KEY_MALFORMED', `the operator key has type ${key.type}, want 1`);
  return { name: key.name, vkey };
}

/**
 * The keys of one audit run. `decide` and `applyRegistryRecord` are called in entry order, so an
 * entry sees exactly the registrations committed before it.
 */
export class KeyBook {
  readonly state: KeyBookState;
  readonly #independent: Map<string, string> | undefined;
  readonly #served: Map<string, string>;

  /**
   * `state` is this run's copy (mutated); `independent` the --emitters list (trusted instead of the
   * log for signatures); `served` the keys /v1/log lists.
   */
  constructor(
    state: KeyBookState,
    independent: Map<string, string> | undefined,
    served: Map<string, string>,
  ) {
    this.state = state;
    this.#independent = independent;
    this.#served = served;
  }

  /** True when the entry is a registry record of the trusted operator (checked inline, then applied). */
  isRegistryRecord(entry: Entry): boolean {
    return entry.emitter === this.state.operator?.name && isRegistryKind(entry.record.kind);
  }

  /**
   * Checks a registry record's operator signature (inline: later entries depend on it) and applies
   * it. Returns the problems it has; a record that fails changes nothing.
   */
  applyRegistryRecord(entry: Entry, index: bigint): AuditProblem[] {
    const operator = this.state.operator!;
    const at = index.toString();
    try {
      verifyRecordSignature(entry.record, entry.sig, operator.vkey);
    } catch {
      return [
        {
          code: 'SIGNATURE_INVALID',
          index: at,
          message: `entry ${index}: the registry record's signature does not verify with the operator key ${operator.vkey}`,
        },
      ];
    }
    const invalid = (why: string): AuditProblem[] => [
      { code: 'REGISTRY_INVALID', index: at, message: `entry ${index}: ${why}` },
    ];
    let change;
    try {
      change = parseRegistryChange(entry.record);
    } catch (err) {
      return invalid((err as Error).message);
    }
    const s = this.state;
    const known = s.registry[change.name];
    if (change.kind !== EMITTER_ADD) {
      if (known === undefined || known.vkey !== change.vkey || known.revokedAt !== undefined)
        return invalid(`revokes ${change.name}, which is not registered with that key`);
      known.revokedAt = at;
      return [];
    }
    if (known !== undefined) return invalid(`registers ${change.name} again (first at entry ${known.index})`);
    if (s.registryStart === undefined) {
      if (change.name !== operator.name)
        return invalid(`registers ${change.name} before the operator registered itself`);
      if (change.vkey !== operator.vkey)
        return [
          {
            code: 'OPERATOR_KEY_CHANGED',
            index: at,
            message: `entry ${index}: the operator registers itself with ${change.vkey}, the trusted operator key is ${operator.vkey}`,
          },
        ];
      s.registryStart = at;
    }
    s.registry[change.name] = { vkey: change.vkey, index: at };
    const problems: AuditProblem[] = [];
    const legacy = s.legacyKeys[change.name];
    if (legacy !== undefined && legacy.vkey !== change.vkey) {
      problems.push({
        code: 'EMITTER_KEY_MISMATCH',
        index: at,
        message: `entry ${index} registers ${change.name} with ${change.vkey}; its entries from entry ${legacy.index} on were checked with ${legacy.vkey}`,
      });
    }
    const listed = this.#independent?.get(change.name);
    if (listed !== undefined && listed !== change.vkey) {
      problems.push({
        code: 'EMITTER_KEY_MISMATCH',
        index: at,
        message: `entry ${index} registers ${change.name} with ${change.vkey}; the independent emitter list has ${listed}`,
      });
    }
    return problems;
  }

  /** The key for an entry at `index` by `emitter` (not a registry record), in entry order. */
  decide(emitter: string, index: bigint): KeyDecision {
    const s = this.state;
    const at = index.toString();
    const listed = this.#independent?.get(emitter);
    if (emitter === s.operator?.name) return { vkey: listed ?? s.operator.vkey };
    if (s.registryStart !== undefined) {
      const reg = s.registry[emitter];
      if (reg === undefined)
        return {
          vkey: listed,
          problem: {
            code: 'EMITTER_UNREGISTERED',
            index: at,
            message: `entry ${index} is by ${emitter}, which the log's registry has not registered`,
          },
        };
      if (reg.revokedAt !== undefined)
        return {
          vkey: listed ?? reg.vkey,
          problem: {
            code: 'EMITTER_REVOKED',
            index: at,
            message: `entry ${index} is by ${emitter}, revoked at entry ${reg.revokedAt}`,
          },
        };
      return { vkey: listed ?? reg.vkey };
    }
    if (listed !== undefined) return { vkey: listed };
    const pinned = s.legacyKeys[emitter];
    if (pinned !== undefined) return { vkey: pinned.vkey };
    const served = this.#served.get(emitter);
    if (served !== undefined) s.legacyKeys[emitter] = { vkey: served, index: at };
    return { vkey: served };
  }

  /**
   * What the log's database serves (/v1/log) against what the tree registered: a key the tree does
   * not hold for that name, a revoked emitter listed as active, a pinned key since swapped. A name
   * the tree does not hold yet is a registration still on its way, not a problem.
   */
  compareServed(revokedServed: Map<string, boolean>): AuditProblem[] {
    const s = this.state;
    const problems: AuditProblem[] = [];
    for (const [name, vkey] of this.#served) {
      if (name === s.operator?.name) continue;
      const reg = s.registry[name];
      if (reg !== undefined) {
        if (reg.vkey !== vkey)
          problems.push({
            code: 'EMITTER_KEY_MISMATCH',
            index: reg.index,
            message: `the log's database serves key ${vkey} for ${name}; the tree registered ${reg.vkey} at entry ${reg.index}`,
          });
        else if (reg.revokedAt !== undefined && revokedServed.get(name) === false)
          problems.push({
            code: 'EMITTER_REVOKED',
            index: reg.revokedAt,
            message: `the log's database lists ${name} as active; the tree revoked it at entry ${reg.revokedAt}`,
          });
        continue;
      }
      const pinned = s.legacyKeys[name];
      if (pinned !== undefined && pinned.vkey !== vkey && this.#independent === undefined)
        problems.push({
          code: 'EMITTER_KEY_CHANGED',
          index: pinned.index,
          message: `the log now serves key ${vkey} for ${name}; its entries from entry ${pinned.index} on were checked with ${pinned.vkey}`,
        });
    }
    return problems;
  }
}
