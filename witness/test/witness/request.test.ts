import t from 'tap';
import { base64Encode } from '@vigil/client';
import { formatAddCheckpointRequest, parseAddCheckpointRequest } from '../../src/witness/request.js';

const NOTE = 'example.com/log\n1\nKgAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\n— example.com/log AAAA\n';
const HASH = base64Encode(new Uint8Array(32).fill(9));

t.test('parses old, proof and note (c2sp.org/tlog-witness add-checkpoint body)', async (t) => {
  const parsed = parseAddCheckpointRequest(`old 3\n${HASH}\n${HASH}\n\n${NOTE}`);
  t.equal(parsed.oldSize, 3n);
  t.equal(parsed.proof.length, 2);
  t.same(parsed.proof[0], new Uint8Array(32).fill(9));
  t.equal(parsed.note, NOTE);
  t.equal(formatAddCheckpointRequest(parsed), `old 3\n${HASH}\n${HASH}\n\n${NOTE}`);
});

t.test('parses an empty proof', async (t) => {
  const parsed = parseAddCheckpointRequest(`old 0\n\n${NOTE}`);
  t.equal(parsed.oldSize, 0n);
  t.same(parsed.proof, []);
});

t.test('63 proof hashes are accepted, 64 are not', async (t) => {
  const proof = (n: number) => `${HASH}\n`.repeat(n);
  t.equal(parseAddCheckpointRequest(`old 1\n${proof(63)}\n${NOTE}`).proof.length, 63);
  t.throws(() => parseAddCheckpointRequest(`old 1\n${proof(64)}\n${NOTE}`), { code: 'REQUEST_MALFORMED' });
});

const malformed: [string, string][] = [
  ['empty body', ''],
  ['no newline', 'old 0'],
  ['no old line', `new 0\n\n${NOTE}`],
  ['old with leading zero', `old 01\n\n${NOTE}`],
  ['old with sign', `old +1\n\n${NOTE}`],
  ['old with two spaces', `old  1\n\n${NOTE}`],
  ['old negative', `old -1\n\n${NOTE}`],
  ['old not a number', `old one\n\n${NOTE}`],
  ['missing blank line', `old 0\n${NOTE}`],
  ['no checkpoint', 'old 0\n\n'],
  ['proof hash not base64', `old 1\nnot base64!\n\n${NOTE}`],
  ['proof hash non-canonical base64', `old 1\n${HASH.slice(0, -2)}B=\n\n${NOTE}`],
  ['proof hash of 31 bytes', `old 1\n${base64Encode(new Uint8Array(31))}\n\n${NOTE}`],
  ['proof hash of 33 bytes', `old 1\n${base64Encode(new Uint8Array(33))}\n\n${NOTE}`],
  ['carriage return line ending', `old 0\r\n\r\n${NOTE}`],
];
for (const [name, body] of malformed) {
  t.test(`rejects ${name}`, async (t) => {
    t.throws(() => parseAddCheckpointRequest(body), { code: 'REQUEST_MALFORMED' });
  });
}
