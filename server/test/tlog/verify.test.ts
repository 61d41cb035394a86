// RecordVerifier (threadpool) must accept exactly what the core's verifyRecordSignature accepts.
import t from 'tap';
import {
  base64Decode,
  base64Encode,
  canonicalBytes,
  cosignerVerifierKey,
  formatVerifierKey,
  generateKey,
  parseVerifierKey,
  signRecord,
  verifyRecordSignature,
} from '@vigil/client';
import { useNodeCrypto } from '@vigil/client/node';
import { RecordVerifier } from '../../src/tlog/verify.js';

useNodeCrypto();

const key = generateKey('em1');
const other = generateKey('em1');
const record = { v: 1, stream: 'abcdef01-0000-4000-8000-000000000000', seq: 0, time: 'x', kind: 'k' };
const sig = signRecord(record, key.signerKey);
const raw = base64Decode(sig);

/** S + L (little-endian): the same signature with a non-canonical scalar. */
function addL(signature: Uint8Array): Uint8Array {
  const L = 2n ** 252n + 27742317777372353535851937790883648493n;
  let s = 0n;
  for (let i = 63; i >= 32; i--) s = (s << 8n) | BigInt(signature[i]!);
  s += L;
  const out = signature.slice();
  for (let i = 32; i < 64; i++) {
    out[i] = Number(s & 255n);
    s >>= 8n;
  }
  return out;
}

const flipped = raw.slice();
flipped[5]! ^= 1;
const smallOrder = formatVerifierKey(
  'em1',
  1,
  new Uint8Array(32).fill(0).map((_, i) => (i === 0 ? 1 : 0)),
);

const cases: [string, string, string, boolean][] = [
  ['valid', sig, key.verifierKey, true],
  ['another key', sig, other.verifierKey, false],
  ['one bit flipped', base64Encode(flipped), key.verifierKey, false],
  ['S not below L', base64Encode(addL(raw)), key.verifierKey, false],
  ['small-order key', sig, smallOrder, false],
  ['non-canonical base64', sig.replace(/==$/, '=A'), key.verifierKey, false],
  ['short signature', base64Encode(raw.subarray(0, 63)), key.verifierKey, false],
  ['cosigner key type', sig, cosignerVerifierKey(key.signerKey), false],
];

t.test('same verdict as the core', async (t) => {
  const verifier = new RecordVerifier();
  const bytes = canonicalBytes(record);
  for (const [name, s, vkey, ok] of cases) {
    let core = true;
    try {
      verifyRecordSignature(record, s, vkey);
    } catch {
      core = false;
    }
    t.equal(core, ok, `${name}: core`);
    for (const inline of [false, true]) {
      const how = `${name}: verifier${inline ? ' inline' : ''}`;
      if (ok) await t.resolves(verifier.verify(bytes, s, vkey, inline), how);
      else {
        const err = await verifier.verify(bytes, s, vkey, inline).then(
          () => undefined,
          (e: { code?: string }) => e,
        );
        t.ok(err, `${how} rejects`);
        t.ok(err?.code === 'SIGNATURE_INVALID' || err?.code === 'KEY_MALFORMED', `${how}: code ${err?.code}`);
      }
    }
  }
  t.equal(parseVerifierKey(smallOrder).publicKey[0], 1);
});

t.test('many in parallel, one bad among them', async (t) => {
  const verifier = new RecordVerifier();
  const bytes = canonicalBytes(record);
  const results = await Promise.all(
    Array.from({ length: 200 }, (_, i) =>
      verifier.verify(bytes, i === 137 ? base64Encode(flipped) : sig, key.verifierKey).then(
        () => 'ok',
        () => 'bad',
      ),
    ),
  );
  t.same(
    results.flatMap((r, i) => (r === 'bad' ? [i] : [])),
    [137],
  );
});
