/** Token buckets keyed by a string (emitter name or client address). rate 0 disables. */
export class RateLimiter {
  readonly #rate: number;
  readonly #burst: number;
  readonly #buckets = new Map<string, { tokens: number; at: number }>();
  readonly #maxKeys: number;
  constructor(ratePerSecond: number, burstSeconds = 2, maxKeys = 100_000) {
    this.#rate = ratePerSecond;
    this.#burst = Math.max(1, ratePerSecond * burstSeconds);
    this.#maxKeys = maxKeys;
  }

  /** Keys with a bucket (at most maxKeys: the oldest key is forgotten first). */
  get size(): number {
    return this.#buckets.size;
  }

  /** Takes `n` tokens for `key`; false when the bucket has too few (nothing is taken then). */
  take(key: string, n = 1, now = Date.now()): boolean {
    if (this.#rate <= 0) return true;
    let b = this.#buckets.get(key);
    if (!b) {
      b = { tokens: this.#burst, at: now };
      this.#buckets.set(key, b);
      if (this.#buckets.size > this.#maxKeys) this.#buckets.delete(this.#buckets.keys().next().value!);
    }
    b.tokens = Math.min(this.#burst, b.tokens + ((now - b.at) / 1000) * this.#rate);
    b.at = now;
    if (b.tokens < n) return false;
    b.tokens -= n;
    return true;
  }
}
