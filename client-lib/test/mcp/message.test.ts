import t from 'tap';
import {
  canonicalBytes,
  classifyMessage,
  isBlobRef,
  parseMessage,
  resolveBlobs,
  shrinkToFit,
} from '../../src/mcp/message.js';
import type { JsonValue } from '../../src/mcp/types.js';

t.test('classifies JSON-RPC messages, keeping the id type', async (t) => {
  t.match(parseMessage('{"method":"tools/call","params":{"name":"echo"},"jsonrpc":"2.0","id":2}'), {
    type: 'request',
    id: 2,
    method: 'tools/call',
    name: 'echo',
  });
  t.equal(parseMessage('{"jsonrpc":"2.0","id":"2","method":"x"}').id, '2');
  t.equal(parseMessage('{"method":"notifications/initialized","jsonrpc":"2.0"}').type, 'notification');
  t.equal(parseMessage('{"result":{},"jsonrpc":"2.0","id":0}').type, 'result');
  t.same(parseMessage('{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"x"}}'), {
    type: 'error',
    id: null,
    message: { jsonrpc: '2.0', id: null, error: { code: -32700, message: 'x' } },
  });
  t.equal(parseMessage('[{"jsonrpc":"2.0","id":1,"method":"a"}]').type, 'batch');
  t.same(parseMessage('not json'), { type: 'invalid' });
  t.equal(parseMessage('42').type, 'other');
  t.equal(classifyMessage({ jsonrpc: '2.0', id: 1 }).type, 'other');
  t.match(parseMessage('{"jsonrpc":"2.0","id":null,"method":"tools/call","params":{"name":"rm"}}'), {
    type: 'request',
    id: null,
    name: 'rm',
  });
  t.match(parseMessage('{"jsonrpc":"2.0","id":{"a":1},"method":"x"}'), { type: 'request', id: null });
  t.equal(parseMessage('{"jsonrpc":"2.0","method":"x","params":{"uri":"file:///a"}}').uri, 'file:///a');
});

t.test('shrinkToFit moves the bulky values into blobs and resolveBlobs restores them', async (t) => {
  const big = 'x'.repeat(100_000);
  const value: JsonValue = {
    jsonrpc: '2.0',
    id: 7,
    result: {
      content: [
        { type: 'text', text: big },
        { type: 'text', text: 'small' },
      ],
    },
  };
  const blobs: Record<string, Uint8Array> = {};
  const small = shrinkToFit(value, 4096, blobs);
  t.ok(canonicalBytes(small).length <= 4096, 'fits');
  t.equal(Object.keys(blobs).length, 1, 'one blob');
  const shrunk = small as { id: number; result: { content: [{ text: unknown }, { text: string }] } };
  t.equal(shrunk.id, 7, 'small members stay');
  t.equal(shrunk.result.content[1].text, 'small');
  t.ok(isBlobRef(shrunk.result.content[0].text), 'the big string became a blob');
  const restored = await resolveBlobs(small, (h) => blobs[h] ?? new Uint8Array());
  t.same(restored, value);
  await t.rejects(
    resolveBlobs(small, () => new TextEncoder().encode('"tampered"')),
    /does not match/,
  );
  const untouched = shrinkToFit({ a: 1 }, 4096, blobs);
  t.same(untouched, { a: 1 });
});
