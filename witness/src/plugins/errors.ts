import fp from 'fastify-plugin';
import type { FastifyError, FastifyInstance } from 'fastify';
import { WitnessError, type WitnessErrorCode } from '../errors.js';

/**
 * The one table from error code to HTTP status (STYLE.md section 5). Each row cites the sentence of
 * c2sp.org/tlog-witness it implements; witness/test/plugins/errors.test.ts has a test per row.
 */
export const STATUS_BY_CODE: Record<WitnessErrorCode, number> = {
  // "If the origin is unknown, the witness MUST respond with a 404 Not Found."
  ORIGIN_UNKNOWN: 404,
  // "If none of the signatures verify against a trusted public key, the witness MUST respond with a
  // 403 Forbidden." (also: a known key whose signature fails, per signed-note)
  SIGNATURE_INVALID: 403,
  // "If the old size is greater than the checkpoint size, the witness MUST respond with a 400 Bad
  // Request." Also any body that is not the request syntax.
  REQUEST_MALFORMED: 400,
  // "If the old size does not match the size of the latest checkpoint cosigned by the witness, the
  // witness MUST respond with a 409 Conflict ... Content-Type: text/x.tlog.size".
  SIZE_CONFLICT: 409,
  // "If the consistency proof doesn't verify, the witness MUST respond with a 422 Unprocessable
  // Entity." Also a size-0 checkpoint whose root is not the empty root, a non-empty proof with old 0,
  // and the same size with a different root (post-v1.0.0 text, commit 95978ca).
  PROOF_INVALID: 422,
  // Our own limit (tlog-witness: a log "exceeding [its declared rate] can be rate-limited").
  RATE_LIMITED: 429,
  // Monitoring: "GET <prefix>/<origin hash>/checkpoint ... or 404 if none".
  NOT_FOUND: 404,
  // Admin: adding a log that already exists.
  LOG_EXISTS: 409,
};

/**
 * Maps thrown errors to responses: WitnessError -> its status with `{code, message}`, except
 * SIZE_CONFLICT which answers `<size>\n` as text/x.tlog.size (tlog-witness); Fastify's own 4xx (body too
 * large, bad content type) keep their status with code REQUEST_MALFORMED or the Fastify code; anything
 * else is a 500 that says only "internal error" and is logged in full with the request id.
 */
export const errorsPlugin = fp(
  async (fastify: FastifyInstance) => {
    fastify.setErrorHandler((err: FastifyError | WitnessError | Error, request, reply) => {
      if (err instanceof WitnessError) {
        const status = STATUS_BY_CODE[err.code];
        if (err.code === 'SIZE_CONFLICT' && err.size !== undefined) {
          return reply.code(status).type('text/x.tlog.size').send(`${err.size}\n`);
        }
        if (err.code === 'RATE_LIMITED') reply.header('retry-after', '1');
        request.log.debug({ code: err.code, message: err.message }, 'request refused');
        return reply.code(status).send({ code: err.code, message: err.message });
      }
      const statusCode = (err as FastifyError).statusCode;
      if (statusCode !== undefined && statusCode >= 400 && statusCode < 500) {
        const code =
          statusCode === 413
            ? 'BODY_TOO_LARGE'
            : statusCode === 415
              ? 'CONTENT_TYPE_UNSUPPORTED'
              : 'REQUEST_MALFORMED';
        return reply.code(statusCode).send({ code, message: err.message.toLowerCase() });
      }
      request.log.error({ err }, 'internal error');
      return reply.code(500).send({ code: 'INTERNAL', message: 'internal error' });
    });
    fastify.setNotFoundHandler((request, reply) => {
      reply
        .code(404)
        .send({ code: 'NOT_FOUND', message: `no route ${request.method} ${request.url.split('?')[0]}` });
    });
  },
  { name: 'vigil-witness-errors' },
);
