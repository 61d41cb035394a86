/**
 * Retry timing for the shipper: exponential backoff with jitter, and Retry-After honoured.
 * Pure: the random source is injected so tests can pin it.
 */

export interface BackoffOptions {
  /** First delay ceiling; default 250 ms. */
  baseMs?: number;
  /** Largest delay ceiling; default 30 s. */
  maxMs?: number;
  /** Largest Retry-After honoured; default 10 min (a hostile header cannot park the emitter forever). */
  maxRetryAfterMs?: number;
  /** Returns a number in [0, 1); default Math.random. */
  random?: () => number;
}

/**
 * Attempt n (0-based) waits a uniformly random time in [ceil/2, ceil] with ceil = min(max, base * 2^n)
 * ("equal jitter": never hammers, never waits zero). With a server's Retry-After the delay is that
 * time plus up to 10% jitter (so many emitters told the same time do not return together), capped at
 * maxRetryAfterMs so a hostile header cannot park the emitter forever, and never shorter than the
 * computed delay.
 */
export class Backoff {
  private attempt = 0;
  private readonly baseMs: number;
  private readonly maxMs: number;
  private readonly random: () => number;
  private readonly maxRetryAfterMs: number;

  constructor(options: BackoffOptions = {}) {
    this.baseMs = options.baseMs ?? 250;
    this.maxMs = options.maxMs ?? 30_000;
    this.random = options.random ?? Math.random;
    this.maxRetryAfterMs = options.maxRetryAfterMs ?? 600_000;
  }

  /** The delay before the next attempt; advances the attempt counter. */
  next(retryAfterMs?: number): number {
    const n = this.attempt++;
    const ceil = Math.min(this.maxMs, this.baseMs * 2 ** Math.min(n, 30));
    const computed = Math.floor(ceil / 2 + this.random() * (ceil / 2));
    if (retryAfterMs === undefined) return computed;
    // Never earlier than the server asked; never a hot loop on "Retry-After: 0".
    const wait = Math.min(retryAfterMs, this.maxRetryAfterMs);
    return Math.max(wait + Math.floor(this.random() * 0.1 * wait), computed);
  }

  /** Number of failed attempts since the last reset. */
  get attempts(): number {
    return this.attempt;
  }

  /** Call after a success. */
  reset(): void {
    this.attempt = 0;
  }
}
