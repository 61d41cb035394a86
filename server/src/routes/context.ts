import { HttpError } from '../plugins/errors.js';
import type { Config } from '../config.js';
import type { Metrics } from '../tlog/metrics.js';
import type { RateLimiter } from '../tlog/rate-limit.js';
import type { Sequencer } from '../tlog/sequencer.js';
import type { Slots } from '../tlog/slots.js';
import type { LogService } from '../tlog/service.js';
import type { WitnessPusher } from '../tlog/witness-push.js';
import type { RecordVerifier } from '../tlog/verify.js';

/** What the route plugins share (built in app.ts). */
export interface RouteContext {
  config: Config;
  tlog: LogService;
  sequencer: Sequencer;
  metrics: Metrics;
  emitterLimiter: RateLimiter;
  pusher: WitnessPusher;
  verifier: RecordVerifier;
  /** Turns for GET /v1/search (config.searchConcurrency at once, config.searchQueue waiting). */
  searchSlots: Slots;
}

/** A size or index from a URL or JSON: canonical decimal, then BigInt. */
export function parseIndex(value: unknown, what: string): bigint {
  if (typeof value !== 'string' || !/^(0|[1-9][0-9]*)$/.test(value) || value.length > 20) {
    throw new HttpError('REQUEST_MALFORMED', `${what} must be a canonical decimal`);
  }
  const n = BigInt(value);
  // Sizes and indices are Postgres int8: anything past 2^63-1 can name no entry.
  if (n > 0x7fffffffffffffffn) throw new HttpError('REQUEST_MALFORMED', `${what} is out of range`);
  return n;
}
