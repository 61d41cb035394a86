// readLimited: a body within the limit is returned whole; a declared or streamed body past the limit
// is refused with RESPONSE_TOO_LARGE and the stream is cancelled, not drained.
import t from 'tap';
import { readLimited, readLimitedText } from '../src/index.js';

/** A response whose body yields `chunks` chunks of `size` bytes, counting how many were pulled. */
function streamed(chunks: number, size: number, headers: Record<string, string> = {}) {
  const state = { pulled: 0, cancelled: false };
  const body = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (state.pulled === chunks) {
        controller.close();
        return;
      }
      state.pulled += 1;
      controller.enqueue(new Uint8Array(size).fill(0x61));
    },
    cancel() {
      state.cancelled = true;
    },
  });
  return { res: new Response(body, { headers }), state };
}

t.test('bodies within the limit are returned whole', async (t) => {
  t.same(await readLimited(new Response('hello'), 5, 'greeting'), new TextEncoder().encode('hello'));
  t.equal(await readLimitedText(new Response('hello'), 5, 'greeting'), 'hello');
  t.same(await readLimited(new Response(null), 0, 'nothing'), new Uint8Array(0));
  const { res } = streamed(4, 1000);
  t.equal((await readLimited(res, 4000, 'four chunks')).length, 4000);
});

t.test('an endless body is cancelled just past the limit', async (t) => {
  const { res, state } = streamed(1_000_000, 1024);
  await t.rejects(readLimited(res, 16 * 1024, 'checkpoint'), {
    code: 'RESPONSE_TOO_LARGE',
    message: /checkpoint has at least 17408 bytes, more than the limit of 16384/,
  });
  t.ok(state.pulled <= 20, `${state.pulled} chunks pulled`);
  t.equal(state.cancelled, true, 'the stream was cancelled');
});

t.test('a declared length over the limit is refused before reading', async (t) => {
  const { res, state } = streamed(10, 1024, { 'content-length': '10240' });
  await t.rejects(readLimited(res, 8192, 'tile'), { code: 'RESPONSE_TOO_LARGE', message: /10240/ });
  t.ok(state.pulled <= 1, 'nothing read');
});

t.test('text that is not utf-8 and nonsense limits are refused', async (t) => {
  await t.rejects(readLimitedText(new Response(new Uint8Array([0xff])), 10, 'note'), {
    code: 'ENCODING_INVALID',
  });
  await t.rejects(readLimited(new Response('x'), -1, 'x'), RangeError);
});
