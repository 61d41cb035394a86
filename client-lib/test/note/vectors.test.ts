// Vectors: client-lib/test/vectors/note.json (golang/mod sumdb/note, BSD-3-Clause; C2SP specs;
// Tessera, Sunlight and transparency-dev/formats test data). Regenerate: see vectors/README.md.
import { readFileSync } from 'node:fs';
import t from 'tap';
import {
  cosign,
  cosignerKeyFromVerifierKey,
  cosignerVerifierKey,
  formatCheckpoint,
  formatVerifierKey,
  generateKey,
  keyId,
  openNote,
  parseCheckpoint,
  parseNote,
  parseSignerKey,
  parseVerifierKey,
  signNote,
  verifyCosignature,
  verifierKeyFromSignerKey,
} from '../../src/index.js';

const v = JSON.parse(readFileSync(new URL('../../../test/vectors/note.json', import.meta.url), 'utf8'));
const hx = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'hex'));
const toHex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
type Key = {
  label: string;
  name: string;
  vkey: string;
  key_id_hex: string;
  sig_type: number;
  public_key_hex: string;
  skey?: string;
  seed_hex?: string;
};
const keys: Key[] = v.keys;
const vkeyOf = (name: string): string => keys.find((k) => k.name === name)!.vkey;

t.test('keys', async (t) => {
  for (const k of keys) {
    t.test(k.label, async (t) => {
      const p = parseVerifierKey(k.vkey);
      t.equal(p.name, k.name);
      t.equal(p.keyId.toString(16).padStart(8, '0'), k.key_id_hex);
      t.equal(p.type, k.sig_type);
      t.equal(toHex(p.publicKey), k.public_key_hex);
      t.equal(keyId(k.name, k.sig_type, p.publicKey), p.keyId);
      t.equal(formatVerifierKey(p.name, p.type, p.publicKey), k.vkey);
      if (k.skey !== undefined && k.seed_hex !== undefined) {
        const s = parseSignerKey(k.skey);
        t.equal(toHex(s.seed), k.seed_hex);
        t.equal(toHex(s.publicKey), k.public_key_hex);
        t.same(generateKey(k.name, hx(k.seed_hex)), { signerKey: k.skey, verifierKey: k.vkey });
        t.equal(verifierKeyFromSignerKey(k.skey), k.vkey);
      }
      t.throws(() => parseVerifierKey(`${k.vkey}A`), { code: 'KEY_MALFORMED' }, 'trailing garbage');
      t.throws(() => parseVerifierKey(`${k.vkey}\n`), { code: 'KEY_MALFORMED' }, 'trailing newline');
      t.throws(
        () => parseVerifierKey(k.vkey.replace(k.key_id_hex, k.key_id_hex.toUpperCase())),
        { code: 'KEY_MALFORMED' },
        'uppercase key id',
      );
    });
  }
  for (const bad of v.invalid_vkeys)
    t.throws(() => parseVerifierKey(bad.vkey), { code: 'KEY_MALFORMED' }, bad.why);
  t.throws(() => parseVerifierKey('Bad Name+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW'), {
    code: 'KEY_MALFORMED',
  });
  t.throws(
    () => parseVerifierKey('PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TX'),
    { code: 'KEY_MALFORMED' },
    'non-canonical base64',
  );
  t.throws(
    () => parseSignerKey('PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz '),
    { code: 'KEY_MALFORMED' },
  );
  t.throws(
    () => parseSignerKey('PRIVATE+KEY+PeterNeumann+c74f20a4+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz'),
    { code: 'KEY_MALFORMED' },
    'wrong key id',
  );
});

t.test('fixed-seed round trip for every key type', async (t) => {
  const seed = new Uint8Array(32).fill(7);
  const { signerKey, verifierKey } = generateKey('example.com/round', seed);
  t.same(generateKey('example.com/round', seed), { signerKey, verifierKey });
  const v4 = cosignerVerifierKey(signerKey);
  const p4 = parseVerifierKey(v4);
  t.equal(p4.type, 4);
  t.same(cosignerKeyFromVerifierKey(verifierKey), p4);
  t.same(cosignerKeyFromVerifierKey(v4), p4);
  t.not(parseVerifierKey(verifierKey).keyId, p4.keyId);
  const random = generateKey('r');
  t.not(random.signerKey, generateKey('r').signerKey);
});

t.test('signed notes', async (t) => {
  for (const n of v.signed_notes) {
    t.test(n.id, async (t) => {
      const verifiers = (n.verifies_with as string[]).map(vkeyOf);
      if (n.expect.startsWith('valid')) {
        const opened = openNote(n.note, verifiers);
        t.equal(opened.text, n.text);
        t.ok(opened.signatures.some((s) => s.verified));
        if (n.id === 'peter+enoch') {
          const onlyPeter = openNote(n.note, [vkeyOf('PeterNeumann')]);
          t.same(
            onlyPeter.signatures.map((s) => s.verified),
            [true, false],
          );
        }
        const signers = (n.verifies_with as string[])
          .map((name) => keys.find((k) => k.name === name)!.skey)
          .filter((s) => s !== undefined);
        if (signers.length === verifiers.length)
          t.equal(signNote(n.text, signers), n.note, 'reproducible from seeds');
      } else if (n.id === 'peter-unknown-keys') {
        t.throws(() => openNote(n.note, verifiers), { code: 'NO_KNOWN_SIGNATURE' });
        t.throws(
          () => openNote(n.note, [vkeyOf('Wit1')]),
          { code: 'NO_KNOWN_SIGNATURE' },
          'signature by an unknown key only',
        );
      } else {
        t.throws(() => openNote(n.note, verifiers), { code: 'SIGNATURE_INVALID' });
      }
    });
  }
  const peter = v.signed_notes[0];
  t.throws(
    () => openNote(`${peter.note}x`, [vkeyOf('PeterNeumann')]),
    { code: 'NOTE_MALFORMED' },
    'trailing garbage',
  );
  t.throws(
    () => openNote(`${peter.note}\n`, [vkeyOf('PeterNeumann')]),
    { code: 'NOTE_MALFORMED' },
    'trailing blank line',
  );
  t.throws(
    () => openNote(peter.note.replace('AM=\n', 'AN=\n'), [vkeyOf('PeterNeumann')]),
    { code: 'NOTE_MALFORMED' },
    'non-canonical base64',
  );
  const flipped = peter.note.replace('answer', 'answeR');
  t.throws(() => openNote(flipped, [vkeyOf('PeterNeumann')]), { code: 'SIGNATURE_INVALID' }, 'text changed');
  const many = peter.text + '\n' + (peter.note.slice(peter.text.length + 1) as string).repeat(101);
  t.throws(() => parseNote(many), { code: 'NOTE_MALFORMED' }, '101 signatures');
  t.equal(
    parseNote(peter.text + '\n' + (peter.note.slice(peter.text.length + 1) as string).repeat(100))
      .signatureLines.length,
    100,
  );
});

t.test('malformed notes', async (t) => {
  for (const m of v.malformed_notes)
    t.throws(() => openNote(m.note, [vkeyOf('PeterNeumann')]), { code: 'NOTE_MALFORMED' }, m.why);
});

t.test('checkpoints', async (t) => {
  const tl = v.checkpoints.tessera_testdata_log;
  for (const c of tl.checkpoints) {
    const opened = openNote(c.note, [tl.vkey]);
    const cp = parseCheckpoint(opened.text);
    t.equal(cp.origin, tl.origin);
    t.equal(cp.size, BigInt(c.size));
    t.equal(toHex(cp.root), c.root_hex);
    t.equal(formatCheckpoint(cp), opened.text);
  }
  const gs = v.checkpoints.go_sum_tree_format;
  const cp = parseCheckpoint(gs.note_text);
  t.equal(cp.size, BigInt(gs.size));
  const prod = v.checkpoints.production_sum_golang_org;
  const opened = openNote(prod.note, [vkeyOf(prod.verifies_with)]);
  t.equal(parseCheckpoint(opened.text).size, BigInt(prod.tree_size));
  t.equal(parseCheckpoint(opened.text).origin, 'go.sum database tree');
  const base = 'example.com/log\n5\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n';
  t.same(parseCheckpoint(`${base}ext one\n`).extensions, ['ext one']);
  for (const [bad, why] of [
    ['example.com/log\n05\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n', 'leading zero'],
    ['example.com/log\n+5\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n', 'plus sign'],
    ['example.com/log\n5 \n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n', 'trailing space'],
    ['example.com/log\n5\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFV=\n', 'non-canonical base64'],
    ['example.com/log\n5\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=', 'no final newline'],
    [`${base}\n`, 'empty extension line'],
    ['\n5\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n', 'empty origin'],
    ['example.com/log\n5\n', 'two lines'],
    [
      'example.com/log\n18446744073709551616\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n',
      'size above 2^64-1',
    ],
    ['example.com/log\n5\nAAAA\n', 'short root'],
  ] as const) {
    t.throws(() => parseCheckpoint(bad), { code: 'CHECKPOINT_MALFORMED' }, why);
  }
});

t.test('cosignatures (upstream, Sunlight/skylight)', async (t) => {
  for (const c of v.cosignatures_upstream) {
    t.test(c.cosigner_name, async (t) => {
      t.equal(verifyCosignature(c.checkpoint_note, c.cosigner_vkey), BigInt(c.timestamp));
      const skey = generateKey(c.cosigner_name, hx(c.seed_hex)).signerKey;
      t.equal(cosignerVerifierKey(skey), c.cosigner_vkey);
      t.equal(cosign(c.checkpoint_note, skey, c.timestamp), `${c.signature_line}\n`, 'byte-for-byte');
      const other = c.checkpoint_note.replace(/\n300\n/, '\n301\n');
      t.throws(
        () => verifyCosignature(other, c.cosigner_vkey),
        { code: 'COSIGNATURE_INVALID' },
        'over another checkpoint',
      );
    });
  }
});

t.test('cosignatures (derived, Wit1/Wit2)', async (t) => {
  for (const c of v.cosignatures_derived) {
    t.test(c.cosigner, async (t) => {
      const k = keys.find((x) => x.name === c.cosigner)!;
      t.equal(cosign(c.checkpoint_note, k.skey!, c.timestamp), c.signature_line, 'byte-for-byte');
      t.equal(cosign(c.checkpoint_note, k.skey!, BigInt(c.timestamp)), c.signature_line);
      const note = c.checkpoint_note + c.signature_line;
      t.equal(verifyCosignature(note, c.cosigner_vkey_type04), BigInt(c.timestamp));
      t.equal(verifyCosignature(note, k.vkey), BigInt(c.timestamp), 'type 0x01 vkey accepted as witness key');
      t.throws(() => verifyCosignature(c.checkpoint_note, k.vkey), { code: 'NO_KNOWN_SIGNATURE' });
      // Opening the note with the log key ignores the cosignature; with the 0x04 key verifies it.
      const opened = openNote(note, [v.checkpoints.tessera_testdata_log.vkey, c.cosigner_vkey_type04]);
      t.same(
        opened.signatures.map((s) => s.verified),
        [true, true],
      );
      t.equal(opened.signatures[1]!.timestamp, BigInt(c.timestamp));
      t.equal(openNote(note, [v.checkpoints.tessera_testdata_log.vkey]).signatures[1]!.verified, false);
      // One flipped bit in the signature.
      const line: string = c.signature_line;
      const b64 = line.slice(line.lastIndexOf(' ') + 1, -1);
      const blob = Buffer.from(b64, 'base64');
      blob[40]! ^= 1;
      const bad = c.checkpoint_note + line.replace(b64, blob.toString('base64'));
      t.throws(() => verifyCosignature(bad, k.vkey), { code: 'COSIGNATURE_INVALID' });
      const ts = Buffer.from(b64, 'base64');
      ts[11]! ^= 1;
      t.throws(
        () => verifyCosignature(c.checkpoint_note + line.replace(b64, ts.toString('base64')), k.vkey),
        { code: 'COSIGNATURE_INVALID' },
        'timestamp changed',
      );
    });
  }
});
