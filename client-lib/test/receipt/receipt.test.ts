// Vector: note.json tlog_proof_example (DERIVED: tessera testdata log, leaf 7, with the derived Wit1 cosignature).
import { readFileSync } from 'node:fs';
import t from 'tap';
import {
  formatReceipt,
  parsePolicy,
  parseReceipt,
  verifyReceipt,
  type VerifiedCheckpoint,
} from '../../src/index.js';

const notes = JSON.parse(readFileSync(new URL('../../../test/vectors/note.json', import.meta.url), 'utf8'));
const ex = notes.tlog_proof_example;
const entry = new TextEncoder().encode(ex.leaf_data_utf8);
const wit2 = notes.keys.find((k: { name: string }) => k.name === 'Wit2').vkey;
const policy = parsePolicy(`log ${ex.log_vkey}\nwitness w1 ${ex.witness_cosigner_vkey_type04}\nquorum w1\n`);

t.test('the example receipt verifies', async (t) => {
  const r = verifyReceipt(ex.proof_text, entry, policy);
  t.equal(r.index, BigInt(ex.leaf_index));
  t.equal(r.checkpoint.size, 15n);
  t.same(r.cosigners, ['w1']);
  const parsed = parseReceipt(ex.proof_text);
  t.equal(formatReceipt(parsed), ex.proof_text);
  const withExtra = formatReceipt({ ...parsed, extra: Uint8Array.of(1, 2, 3) });
  t.same(parseReceipt(withExtra).extra, Uint8Array.of(1, 2, 3));
  t.equal(verifyReceipt(withExtra, entry, policy).index, 7n);
});

t.test('mutations', async (t) => {
  t.throws(
    () => verifyReceipt(ex.proof_text, new TextEncoder().encode('eight'), policy),
    { code: 'PROOF_INVALID' },
    'wrong entry',
  );
  const parsed = parseReceipt(ex.proof_text);
  parsed.proof.forEach((_, i) => {
    const proof = parsed.proof.map((p) => p.slice());
    proof[i]![0]! ^= 1;
    t.throws(
      () => verifyReceipt(formatReceipt({ ...parsed, proof }), entry, policy),
      { code: 'PROOF_INVALID' },
      `flipped proof hash ${i}`,
    );
  });
  t.throws(
    () => verifyReceipt(formatReceipt({ ...parsed, index: 6n }), entry, policy),
    { code: 'PROOF_INVALID' },
    'index - 1',
  );
  t.throws(
    () => verifyReceipt(formatReceipt({ ...parsed, index: 8n }), entry, policy),
    { code: 'PROOF_INVALID' },
    'index + 1',
  );
  t.throws(() => verifyReceipt(formatReceipt({ ...parsed, index: 15n }), entry, policy), {
    code: 'INDEX_OUT_OF_RANGE',
  });
  const noWitness = parsePolicy(`log ${ex.log_vkey}\nwitness w2 ${wit2}\nquorum w2\n`);
  t.throws(
    () => verifyReceipt(ex.proof_text, entry, noWitness),
    { code: 'QUORUM_NOT_MET' },
    'policy without the witness',
  );
  const noneNeeded = parsePolicy(`log ${ex.log_vkey}\nquorum none\n`);
  t.same(verifyReceipt(ex.proof_text, entry, noneNeeded).cosigners, []);
  const otherLog = parsePolicy(`log ${wit2}\nquorum none\n`);
  t.throws(() => verifyReceipt(ex.proof_text, entry, otherLog), { code: 'NO_KNOWN_SIGNATURE' });
  t.throws(() => parseReceipt(`${ex.proof_text}x`), { code: 'RECEIPT_MALFORMED' }, 'trailing garbage');
  t.throws(
    () => parseReceipt(ex.proof_text.replace('index 7', 'index 07')),
    { code: 'RECEIPT_MALFORMED' },
    'non-canonical index',
  );
  t.throws(() => parseReceipt(ex.proof_text.replace('c2sp.org/tlog-proof@v1', 'c2sp.org/tlog-proof@v2')), {
    code: 'RECEIPT_MALFORMED',
  });
  t.throws(() => parseReceipt(ex.proof_text.replace('2Q0P5jSR', '2Q0P5jS')), { code: 'RECEIPT_MALFORMED' });
});

t.test('a checkpoint cache skips the signatures of a note already verified, never the proof', async (t) => {
  const cache = new Map<string, VerifiedCheckpoint>();
  const parsed = parseReceipt(ex.proof_text);
  t.equal(verifyReceipt(ex.proof_text, entry, policy, cache).index, 7n);
  t.equal(cache.size, 1, 'the verified note is remembered');
  t.ok(cache.has(parsed.note));
  t.equal(verifyReceipt(ex.proof_text, entry, policy, cache).index, 7n, 'verified again from the cache');
  // The inclusion proof is still checked for every receipt.
  t.throws(() => verifyReceipt(ex.proof_text, new TextEncoder().encode('eight'), policy, cache), {
    code: 'PROOF_INVALID',
  });
  // A note that does not verify is not remembered, and fails every time.
  const badNote = parsed.note.replace(/^(.*\n)(\d+)\n/, (_m, o: string) => `${o}16\n`);
  t.not(badNote, parsed.note);
  const bad = formatReceipt({ ...parsed, note: badNote });
  const empty = new Map<string, VerifiedCheckpoint>();
  for (let i = 0; i < 2; i++) t.throws(() => verifyReceipt(bad, entry, policy, empty));
  t.equal(empty.size, 0);
});
