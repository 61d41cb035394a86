import t from 'tap';
import { addressKey, RateLimiter } from '../src/rate-limit.js';

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

t.test('allows() reports a whole token without taking it', async (t) => {
  let now = 0;
  const limiter = new RateLimiter({ ratePerSecond: 1, burst: 1, clock: () => now });
  t.equal(limiter.allows('a'), true, 'unknown key');
  t.equal(limiter.size, 0, 'allows() adds no key');
  t.equal(limiter.take('a'), true);
  t.equal(limiter.allows('a'), false);
  t.equal(limiter.allows('a'), false, 'still no token: allows() took none');
  now = 1000;
  t.equal(limiter.allows('a'), true);
  t.equal(limiter.take('a'), true);
});

t.test('a flood of distinct keys keeps the map at maxKeys, dropping the least recently used', async (t) => {
  let now = 0;
  const limiter = new RateLimiter({ ratePerSecond: 0.001, burst: 1, maxKeys: 100, clock: () => now });
  t.equal(limiter.take('log'), true);
  for (let i = 0; i < 100_000; i++) {
    limiter.take(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`);
    if (i % 50 === 0) {
      now += 1;
      t.equal(limiter.take('log'), false, 'a key in use keeps its empty bucket');
    }
  }
  t.equal(limiter.size, 100);
});

t.test('addressKey: IPv4 as is, IPv4-mapped as IPv4, IPv6 by its /64', async (t) => {
  t.equal(addressKey('203.0.113.7'), '203.0.113.7');
  t.equal(addressKey('::ffff:203.0.113.7'), '203.0.113.7');
  t.equal(addressKey('2001:db8:1:2:3:4:5:6'), '2001:db8:1:2::/64');
  t.equal(addressKey('2001:db8:1:2::9'), '2001:db8:1:2::/64');
  t.equal(addressKey('2001:0DB8:0001:0002:ffff::1'), '2001:db8:1:2::/64');
  t.equal(addressKey('2001:db8::1'), '2001:db8:0:0::/64');
  t.equal(addressKey('::1'), '0:0:0:0::/64');
  t.equal(addressKey('fe80::1%eth0'), 'fe80:0:0:0::/64');
  t.equal(addressKey('64:ff9b::192.0.2.1'), '64:ff9b:0:0::/64');
  t.equal(addressKey(''), '');
});

t.test('rejects nonsense limits', async (t) => {
  t.throws(() => new RateLimiter({ ratePerSecond: 0, burst: 1 }), RangeError);
  t.throws(() => new RateLimiter({ ratePerSecond: 1, burst: 0 }), RangeError);
  t.throws(() => new RateLimiter({ ratePerSecond: 1, burst: 1, maxKeys: 0 }), RangeError);
});
