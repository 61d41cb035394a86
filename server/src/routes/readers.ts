// Reader authentication (contract "Log HTTP API"; DESIGN.md "Readers and sealed payloads"): a request
// that may see sealed values carries `Authorization: Bearer <token>` of an unrevoked reader of this
// log. The log stores only the SHA-256 of each token; a token is never taken from a query string.
import { createHash } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import { HttpError } from '../plugins/errors.js';
import type { LogService } from '../tlog/service.js';

/** A reader token's shape: `vigil_rt_` + base64url (no padding) of 32 bytes. */
const TOKEN = /^vigil_rt_[A-Za-z0-9_-]{43}$/;
/** Query parameters that look like a credential: refused, so a token never reaches a log or record. */
const TOKEN_PARAMS = ['token', 'access_token'];

function refuse(message: string): HttpError {
  return new HttpError('READER_REQUIRED', message);
}

/**
 * The name of the reader `request` authenticates as. Throws HttpError READER_REQUIRED (401 with
 * `WWW-Authenticate: Bearer realm="vigil"`, see plugins/errors.ts) when the Authorization header is
 * missing, not a Bearer token of the reader format, or names no unrevoked reader of this log, and when
 * the query string carries `token` or `access_token` (never accepted, even beside a valid header).
 */
export async function readerOf(request: FastifyRequest, tlog: LogService): Promise<string> {
  const query = request.query as Record<string, unknown> | undefined;
  if (query && TOKEN_PARAMS.some((p) => p in query))
    throw refuse('a reader token is accepted only in the Authorization header, never in the query string');
  const header = request.headers.authorization;
  if (header === undefined) throw refuse('this request needs a reader: Authorization: Bearer <token>');
  const match = /^Bearer +(\S+) *$/i.exec(header);
  if (!match || !TOKEN.test(match[1]!)) throw refuse('the Authorization header is not a reader token');
  // Looked up by its SHA-256: what a lookup's timing could reveal is about the hash, not the token
  // (STYLE.md section 16 asks for no comparison whose time depends on the secret itself).
  const hash = createHash('sha256').update(match[1]!, 'utf8').digest('hex');
  const name = await tlog.reader(hash);
  if (name === undefined) throw refuse('unknown or revoked reader token');
  return name;
}
