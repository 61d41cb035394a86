// Backoff timing: exponential growth with equal jitter, cap, Retry-After honoured and capped, reset.
import t from 'tap';
import { Backoff } from '../../src/emitter/backoff.js';
import { parseRetryAfter } from '../../src/client.js';

t.test('grows exponentially within [ceil/2, ceil] and caps at maxMs', async (t) => {
  const lo = new Backoff({ baseMs: 100, maxMs: 1000, random: () => 0 });
  t.same(
    [1, 2, 3, 4, 5, 6].map(() => lo.next()),
    [50, 100, 200, 400, 500, 500],
  );
  const hi = new Backoff({ baseMs: 100, maxMs: 1000, random: () => 0.999999 });
  t.same(
    [1, 2, 3, 4, 5].map(() => hi.next()),
    [99, 199, 399, 799, 999],
  );
  t.equal(hi.attempts, 5);
  hi.reset();
  t.equal(hi.attempts, 0);
  t.equal(hi.next(), 99, 'starts over after a reset');
});

t.test('Retry-After replaces the computed delay, with up to 10% jitter, capped', async (t) => {
  t.equal(new Backoff({ random: () => 0 }).next(3000), 3000);
  t.equal(new Backoff({ random: () => 0.5 }).next(3000), 3150);
  t.equal(new Backoff({ random: () => 0, maxRetryAfterMs: 60_000 }).next(86_400_000), 60_000);
  const zero = new Backoff({ baseMs: 100, random: () => 0 });
  t.same([zero.next(0), zero.next(0), zero.next(0)], [50, 100, 200], 'Retry-After: 0 still backs off');
});

t.test('parseRetryAfter reads seconds and HTTP dates', async (t) => {
  const now = Date.parse('2026-11-24T10:00:00Z');
  t.equal(parseRetryAfter('7', now), 7000);
  t.equal(parseRetryAfter('Tue, 24 Nov 2026 10:00:30 GMT', now), 30_000);
  t.equal(parseRetryAfter('Tue, 24 Nov 2026 09:00:00 GMT', now), 0, 'a date in the past means now');
  t.equal(parseRetryAfter('soon', now), undefined);
  t.equal(parseRetryAfter(null, now), undefined);
});
