// The one table from error code to HTTP status (STYLE.md section 5). Every 4xx body is
// {code, message}; a 5xx says only "internal error" and the error goes to the log with the request id.
import type { FastifyError, FastifyInstance } from 'fastify';
import { TlogError } from '@vigil/client';
import { SequencerError } from '../tlog/sequencer.js';

/** An HTTP-level refusal with a code from the table below. */
export class HttpError extends Error {
  readonly code: string;
  readonly extra: Record<string, string> | undefined;
  constructor(code: string, message: string, extra?: Record<string, string>) {
    super(message);
    this.code = code;
    this.extra = extra;
  }
}

/** code -> status. Each row: the DESIGN.md / issue sentence it implements. */
export const statusByCode: Record<string, number> = {
  // "Malformed JSON, wrong content type, bodies over the limit, more than 1,000 entries": 4xx with a code.
  REQUEST_MALFORMED: 400,
  CONTENT_TYPE_UNSUPPORTED: 415,
  BODY_TOO_LARGE: 413,
  TOO_MANY_ENTRIES: 400,
  // "unknown or revoked emitters, bad signatures"
  EMITTER_UNKNOWN: 403,
  EMITTER_REVOKED: 403,
  SIGNATURE_INVALID: 403,
  // "the keys an auditor checks against come from the tree, not from a mutable table": a table key
  // the tree's registry does not hold, and the operator emitter, which writes only through the log.
  EMITTER_KEY_MISMATCH: 403,
  EMITTER_RESERVED: 403,
  // "non-canonical numbers" and malformed records (core RECORD_INVALID)
  RECORD_INVALID: 400,
  ENCODING_INVALID: 400,
  // "an entry over 65,535 bytes"
  ENTRY_TOO_LARGE: 400,
  // "a blob whose hash does not match"
  BLOB_INVALID: 400,
  // Contract "Records and submissions": "A ref without its bytes, bytes without a ref, a wrong size or
  // a wrong hash: 400 with code SEALED_INVALID for sealed refs".
  SEALED_INVALID: 400,
  // DESIGN.md "Readers and sealed payloads": "Without one these answer 401 {"code":"READER_REQUIRED"}
  // with WWW-Authenticate: Bearer; a revoked or unknown token answers 401 too".
  READER_REQUIRED: 401,
  // "GET /v1/sealed/<hex> (reader): ... 404 SEALED_NOT_FOUND; 410 ERASED with the index of the
  // log.erasure record".
  SEALED_NOT_FOUND: 404,
  ERASED: 410,
  // "GET /v1/sealed?start=<i>&end=<j> (reader; end exclusive, at most 1,000 entries)": and a byte budget.
  RANGE_TOO_LARGE: 400,
  // "a read that cannot be recorded answers 503 and reveals nothing".
  ACCESS_NOT_RECORDED: 503,
  // An erased value whose log.erasure record the log has not appended yet (it will within seconds).
  ERASURE_PENDING: 503,
  // "indices past the tree, sizes that were never published"
  INDEX_OUT_OF_RANGE: 404,
  SIZE_NOT_PUBLISHED: 404,
  SIZE_INVALID: 400,
  TILE_PATH_INVALID: 400,
  NOT_FOUND: 404,
  // The web console (DESIGN.md "The console") is served only when its workspace was built.
  CONSOLE_NOT_BUILT: 404,
  NO_WITNESSED_CHECKPOINT: 404,
  // Streams: "409 with the expected seq"; conflicting resubmission is 409 + incident.
  SEQ_CONFLICT: 409,
  // "A stream belongs to the emitter whose record opened it; another emitter's record for that stream
  // is refused" (recorded as an incident).
  STREAM_NOT_OWNED: 403,
  // Cosignatures from pull witnesses, checked against configured witness keys.
  NOTE_MALFORMED: 400,
  CHECKPOINT_MALFORMED: 400,
  CHECKPOINT_UNKNOWN: 404,
  NO_KNOWN_SIGNATURE: 403,
  COSIGNATURE_INVALID: 403,
  // "Rate limits per emitter and per address (429)"
  RATE_LIMITED: 429,
  // "A full queue answers 503 with Retry-After"; a standby instance answers writes 503.
  QUEUE_FULL: 503,
  // Searches are bounded: "excess searches answer 503 with Retry-After" (DESIGN.md "Log server").
  SEARCH_BUSY: 503,
  NOT_SEQUENCER: 503,
  SEQUENCER_HALTED: 503,
  SEQUENCER_STOPPED: 503,
};

/** Codes whose 503 carries Retry-After (seconds). */
const retryAfter: Record<string, string> = {
  QUEUE_FULL: '1',
  SEARCH_BUSY: '1',
  NOT_SEQUENCER: '5',
  RATE_LIMITED: '1',
  ACCESS_NOT_RECORDED: '1',
  ERASURE_PENDING: '1',
};

/** Headers a refusal carries besides its body. */
const headersByCode: Record<string, Record<string, string>> = {
  // RFC 6750 §3: a 401 names the scheme; the contract fixes the realm.
  READER_REQUIRED: { 'www-authenticate': 'Bearer realm="vigil"' },
};

/** Installs the error handler and the 404 handler. */
export function registerErrorHandler(app: FastifyInstance): void {
  app.setNotFoundHandler((request, reply) => {
    void reply
      .code(404)
      .send({ code: 'NOT_FOUND', message: `no route ${request.method} ${request.url.split('?')[0]}` });
  });
  app.setErrorHandler((err: FastifyError | Error, request, reply) => {
    let code: string | undefined;
    let message = err.message;
    let extra: Record<string, string> | undefined;
    if (err instanceof HttpError) {
      code = err.code;
      extra = err.extra;
    } else if (err instanceof SequencerError) {
      code = err.code;
      if (err.expected !== undefined) extra = { expected: err.expected.toString() };
    } else if (err instanceof TlogError) {
      code = err.code;
    } else if ('statusCode' in err && typeof err.statusCode === 'number' && err.statusCode < 500) {
      // Fastify's own refusals (body parser, limits, content type).
      const status = err.statusCode;
      code =
        status === 413
          ? 'BODY_TOO_LARGE'
          : status === 415
            ? 'CONTENT_TYPE_UNSUPPORTED'
            : status === 429
              ? 'RATE_LIMITED'
              : 'REQUEST_MALFORMED';
      if (code === 'REQUEST_MALFORMED' && err.code === 'FST_ERR_CTP_INVALID_JSON_BODY')
        message = 'body is not valid json';
    }
    const status = code === undefined ? 500 : (statusByCode[code] ?? 400);
    if (status >= 500 && (code === undefined || (!(code in retryAfter) && !code.startsWith('SEQUENCER')))) {
      request.log.error({ err }, 'internal error');
      void reply.code(500).send({ code: 'INTERNAL', message: 'internal error' });
      return;
    }
    if (code && retryAfter[code]) void reply.header('retry-after', retryAfter[code]);
    const headers = code === undefined ? undefined : headersByCode[code];
    if (headers) void reply.headers(headers);
    void reply.code(status).send({ code, message, ...extra });
  });
}
