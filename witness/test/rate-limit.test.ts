import t from 'tap';
import { RateLimiter } from '../src/rate-limit.js';

t.test('a bucket allows its burst, then refills at the rate', async (t) => {
  let now = 0;
  const limiter = new RateLimiter({ ratePerSecond: 2, burst: 3, clock: () => now });
  t.same(
    [1, 2, 3, 4].map(() => limiter.take('a')),
    [true, true, true, false],
  );
  t.equal(limiter.take('b'), true, 'keys are independent');
  now = 499;
  t.equal(limiter.take('a'), false, 'not yet a whole token');
  now = 500;
  t.equal(limiter.take('a'), true, 'one token after 500 ms at 2/s');
  t.equal(limiter.take('a'), false);
  now = 100_000;
  t.same(
    [1, 2, 3, 4].map(() => limiter.take('a')),
    [true, true, true, false],
    'refill is capped at the burst',
  );
});

t.test('the key map is bounded', async (t) => {
  let now = 0;
  const limiter = new RateLimiter({ ratePerSecond: 1, burst: 1, maxKeys: 3, clock: () => now });
  for (const k of ['a', 'b', 'c', 'd', 'e']) t.equal(limiter.take(k), true);
  // 'a' was evicted (oldest) when the map was full, so it starts with a full bucket again.
  t.equal(limiter.take('a'), true);
  now = 10;
  t.equal(limiter.take('e'), false, 'a recent key keeps its empty bucket');
});

t.test('rejects nonsense limits', async (t) => {
  t.throws(() => new RateLimiter({ ratePerSecond: 0, burst: 1 }), RangeError);
  t.throws(() => new RateLimiter({ ratePerSecond: 1, burst: 0 }), RangeError);
});
