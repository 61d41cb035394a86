// The noble and node:crypto providers must accept exactly the same Ed25519 signatures (strict
// RFC 8032 as Go's verifier: S < L, canonical A and R, cofactorless; small-order keys rejected).
import * as ed from '@noble/ed25519';
import t, { type Test } from 'tap';
import { nobleCryptoProvider, getCryptoProvider, sha256 } from '../src/index.js';
import { nodeCryptoProvider, useNodeCrypto, setCryptoProvider } from '../src/node.js';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const L = 2n ** 252n + 27742317777372353535851937790883648493n;
const P = 2n ** 255n - 19n;
const le = (n: bigint): Uint8Array => {
  const out = new Uint8Array(32);
  for (let i = 0; i < 32; i++) out[i] = Number((n >> BigInt(8 * i)) & 255n);
  return out;
};
const fromLe = (b: Uint8Array): bigint => b.reduceRight((a, x) => (a << 8n) | BigInt(x), 0n);

const seed = new Uint8Array(32).fill(42);
const msg = new TextEncoder().encode('vigil crypto agreement');
const pk = nobleCryptoProvider.ed25519PublicKey(seed);
const sig = nobleCryptoProvider.ed25519Sign(msg, seed);

function both(t: Test, s: Uint8Array, m: Uint8Array, k: Uint8Array, want: boolean, name: string): void {
  t.equal(nobleCryptoProvider.ed25519Verify(s, m, k), want, `noble: ${name}`);
  t.equal(nodeCryptoProvider.ed25519Verify(s, m, k), want, `node: ${name}`);
}

t.test('providers agree on sha256, keys and signatures', async (t) => {
  t.equal(hex(nodeCryptoProvider.sha256(msg)), hex(nobleCryptoProvider.sha256(msg)));
  t.equal(hex(nodeCryptoProvider.ed25519PublicKey(seed)), hex(pk));
  t.equal(hex(nodeCryptoProvider.ed25519Sign(msg, seed)), hex(sig), 'deterministic signatures match');
  both(t, sig, msg, pk, true, 'valid');
  both(t, sig, new TextEncoder().encode('other'), pk, false, 'other message');
  const flipped = sig.slice();
  flipped[10]! ^= 1;
  both(t, flipped, msg, pk, false, 'flipped R bit');
  both(t, sig.subarray(0, 63), msg, pk, false, 'short signature');
  both(t, sig, msg, pk.subarray(0, 31), false, 'short key');
});

t.test('non-canonical S (S + L) is rejected by both', async (t) => {
  const s = fromLe(sig.subarray(32));
  const bad = sig.slice();
  bad.set(le(s + L), 32);
  both(t, bad, msg, pk, false, 'S + L');
  const max = sig.slice();
  max.set(le(2n ** 256n - 1n), 32);
  both(t, max, msg, pk, false, 'S = 2^256 - 1');
});

t.test('non-canonical point encodings (y >= p) are rejected by both', async (t) => {
  // y = p + 1 encodes the same point as y = 1 (identity) non-canonically.
  for (const y of [P, P + 1n, P + 18n]) {
    both(t, sig, msg, le(y), false, `public key y = p + ${y - P}`);
    const r = sig.slice();
    r.set(le(y), 0);
    both(t, r, msg, pk, false, `R y = p + ${y - P}`);
  }
  // x = 0 with the sign bit set ("negative zero").
  const negZero = le(1n);
  negZero[31]! |= 0x80;
  both(t, sig, msg, negZero, false, 'public key -0');
});

t.test('small-order public keys are rejected by both', async (t) => {
  const encodings = [
    '0100000000000000000000000000000000000000000000000000000000000000',
    'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
    '0000000000000000000000000000000000000000000000000000000000000000',
    '0000000000000000000000000000000000000000000000000000000000000080',
    'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a',
    'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa',
    '26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05',
    '26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85',
  ];
  for (const e of encodings) {
    const k = new Uint8Array(Buffer.from(e, 'hex'));
    t.ok(ed.Point.fromBytes(k, false).isSmallOrder(), `${e} is of small order`);
    // With the identity as public key and R = identity, S = 0 satisfies the cofactorless equation;
    // strict verification must still reject it.
    const s = new Uint8Array(64);
    s.set(k, 0);
    both(t, s, msg, k, false, `small-order key ${e.slice(0, 8)}`);
  }
});

t.test('a torsion component in R: cofactorless rejects, as Go does', async (t) => {
  // R' = R + T (T of order 8) breaks [S]B = R + [k]A but still satisfies the cofactored equation.
  const T = ed.Point.fromBytes(
    new Uint8Array(Buffer.from('c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a', 'hex')),
    false,
  );
  const R = ed.Point.fromBytes(sig.subarray(0, 32), false);
  const bad = sig.slice();
  bad.set(R.add(T).toBytes(), 0);
  both(t, bad, msg, pk, false, 'R + T');
});

t.test('provider switching', async (t) => {
  t.equal(getCryptoProvider(), nobleCryptoProvider);
  useNodeCrypto();
  t.equal(getCryptoProvider(), nodeCryptoProvider);
  t.equal(hex(sha256(msg)), hex(nobleCryptoProvider.sha256(msg)));
  setCryptoProvider(nobleCryptoProvider);
  t.equal(getCryptoProvider(), nobleCryptoProvider);
});
