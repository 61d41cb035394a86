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
    | 'reader revoke';
  args: string[];
  url?: string | undefined;
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
  }
}
