import { readFileSync } from 'node:fs';
import t from 'tap';
import {
  cosign,
  formatPolicy,
  parsePolicy,
  signNote,
  verifyCheckpoint,
  generateKey,
  cosignerVerifierKey,
} from '../../src/index.js';

const notes = JSON.parse(readFileSync(new URL('../../../test/vectors/note.json', import.meta.url), 'utf8'));
const seed = (n: number): Uint8Array => new Uint8Array(32).fill(n);
const log = generateKey('example.com/log', seed(1));
const w = [2, 3, 4, 5].map((n) => generateKey(`w${n}.example`, seed(n)));
const checkpoint = 'example.com/log\n3\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n';
const note = signNote(checkpoint, [log.signerKey]);

const policyText = [
  '# test policy',
  `log ${log.verifierKey} https://log.example`,
  `witness a ${cosignerVerifierKey(w[0]!.signerKey)}`,
  `witness b ${w[1]!.verifierKey} https://b.example`,
  `witness c ${w[2]!.verifierKey}`,
  `witness d ${w[3]!.verifierKey}`,
  'group ab 1 a b',
  'group cd all c d',
  'group top 2 ab cd  # both groups',
  'quorum top',
  '',
].join('\n');

t.test('parse and format', async (t) => {
  const p = parsePolicy(policyText);
  t.equal(p.logs.length, 1);
  t.equal(p.logs[0]!.url, 'https://log.example');
  t.same(
    p.witnesses.map((x) => x.name),
    ['a', 'b', 'c', 'd'],
  );
  t.same(
    p.groups.map((g) => [g.name, g.threshold]),
    [
      ['ab', 1],
      ['cd', 2],
      ['top', 2],
    ],
  );
  t.equal(p.quorum, 'top');
  t.same(parsePolicy(formatPolicy(p)), p);
  for (const [bad, why] of [
    [`log ${log.verifierKey}\n`, 'no quorum'],
    ['quorum none\n', 'no log'],
    [`log ${log.verifierKey}\nquorum x\n`, 'unknown quorum'],
    [`log ${log.verifierKey}\ngroup g 1 x\nquorum g\n`, 'unknown member'],
    [`log ${log.verifierKey}\nquorum g\nwitness g ${w[0]!.verifierKey}\n`, 'forward reference'],
    [
      `log ${log.verifierKey}\nwitness a ${w[0]!.verifierKey}\nwitness a ${w[1]!.verifierKey}\nquorum a\n`,
      'duplicate name',
    ],
    [
      `log ${log.verifierKey}\nwitness a ${w[0]!.verifierKey}\ngroup g 2 a\nquorum g\n`,
      'threshold above members',
    ],
    [`log ${log.verifierKey}\nwitness a ${w[0]!.verifierKey}\ngroup g 0 a\nquorum g\n`, 'threshold 0'],
    [`log ${log.verifierKey}x\nquorum none\n`, 'bad vkey'],
    [`log ${log.verifierKey}\nquorum none\nquorum none\n`, 'two quorums'],
    [`log ${log.verifierKey}\nfoo bar\nquorum none\n`, 'unknown keyword'],
  ] as const) {
    t.throws(() => parsePolicy(bad), { code: 'POLICY_MALFORMED' }, why);
  }
});

t.test('two witness names with one key are refused: one witness must not count twice', async (t) => {
  const one = w[0]!;
  // The attack: a 2-of-2 group whose members are the same key, met by a single cosignature.
  const twice = `log ${log.verifierKey}\nwitness a ${one.verifierKey}\nwitness b ${one.verifierKey}\ngroup g 2 a b\nquorum g\n`;
  t.throws(() => parsePolicy(twice), {
    code: 'POLICY_DUPLICATE_KEY',
    message: /line 3: witness b has the same public key as witness a/,
  });
  // The same public key as a cosigner key (type 0x04) or under another key name is the same witness.
  const renamed = generateKey('another-name.example', seed(2)).verifierKey;
  for (const [other, why] of [
    [cosignerVerifierKey(one.signerKey), 'type 0x01 and 0x04'],
    [renamed, 'another key name'],
  ] as const) {
    t.throws(
      () =>
        parsePolicy(`log ${log.verifierKey}\nwitness a ${one.verifierKey}\nwitness b ${other}\nquorum a\n`),
      { code: 'POLICY_DUPLICATE_KEY' },
      why,
    );
  }
  // Distinct keys are fine.
  const ok = parsePolicy(
    `log ${log.verifierKey}\nwitness a ${one.verifierKey}\nwitness b ${w[1]!.verifierKey}\ngroup g 2 a b\nquorum g\n`,
  );
  t.throws(() => verifyCheckpoint(note + cosign(note, one.signerKey, 1700000000), ok), {
    code: 'QUORUM_NOT_MET',
  });
});

t.test('verifyCheckpoint evaluates the quorum recursively', async (t) => {
  const p = parsePolicy(policyText);
  const sign = (...idx: number[]): string =>
    note + idx.map((i) => cosign(note, w[i]!.signerKey, 1700000000 + i)).join('');
  t.throws(() => verifyCheckpoint(note, p), { code: 'QUORUM_NOT_MET' });
  t.throws(() => verifyCheckpoint(sign(0, 1), p), { code: 'QUORUM_NOT_MET' }, 'ab met, cd not');
  t.throws(() => verifyCheckpoint(sign(0, 2), p), { code: 'QUORUM_NOT_MET' }, 'cd needs both');
  const ok = verifyCheckpoint(sign(1, 2, 3), p);
  t.equal(ok.logName, 'example.com/log');
  t.equal(ok.checkpoint.size, 3n);
  t.same(
    [...ok.cosigners.entries()],
    [
      ['b', 1700000001n],
      ['c', 1700000002n],
      ['d', 1700000003n],
    ],
  );
  // A failing cosignature by a policy witness is an error, not ignored.
  const good = sign(0, 2, 3);
  const badLine = cosign(note.replace('\n3\n', '\n4\n'), w[1]!.signerKey, 5);
  t.throws(() => verifyCheckpoint(good + badLine, p), { code: 'COSIGNATURE_INVALID' });
  // Origin must match the log key name.
  const other = generateKey('example.com/other', seed(9));
  const p2 = parsePolicy(`log ${other.verifierKey}\nquorum none\n`);
  t.throws(() => verifyCheckpoint(signNote(checkpoint, [other.signerKey]), p2), { code: 'ORIGIN_MISMATCH' });
  t.throws(() => verifyCheckpoint(note, p2), { code: 'NO_KNOWN_SIGNATURE' });
});

t.test('tessera example with type 0x01 and 0x04 witness keys', async (t) => {
  const ex = notes.tlog_proof_example;
  const wit1 = notes.keys.find((k: { name: string }) => k.name === 'Wit1').vkey;
  const cp = ex.proof_text.slice(ex.proof_text.indexOf('\n\n') + 2);
  for (const wk of [wit1, ex.witness_cosigner_vkey_type04]) {
    const v = verifyCheckpoint(cp, parsePolicy(`log ${ex.log_vkey}\nwitness w ${wk}\nquorum w\n`));
    t.equal(v.cosigners.get('w'), 1679315147n);
  }
});
