import { isIPv6 } from 'node:net';

/**
 * A token bucket per key. `ratePerSecond` tokens refill continuously up to `burst`. The map is bounded
 * and kept in least-recently-used order: when it holds `maxKeys` keys, the key used longest ago is
 * dropped (O(1)), so an attacker cycling keys (origins, addresses) cannot grow it; a dropped key
 * starts again with a full bucket, which is what an idle key would have had anyway.
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
    if (options.maxKeys !== undefined && !(options.maxKeys >= 1))
      throw new RangeError(`maxKeys ${options.maxKeys} must be at least 1`);
    this.#ratePerSecond = options.ratePerSecond;
    this.#burst = options.burst;
    this.#maxKeys = options.maxKeys ?? 10_000;
    this.#clock = options.clock ?? Date.now;
  }

  /** Keys currently held (at most maxKeys). */
  get size(): number {
    return this.#buckets.size;
  }

  /** Takes one token for `key`; false when the bucket is empty (answer 429). */
  take(key: string): boolean {
    const bucket = this.#refill(key);
    if (bucket.tokens < 1) return false;
    bucket.tokens -= 1;
    return true;
  }

  /** Whether `key` has a whole token left, without taking it. */
  allows(key: string): boolean {
    const bucket = this.#buckets.get(key);
    if (bucket === undefined) return true;
    return bucket.tokens + ((this.#clock() - bucket.at) / 1000) * this.#ratePerSecond >= 1;
  }

  /** The bucket of `key`, refilled to now and moved to the most recently used end of the map. */
  #refill(key: string): { tokens: number; at: number } {
    const now = this.#clock();
    let bucket = this.#buckets.get(key);
    if (bucket === undefined) {
      if (this.#buckets.size >= this.#maxKeys) {
        const oldest = this.#buckets.keys().next();
        if (oldest.done !== true) this.#buckets.delete(oldest.value);
      }
      bucket = { tokens: this.#burst, at: now };
    } else {
      this.#buckets.delete(key);
      bucket.tokens = Math.min(this.#burst, bucket.tokens + ((now - bucket.at) / 1000) * this.#ratePerSecond);
      bucket.at = now;
    }
    this.#buckets.set(key, bucket);
    return bucket;
  }
}

/**
 * The rate-limit key of a client address: an IPv4 address as is (an IPv4-mapped IPv6 address as its
 * IPv4 form), an IPv6 address by its /64 prefix, since one host commonly holds a whole /64 and could
 * otherwise get a fresh bucket for every request. Anything else (no address) is returned unchanged.
 */
export function addressKey(ip: string): string {
  const bare = ip.replace(/%.*$/, '');
  if (!isIPv6(bare)) return ip;
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(bare);
  if (mapped !== null) return mapped[1]!;
  const [head = '', tail] = bare.split('::') as [string, string | undefined];
  const groupsOf = (s: string): string[] =>
    s === '' ? [] : s.split(':').flatMap((g) => (g.includes('.') ? ['0', '0'] : [g]));
  const left = groupsOf(head);
  const right = tail === undefined ? [] : groupsOf(tail);
  const groups = [...left, ...Array<string>(Math.max(0, 8 - left.length - right.length)).fill('0'), ...right];
  return `${groups
    .slice(0, 4)
    .map((g) => parseInt(g, 16).toString(16))
    .join(':')}::/64`;
}
