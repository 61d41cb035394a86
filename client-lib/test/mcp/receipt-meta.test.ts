// insertMeta: the receipts go into result._meta / params._meta by inserting text; the rest of the
// message stays byte for byte (the text with the inserted span cut out is the original).
import tap from 'tap';
const t = tap;
import { insertMeta } from '../../src/mcp/receipt-meta.js';

const members = { 'io.vigil/receipt': 'tlog-proof@v1\nline "two"\n' };
const member = `"io.vigil/receipt":${JSON.stringify(members['io.vigil/receipt'])}`;

/** Checks `out` is `text` with exactly `inserted` added at one place, and parses to the expected value. */
function check(
  t: Pick<typeof tap, 'type' | 'ok' | 'equal' | 'same'>,
  text: string,
  out: string | undefined,
  inserted: string,
  expected: unknown,
): void {
  t.type(out, 'string');
  const o = out as string;
  const at = o.indexOf(inserted);
  t.ok(at > 0, 'the inserted text is there');
  t.equal(o.slice(0, at) + o.slice(at + inserted.length), text, 'nothing else changed');
  t.same(JSON.parse(o), expected);
}

t.test('result without _meta gets one, spacing and key order kept', async (t) => {
  const text =
    '{"result" : { "content":[{"type":"text","text":"a}\\"{"}] , "n":1.50 },"jsonrpc":"2.0","id":7}';
  const out = insertMeta(text, 'result', members);
  check(t, text, out, `,"_meta":{${member}}`, {
    result: { content: [{ type: 'text', text: 'a}"{' }], n: 1.5, _meta: members },
    jsonrpc: '2.0',
    id: 7,
  });
});

t.test('existing _meta keeps its members', async (t) => {
  const text = '{"jsonrpc":"2.0","id":"x","result":{"_meta":{"a":[1,{"b":"}"}]},"isError":false}}';
  check(t, text, insertMeta(text, 'result', members), `,${member}`, {
    jsonrpc: '2.0',
    id: 'x',
    result: { _meta: { a: [1, { b: '}' }], ...members }, isError: false },
  });
  const empty = '{"jsonrpc":"2.0","id":1,"result":{"_meta":{}}}';
  check(t, empty, insertMeta(empty, 'result', members), member, {
    jsonrpc: '2.0',
    id: 1,
    result: { _meta: members },
  });
  const emptyResult = '{"jsonrpc":"2.0","id":1,"result":{}}';
  check(t, emptyResult, insertMeta(emptyResult, 'result', members), `"_meta":{${member}}`, {
    jsonrpc: '2.0',
    id: 1,
    result: { _meta: members },
  });
});

t.test('a notification without params gets params._meta', async (t) => {
  const text = '{"jsonrpc":"2.0","method":"notifications/message"}';
  check(t, text, insertMeta(text, 'params', members), `,"params":{"_meta":{${member}}}`, {
    jsonrpc: '2.0',
    method: 'notifications/message',
    params: { _meta: members },
  });
});

t.test('what is not an object with an object container is left alone', async (t) => {
  t.equal(insertMeta('[{"result":{}}]', 'result', members), undefined, 'a batch');
  t.equal(insertMeta('{"result":[]}', 'result', members), undefined, 'a result that is not an object');
  t.equal(insertMeta('{"result":{"_meta":1}}', 'result', members), undefined, '_meta not an object');
  t.equal(insertMeta('{"error":{"code":1}}', 'result', members), undefined, 'an error');
  t.equal(insertMeta('{"result":{}} x', 'result', members), undefined, 'trailing garbage');
  t.equal(insertMeta('{"result":{', 'result', members), undefined, 'truncated');
});
