import type { FastifyInstance, FastifyRequest } from 'fastify';
import { isWitnessError, WitnessError, type WitnessErrorCode } from '../errors.js';
import { addressKey, type RateLimiter } from '../rate-limit.js';
import { parseAddCheckpointRequest } from '../witness/request.js';
import type { Witness } from '../witness/witness.js';

export interface AddCheckpointRouteOptions {
  witness: Witness;
  /** Per log origin; charged only by requests that carry a valid signature of that log. */
  limiter: RateLimiter;
  /** Per client address; charged by requests that fail before or at the signature check. */
  failureLimiter: RateLimiter;
  bodyLimit: number;
}

/**
 * Answers that no log's key vouched for: a malformed body, an unknown origin, no valid signature.
 * Only these charge the client address: anyone can send them, so they must not spend a log's budget.
 */
const UNAUTHENTICATED: ReadonlySet<WitnessErrorCode> = new Set([
  'REQUEST_MALFORMED',
  'ORIGIN_UNKNOWN',
  'SIGNATURE_INVALID',
]);

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * `POST /add-checkpoint` (c2sp.org/tlog-witness). The body is text: logs send
 * `text/plain; charset=utf-8`, but any `text/*` and a missing content type are accepted, as the spec
 * names no content type for the request. 200 answers the cosignature line(s) as text/plain.
 *
 * Rate limits, in order: a client address that has used up its budget of failed requests is refused
 * before its body is read or any signature checked; then the log's signature is verified; only then
 * is the origin's budget charged. So forged requests for an origin (tlog-witness lets anyone send
 * them) cost the sender's address, never the log's own pushes.
 */
export async function addCheckpointRoutes(
  fastify: FastifyInstance,
  options: AddCheckpointRouteOptions,
): Promise<void> {
  // Encapsulated: this parser applies only to this plugin's routes.
  fastify.removeAllContentTypeParsers();
  fastify.addContentTypeParser(
    '*',
    { parseAs: 'buffer', bodyLimit: options.bodyLimit },
    (request, body, done) => {
      const type = request.headers['content-type'];
      if (type !== undefined && type !== '' && !/^text\/[^;\s]+\s*(;|$)/i.test(type)) {
        done(
          new WitnessError('REQUEST_MALFORMED', `content type ${type.slice(0, 100)} is not text`),
          undefined,
        );
        return;
      }
      try {
        done(null, utf8.decode(body as Buffer));
      } catch (err) {
        done(new WitnessError('REQUEST_MALFORMED', 'body is not utf-8', { cause: err }), undefined);
      }
    },
  );

  // Before the body is read: an address out of failure budget costs one map lookup.
  fastify.addHook('onRequest', async (request) => {
    if (!options.failureLimiter.allows(addressKey(request.ip))) {
      throw new WitnessError('RATE_LIMITED', 'too many failed add-checkpoint requests from this address');
    }
  });

  fastify.post(
    '/add-checkpoint',
    { bodyLimit: options.bodyLimit },
    async (request: FastifyRequest, reply) => {
      const address = addressKey(request.ip);
      let cosignature: string;
      let origin = '';
      let oldSize = 0n;
      try {
        if (typeof request.body !== 'string')
          throw new WitnessError('REQUEST_MALFORMED', 'request has no body');
        const parsed = parseAddCheckpointRequest(request.body);
        oldSize = parsed.oldSize;
        const admit = (verified: string): void => {
          origin = verified;
          if (!options.limiter.take(origin))
            throw new WitnessError('RATE_LIMITED', `too many add-checkpoint requests for ${origin}`);
        };
        ({ cosignature } = await options.witness.addCheckpoint(parsed, { admit }));
      } catch (err) {
        if (isWitnessError(err) && UNAUTHENTICATED.has(err.code)) options.failureLimiter.take(address);
        throw err;
      }
      request.log.info({ origin, oldSize: oldSize.toString() }, 'cosigned checkpoint');
      return reply.code(200).type('text/plain; charset=utf-8').send(cosignature);
    },
  );
}
