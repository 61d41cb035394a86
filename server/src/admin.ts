// Admin commands. The CLI writes the database directly on both stores (the embedded one through the
// running PostgreSQL's Unix socket in the data directory, or by starting it when the service is down),
// then notifies ADMIN_CHANNEL so a running service forgets what it cached.
import { createHash, randomBytes } from 'node:crypto';
import type { Kysely } from 'kysely';
import { operatorNameFor, parseVerifierKey, cosignerKeyFromVerifierKey } from '@vigil/client';
import type { Database } from './db/schema.js';
import {
  deleteWitness,
  getLog,
  insertEmitter,
  insertOperatorAction,
  insertReader,
  insertWitness,
  listEmitters,
  listReaders,
  listWitnesses,
  putSetting,
  revokeEmitter,
  revokeReader,
} from './db/repository.js';
import { insertHold, listHolds, releaseHold, type HoldScope } from './db/erasures.js';
import {
  eraseAndVacuum,
  getRetention,
  isCommitmentHex,
  parseDuration,
  RETENTION_SETTING,
} from './erasure.js';

/** The PostgreSQL notification channel a running log listens on for admin changes. */
export const ADMIN_CHANNEL = 'vigil_admin';

export interface AdminCommand {
  command:
    | 'emitter add'
    | 'emitter list'
    | 'emitter revoke'
    | 'witness add'
    | 'witness list'
    | 'witness remove'
    | 'quorum'
    | 'reader add'
    | 'reader list'
    | 'reader revoke'
    | 'erase'
    | 'retention set'
    | 'retention show'
    | 'hold add'
    | 'hold list'
    | 'hold release';
  args: string[];
  url?: string | undefined;
  /** The flags of erase and hold add. */
  options?: AdminOptions;
}

/** `--sealed <hex>...`, `--session`, `--stream`, `--emitter`, `--reason`, `--by` (erase, hold add). */
export interface AdminOptions {
  sealed?: string[] | undefined;
  session?: string | undefined;
  stream?: string | undefined;
  emitter?: string | undefined;
  reason?: string | undefined;
  /** Who runs the erasure (main.ts: the OS user name unless --by). */
  by?: string | undefined;
  /** erase --vacuum-full: rewrite the sealed tables so no freed page keeps the bytes (locks them). */
  vacuumFull?: boolean | undefined;
}

const ERASE_USAGE =
  'usage: erase (--sealed <hex>... | --session <id> | --stream <id>) --reason <text> [--by <name>] [--vacuum-full]';
const HOLD_USAGE = 'usage: hold add (--session <id> | --stream <id> | --emitter <name>) --reason <text>';

/** The one scope among the given flags, or a usage error. */
function oneOf<K extends string>(o: AdminOptions, keys: readonly K[], usage: string): K {
  const given = keys.filter((k) => (o as Record<string, unknown>)[k] !== undefined);
  if (given.length !== 1) throw new Error(usage);
  return given[0]!;
}

async function erase(db: Kysely<Database>, o: AdminOptions): Promise<string> {
  const scope = oneOf(o, ['sealed', 'session', 'stream'] as const, ERASE_USAGE);
  if (!o.reason) throw new Error(ERASE_USAGE);
  if (!o.by) throw new Error('erase: --by <name> is empty');
  let sel: Parameters<typeof eraseAndVacuum>[1];
  let target: Record<string, string | boolean>;
  if (scope === 'sealed') {
    const hexes = o.sealed!;
    if (hexes.length === 0) throw new Error(ERASE_USAGE);
    for (const h of hexes)
      if (!isCommitmentHex(h)) throw new Error(`--sealed ${h}: a commitment is 64 lowercase hex digits`);
    sel = { sealed: hexes };
    target = { sealed: true };
  } else {
    const id = o[scope]!;
    if (!id) throw new Error(ERASE_USAGE);
    sel = scope === 'session' ? { session: id } : { stream: id };
    target = { [scope]: id };
  }
  const r = await eraseAndVacuum(
    db,
    sel,
    { reason: o.reason, by: o.by, target, held: 'refuse' },
    o.vacuumFull === true,
  );
  switch (r.kind) {
    case 'held':
      throw new Error(
        `refused: under legal hold ${r.holds.map((h) => `${h.id} (${h.scope} ${h.target})`).join(', ')}; ` +
          'nothing erased (release the hold first: hold release <id>)',
      );
    case 'nothing':
      return 'nothing to erase';
    case 'erased':
      return (
        `erased ${r.count} sealed value${r.count === 1 ? '' : 's'}; log.erasure action ${r.actionId} ` +
        '(the running log appends the record)'
      );
  }
}

/** The prefix of every reader token (contract "Log HTTP API"). */
export const READER_TOKEN_PREFIX = 'vigil_rt_';

/** A reader name: printable, no spaces (it appears in access.read records and `reader list`). */
const READER_NAME = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$/;

/** A new reader token: `vigil_rt_` + base64url (no padding) of 32 random bytes. */
export function newReaderToken(): string {
  return READER_TOKEN_PREFIX + randomBytes(32).toString('base64url');
}

/** What the log stores of a reader token: the SHA-256 hex of the whole token string. */
export function readerTokenSha256(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

/** Runs an admin command against a database; returns the text to print. Throws with a message. */
export async function runAdminCommand(db: Kysely<Database>, cmd: AdminCommand): Promise<string> {
  const [a, b] = cmd.args;
  switch (cmd.command) {
    case 'emitter add': {
      if (!a || !b) throw new Error('usage: emitter add <name> <vkey>');
      const key = parseVerifierKey(b);
      if (key.type !== 1) throw new Error('an emitter key must be an Ed25519 (type 0x01) vkey');
      if (key.name !== a) throw new Error(`the vkey is named ${key.name}, not ${a}`);
      const log = await getLog(db);
      if (log && a === operatorNameFor(log.origin))
        throw new Error(`${a} is the log's operator emitter; it is registered by the log itself`);
      // The running log appends the emitter.add record (signed by its operator emitter) within
      // seconds, and before the first record of this emitter in any case.
      if (!(await insertEmitter(db, a, b))) throw new Error(`emitter ${a} exists already`);
      return `added emitter ${a}`;
    }
    case 'emitter list':
      return (await listEmitters(db))
        .map((e) => `${e.name}\t${e.vkey}${e.revoked ? '\trevoked' : ''}`)
        .join('\n');
    case 'emitter revoke':
      if (!a) throw new Error('usage: emitter revoke <name>');
      if (!(await revokeEmitter(db, a))) throw new Error(`no active emitter ${a}`);
      return `revoked emitter ${a}`;
    case 'witness add': {
      if (!a || !b) throw new Error('usage: witness add <name> <vkey> [--url <prefix>]');
      cosignerKeyFromVerifierKey(b);
      if (cmd.url !== undefined && !/^https?:\/\//.test(cmd.url)) throw new Error('--url must be http(s)');
      if (!(await insertWitness(db, { name: a, vkey: b, url: cmd.url ?? null })))
        throw new Error(`witness ${a} exists already`);
      return `added witness ${a}`;
    }
    case 'witness list':
      return (await listWitnesses(db))
        .map((w) => `${w.name}\t${w.vkey}${w.url ? `\t${w.url}` : ''}`)
        .join('\n');
    case 'witness remove':
      if (!a) throw new Error('usage: witness remove <name>');
      if (!(await deleteWitness(db, a))) throw new Error(`no witness ${a}`);
      return `removed witness ${a}`;
    case 'reader add': {
      if (!a || cmd.args.length !== 1) throw new Error('usage: reader add <name>');
      if (!READER_NAME.test(a))
        throw new Error('a reader name is 1-128 characters of letters, digits and . _ @ - (no spaces)');
      const token = newReaderToken();
      // The reader and its reader.add action in one transaction: the running log appends the record.
      await db.transaction().execute(async (trx) => {
        if (!(await insertReader(trx, a, readerTokenSha256(token))))
          throw new Error(`reader ${a} exists already`);
        await insertOperatorAction(trx, 'reader.add', { name: a });
      });
      // The only place the token ever appears: the log keeps its hash.
      return `added reader ${a}; its token (shown only now, keep it secret):\n${token}`;
    }
    case 'reader list':
      return (await listReaders(db))
        .map(
          (r) =>
            `${r.name}\t${r.created.toISOString()}${r.revoked ? `\trevoked ${r.revoked.toISOString()}` : ''}`,
        )
        .join('\n');
    case 'reader revoke':
      if (!a || cmd.args.length !== 1) throw new Error('usage: reader revoke <name>');
      await db.transaction().execute(async (trx) => {
        if (!(await revokeReader(trx, a))) throw new Error(`no active reader ${a}`);
        await insertOperatorAction(trx, 'reader.revoke', { name: a });
      });
      return `revoked reader ${a}`;
    case 'quorum': {
      if (!a || !/^(0|[1-9][0-9]*)$/.test(a)) throw new Error('usage: quorum <k>');
      const n = (await listWitnesses(db)).length;
      if (Number(a) > n) throw new Error(`quorum ${a} is more than the ${n} configured witnesses`);
      await putSetting(db, 'quorum', a);
      return `quorum set to ${a}`;
    }
    case 'erase':
      return erase(db, cmd.options ?? {});
    case 'retention set': {
      if (!a || cmd.args.length !== 1)
        throw new Error('usage: retention set <duration>|off (30m, 12h, 180d)');
      if (a !== 'off') parseDuration(a);
      await db.transaction().execute(async (trx) => {
        await putSetting(trx, RETENTION_SETTING, a);
        await insertOperatorAction(trx, 'retention.set', { duration: a });
      });
      return a === 'off' ? 'retention off: sealed values are kept' : `retention set to ${a}`;
    }
    case 'retention show': {
      const duration = await getRetention(db);
      return duration === undefined ? 'retention off: sealed values are kept' : `retention ${duration}`;
    }
    case 'hold add': {
      const o = cmd.options ?? {};
      const scope: HoldScope = oneOf(o, ['session', 'stream', 'emitter'] as const, HOLD_USAGE);
      const target = o[scope];
      if (!target || !o.reason) throw new Error(HOLD_USAGE);
      const id = `hold-${randomBytes(4).toString('hex')}`;
      await insertHold(db, { id, scope, target, reason: o.reason });
      return id;
    }
    case 'hold list':
      return (await listHolds(db))
        .map(
          (h) =>
            `${h.id}\t${h.scope}\t${h.target}\t${h.created.toISOString()}\t` +
            `${h.released ? `released ${h.released.toISOString()}` : 'active'}\t${h.reason}`,
        )
        .join('\n');
    case 'hold release':
      if (!a) throw new Error('usage: hold release <id>');
      if (!(await releaseHold(db, a))) throw new Error(`no active hold ${a}`);
      return `released hold ${a}`;
  }
}
