import type { FastifyInstance, FastifyRequest } from 'fastify';
import { WitnessError } from '../errors.js';
import type { RateLimiter } from '../rate-limit.js';
import { parseAddCheckpointRequest } from '../witness/request.js';
import type { Witness } from '../witness/witness.js';

export interface AddCheckpointRouteOptions {
  witness: Witness;
  limiter: RateLimiter;
  bodyLimit: number;
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * `POST /add-checkpoint` (c2sp.org/tlog-witness). The body is text: logs send
 * `text/plain; charset=utf-8`, but any `text/*` and a missing content type are accepted, as the spec
 * names no content type for the request. 200 answers the cosignature line(s) as text/plain.
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

  fastify.post(
    '/add-checkpoint',
    { bodyLimit: options.bodyLimit },
    async (request: FastifyRequest, reply) => {
      if (typeof request.body !== 'string')
        throw new WitnessError('REQUEST_MALFORMED', 'request has no body');
      const parsed = parseAddCheckpointRequest(request.body);
      const origin = options.witness.originOf(parsed.note);
      if (!options.limiter.take(origin)) {
        throw new WitnessError('RATE_LIMITED', `too many add-checkpoint requests for ${origin}`);
      }
      const { cosignature } = await options.witness.addCheckpoint(parsed);
      request.log.info({ origin, oldSize: parsed.oldSize.toString() }, 'cosigned checkpoint');
      return reply.code(200).type('text/plain; charset=utf-8').send(cosignature);
    },
  );
}
