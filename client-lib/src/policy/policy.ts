import { TlogError } from '../errors.js';
import { bytesEqual } from '../encoding.js';
import { parseCheckpoint, type Checkpoint } from '../note/checkpoint.js';
import { verifyCosignature } from '../note/cosignature.js';
import { cosignerKeyFromVerifierKey, parseVerifierKey, type VerifierKey } from '../note/keys.js';
import { openNote } from '../note/note.js';

/** A `log` line: a log signing key (type 0x01), whose name is the log's origin. */
export interface PolicyLog {
  vkey: string;
  key: VerifierKey;
  url?: string;
}

/** A `witness` line: a named witness key (type 0x01 or 0x04, used as a cosigner key). */
export interface PolicyWitness {
  name: string;
  vkey: string;
  key: VerifierKey;
  url?: string;
}

/** A `group` line: met when at least `threshold` of its members (witnesses or earlier groups) are. */
export interface PolicyGroup {
  name: string;
  threshold: number;
  /** How the threshold was written: a number, 'all' or 'any'. */
  thresholdText: string;
  members: string[];
}

/** A parsed c2sp.org/tlog-policy file. `quorum` names a witness or group, or is 'none'. */
export interface Policy {
  logs: PolicyLog[];
  witnesses: PolicyWitness[];
  groups: PolicyGroup[];
  quorum: string;
}

function fail(lineNo: number, msg: string): never {
  throw new TlogError('POLICY_MALFORMED', `policy line ${lineNo}: ${msg}`);
}

/**
 * Parses a tlog-policy: `log <vkey> [url]`, `witness <name> <vkey> [url]`,
 * `group <name> <k|all|any> <members...>`, `quorum <name|none>` (exactly once), `#` comments and
 * blank lines. Names are unique; groups and the quorum reference earlier names only. Throws
 * POLICY_MALFORMED; POLICY_DUPLICATE_KEY when two witnesses share a public key (they would be one
 * witness counted twice toward the quorum). c2sp.org/tlog-policy.
 */
export function parsePolicy(text: string): Policy {
  if (typeof text !== 'string' || text.length > 1 << 20)
    throw new TlogError('POLICY_MALFORMED', 'policy is not a string under the size cap');
  const policy: Policy = { logs: [], witnesses: [], groups: [], quorum: '' };
  const names = new Set<string>();
  let quorum: string | undefined;
  const lines = text.split('\n');
  lines.forEach((raw, i) => {
    const n = i + 1;
    const hash = raw.indexOf('#');
    const line = (hash >= 0 ? raw.slice(0, hash) : raw).trim();
    if (line === '') return;
    const f = line.split(/[ \t]+/);
    const keyOf = (vkey: string): VerifierKey => {
      try {
        return parseVerifierKey(vkey);
      } catch (err) {
        throw new TlogError('POLICY_MALFORMED', `policy line ${n}: ${(err as Error).message}`, {
          cause: err,
        });
      }
    };
    switch (f[0]) {
      case 'log': {
        if (f.length < 2 || f.length > 3) fail(n, 'want log <vkey> [url]');
        const key = keyOf(f[1]!);
        if (key.type !== 1) fail(n, 'log key must be of type 0x01');
        policy.logs.push(f[2] === undefined ? { vkey: f[1]!, key } : { vkey: f[1]!, key, url: f[2] });
        break;
      }
      case 'witness': {
        if (f.length < 3 || f.length > 4) fail(n, 'want witness <name> <vkey> [url]');
        const name = f[1]!;
        if (names.has(name) || name === 'none') fail(n, `duplicate name ${name}`);
        names.add(name);
        const key = keyOf(f[2]!);
        // One witness must not count twice toward a quorum: the same public key under two names (or
        // two key names, or types 0x01 and 0x04) is one witness.
        const twin = policy.witnesses.find((w) => bytesEqual(w.key.publicKey, key.publicKey));
        if (twin !== undefined) {
          throw new TlogError(
            'POLICY_DUPLICATE_KEY',
            `policy line ${n}: witness ${name} has the same public key as witness ${twin.name}`,
          );
        }
        policy.witnesses.push(
          f[3] === undefined ? { name, vkey: f[2]!, key } : { name, vkey: f[2]!, key, url: f[3] },
        );
        break;
      }
      case 'group': {
        if (f.length < 4) fail(n, 'want group <name> <k|all|any> <members...>');
        const name = f[1]!;
        if (names.has(name) || name === 'none') fail(n, `duplicate name ${name}`);
        const members = f.slice(3);
        for (const m of members)
          if (!names.has(m)) fail(n, `group member ${m} is not an earlier witness or group`);
        if (new Set(members).size !== members.length) fail(n, 'duplicate group member');
        const t = f[2]!;
        let threshold: number;
        if (t === 'all') threshold = members.length;
        else if (t === 'any') threshold = 1;
        else if (/^[1-9][0-9]{0,5}$/.test(t)) threshold = Number(t);
        else fail(n, `bad threshold ${t}`);
        if (threshold > members.length) fail(n, `threshold ${threshold} exceeds ${members.length} members`);
        names.add(name);
        policy.groups.push({ name, threshold, thresholdText: t, members });
        break;
      }
      case 'quorum': {
        if (f.length !== 2) fail(n, 'want quorum <name|none>');
        if (quorum !== undefined) fail(n, 'second quorum line');
        if (f[1] !== 'none' && !names.has(f[1]!))
          fail(n, `quorum ${f[1]} is not an earlier witness or group`);
        quorum = f[1]!;
        break;
      }
      default:
        fail(n, `unknown keyword ${JSON.stringify(f[0])}`);
    }
  });
  if (policy.logs.length === 0) throw new TlogError('POLICY_MALFORMED', 'policy has no log line');
  if (quorum === undefined) throw new TlogError('POLICY_MALFORMED', 'policy has no quorum line');
  policy.quorum = quorum;
  return policy;
}

/** Formats a policy in the tlog-policy line format (parsePolicy(formatPolicy(p)) equals p). c2sp.org/tlog-policy. */
export function formatPolicy(policy: Policy): string {
  const out: string[] = [];
  for (const l of policy.logs) out.push(['log', l.vkey, ...(l.url === undefined ? [] : [l.url])].join(' '));
  for (const w of policy.witnesses)
    out.push(['witness', w.name, w.vkey, ...(w.url === undefined ? [] : [w.url])].join(' '));
  for (const g of policy.groups) out.push(['group', g.name, g.thresholdText, ...g.members].join(' '));
  out.push(`quorum ${policy.quorum}`);
  return out.map((l) => `${l}\n`).join('');
}

/** Whether the named witness or group is satisfied by the set of witnesses that cosigned. */
function isMet(policy: Policy, name: string, cosigned: ReadonlySet<string>, depth = 0): boolean {
  if (name === 'none') return true;
  if (depth > 64) return false;
  if (policy.witnesses.some((w) => w.name === name)) return cosigned.has(name);
  const g = policy.groups.find((x) => x.name === name);
  if (g === undefined) return false;
  let met = 0;
  for (const m of g.members) if (isMet(policy, m, cosigned, depth + 1)) met++;
  return met >= g.threshold;
}

/** Result of verifying a checkpoint note against a policy. `cosigners` maps policy witness names to cosignature times. */
export interface VerifiedCheckpoint {
  checkpoint: Checkpoint;
  text: string;
  logName: string;
  cosigners: Map<string, bigint>;
}

/**
 * Verifies a checkpoint note against a policy: a log signature by a policy log key is required
 * (NO_KNOWN_SIGNATURE / SIGNATURE_INVALID), the origin must equal that key's name
 * (ORIGIN_MISMATCH), every policy witness that cosigned must verify (COSIGNATURE_INVALID), and the
 * quorum must be met, k-of-n recursively (QUORUM_NOT_MET). c2sp.org/tlog-policy, tlog-cosignature.
 */
export function verifyCheckpoint(note: string, policy: Policy): VerifiedCheckpoint {
  const opened = openNote(
    note,
    policy.logs.map((l) => l.key),
  );
  const checkpoint = parseCheckpoint(opened.text);
  const logSig = opened.signatures.find((s) => s.verified)!;
  if (checkpoint.origin !== logSig.name) {
    throw new TlogError(
      'ORIGIN_MISMATCH',
      `checkpoint origin ${JSON.stringify(checkpoint.origin)} is not the log key name ${JSON.stringify(logSig.name)}`,
    );
  }
  const cosigners = new Map<string, bigint>();
  for (const w of policy.witnesses) {
    try {
      cosigners.set(w.name, verifyCosignature(note, cosignerKeyFromVerifierKey(w.key)));
    } catch (err) {
      if (err instanceof TlogError && err.code === 'NO_KNOWN_SIGNATURE') continue;
      throw err;
    }
  }
  if (!isMet(policy, policy.quorum, new Set(cosigners.keys()))) {
    throw new TlogError(
      'QUORUM_NOT_MET',
      `quorum ${policy.quorum} not met by ${cosigners.size} of ${policy.witnesses.length} witnesses`,
    );
  }
  return { checkpoint, text: opened.text, logName: logSig.name, cosigners };
}
