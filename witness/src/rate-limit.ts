/**
 * A token bucket per key (the log origin for add-checkpoint). `ratePerSecond` tokens refill
 * continuously up to `burst`. The map is bounded: when it holds `maxKeys` keys, full buckets (idle
 * keys) are dropped, and if none are, the oldest key is, so an attacker cycling origins cannot grow it.
 */
export class RateLimiter {
  readonly #buckets = new Map<string, { tokens: number; at: number }>();
  readonly #ratePerSecond: number;
  readonly #burst: number;
  readonly #maxKeys: number;
  readonly #clock: () => number;

  /** Requires ratePerSecond > 0 and burst >= 1. `clock` returns milliseconds (tests pass their own). */
  constructor(options: { ratePerSecond: number; burst: number; maxKeys?: number; clock?: () => number }) {
    if (!(options.ratePerSecond > 0)) throw new RangeError(`rate ${options.ratePerSecond} must be positive`);
    if (!(options.burst >= 1)) throw new RangeError(`burst ${options.burst} must be at least 1`);
    this.#ratePerSecond = options.ratePerSecond;
    this.#burst = options.burst;
    this.#maxKeys = options.maxKeys ?? 10_000;
    this.#clock = options.clock ?? Date.now;
  }

  /** Takes one token for `key`; false when the bucket is empty (answer 429). */
  take(key: string): boolean {
    const now = this.#clock();
    let bucket = this.#buckets.get(key);
    if (bucket === undefined) {
      if (this.#buckets.size >= this.#maxKeys) this.#evict(now);
      bucket = { tokens: this.#burst, at: now };
      this.#buckets.set(key, bucket);
    } else {
      bucket.tokens = Math.min(this.#burst, bucket.tokens + ((now - bucket.at) / 1000) * this.#ratePerSecond);
      bucket.at = now;
    }
    if (bucket.tokens < 1) return false;
    bucket.tokens -= 1;
    return true;
  }

  #evict(now: number): void {
    for (const [key, bucket] of this.#buckets) {
      if (bucket.tokens + ((now - bucket.at) / 1000) * this.#ratePerSecond >= this.#burst)
        this.#buckets.delete(key);
    }
    if (this.#buckets.size >= this.#maxKeys) {
      const oldest = this.#buckets.keys().next();
      if (oldest.done !== true) this.#buckets.delete(oldest.value);
    }
  }
}
