import t from 'tap';
import { Slots } from '../../src/tlog/slots.js';

t.test('at most concurrency holders, at most queue waiting, first come first served', async (t) => {
  const slots = new Slots(2, 1);
  const a = await slots.acquire()!;
  const b = await slots.acquire()!;
  const order: string[] = [];
  const c = slots.acquire()!.then((release) => {
    order.push('c');
    return release;
  });
  t.equal(slots.acquire(), undefined, 'wait line full');
  t.same([slots.held, slots.waiting], [2, 1]);
  a();
  a();
  const releaseC = await c;
  t.same(order, ['c']);
  t.same([slots.held, slots.waiting], [2, 0], 'a double release frees one slot only');
  b();
  releaseC();
  t.same([slots.held, slots.waiting], [0, 0]);
});

t.test('bad sizes are refused', async (t) => {
  t.throws(() => new Slots(0, 1), RangeError);
  t.throws(() => new Slots(1, -1), RangeError);
  t.throws(() => new Slots(1.5, 1), RangeError);
});
