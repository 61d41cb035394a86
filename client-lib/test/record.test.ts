import t from 'tap';
import {
  canonicalBytes,
  canonicalJson,
  formatEntry,
  formatEntryWithCanonicalRecord,
  generateKey,
  parseEntry,
  parseEntryWithRecord,
  recordHash,
  signRecord,
  verifyRecordSignature,
} from '../src/index.js';
import { createHash } from 'node:crypto';

const key = generateKey('emitter.example', new Uint8Array(32).fill(3));
const other = generateKey('emitter.example', new Uint8Array(32).fill(4));
const record = {
  v: 1,
  stream: '6f1c0f3e-8a7b-4f7e-9d2a-1b2c3d4e5f60',
  seq: 0,
  time: '2026-11-24T12:00:00.000Z',
  kind: 'stream.open',
  z: [1, 'a'],
  a: { y: 1.5, b: null },
};

t.test('canonical json (RFC 8785)', async (t) => {
  t.equal(canonicalJson({ b: 1, a: [true, null, 'x'] }), '{"a":[true,null,"x"],"b":1}');
  t.equal(canonicalJson({ n: 1.5e-7, f: 0.1, e: -0 }), '{"e":0,"f":0.1,"n":1.5e-7}');
  t.equal(canonicalJson('\u2028é'), '"\u2028é"');
  t.same(canonicalBytes({ a: 'é' }), new TextEncoder().encode('{"a":"é"}'));
  t.throws(() => canonicalJson({ a: NaN }), {
    code: 'RECORD_INVALID',
    message: 'non-canonical number at $.a',
  });
  t.throws(() => canonicalJson({ a: Infinity }), { code: 'RECORD_INVALID' });
  t.throws(() => canonicalJson({ a: 2 ** 53 }), { code: 'RECORD_INVALID' });
  t.throws(() => canonicalJson([-(2 ** 53)]), { code: 'RECORD_INVALID' });
  t.equal(canonicalJson(2 ** 53 - 1), '9007199254740991');
  t.throws(() => canonicalJson({ a: undefined }), { code: 'RECORD_INVALID' });
  t.throws(() => canonicalJson({ a: 1n }), { code: 'RECORD_INVALID' });
  t.throws(() => canonicalJson(new Date(0)), { code: 'RECORD_INVALID' });
});

t.test('record signatures and hashes', async (t) => {
  const sig = signRecord(record, key.signerKey);
  verifyRecordSignature(record, sig, key.verifierKey);
  // Key order does not matter: the signature is over canonical bytes.
  verifyRecordSignature(Object.fromEntries(Object.entries(record).reverse()), sig, key.verifierKey);
  t.throws(() => verifyRecordSignature({ ...record, seq: 1 }, sig, key.verifierKey), {
    code: 'SIGNATURE_INVALID',
  });
  t.throws(() => verifyRecordSignature(record, sig, other.verifierKey), { code: 'SIGNATURE_INVALID' });
  t.throws(() => verifyRecordSignature(record, `${sig}=`, key.verifierKey), { code: 'SIGNATURE_INVALID' });
  t.throws(() => verifyRecordSignature(record, sig.slice(4), key.verifierKey), { code: 'SIGNATURE_INVALID' });
  const want = createHash('sha256').update(canonicalJson(record)).digest('base64');
  t.equal(recordHash(record), want);
});

t.test('entries', async (t) => {
  const sig = signRecord(record, key.signerKey);
  const e = {
    received: '2026-11-24T12:00:00.123Z',
    emitter: 'emitter.example',
    peer: '127.0.0.1',
    record,
    sig,
  };
  const bytes = formatEntry(e);
  t.equal(new TextDecoder().decode(bytes).slice(0, 30), '{"emitter":"emitter.example","');
  t.same(parseEntry(bytes), e);
  const text = new TextDecoder().decode(bytes);
  const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
  t.throws(() => parseEntry(enc(`${text} `)), { code: 'RECORD_INVALID' }, 'trailing space');
  t.throws(() => parseEntry(enc(text.replace(/"v":1}$/, '"v":2}'))), { code: 'RECORD_INVALID' }, 'version');
  t.throws(
    () => parseEntry(enc(text.replace('"peer"', '"peeR"'))),
    { code: 'RECORD_INVALID' },
    'field names',
  );
  t.throws(
    () => parseEntry(enc(JSON.stringify(JSON.parse(text), null, 1))),
    { code: 'RECORD_INVALID' },
    'not canonical',
  );
  t.throws(() => parseEntry(Uint8Array.of(0xff)), { code: 'RECORD_INVALID' }, 'not utf-8');
  t.throws(() => parseEntry(new Uint8Array(65536)), { code: 'RECORD_INVALID' }, 'too large');
  t.throws(() => formatEntry({ ...e, record: { ...record, big: 'x'.repeat(65536) } }), {
    code: 'RECORD_INVALID',
  });
});

t.test('parseEntryWithRecord slices the record canonical bytes out of the entry', async (t) => {
  const records = [
    record,
    { ...record, note: 'é\u2028"\\\n\u0000😀', nested: { '\u00e9': [2, -3, 'x'] } },
    { v: 1, stream: 's', seq: 1, time: 't', kind: 'k', sig: '"', record: '},"sig":"' },
  ];
  const fields = [
    { emitter: 'emitter.example', peer: '127.0.0.1', sig: signRecord(record, key.signerKey) },
    { emitter: 'ém😀"\\', peer: '::1\n', sig: 'not base64 "quoted" \u2028' },
  ];
  for (const r of records) {
    for (const f of fields) {
      const bytes = formatEntry({ received: '2026-11-24T12:00:00.000Z', record: r, ...f });
      const parsed = parseEntryWithRecord(bytes);
      t.same(parsed.entry, parseEntry(bytes), 'the same entry as parseEntry');
      t.same(Buffer.from(parsed.record), Buffer.from(canonicalBytes(r)), `record bytes of ${f.emitter}`);
      t.same(
        Buffer.from(
          formatEntryWithCanonicalRecord({ received: '2026-11-24T12:00:00.000Z', ...f }, canonicalJson(r)),
        ),
        Buffer.from(bytes),
        `formatEntryWithCanonicalRecord gives formatEntry's bytes for ${f.emitter}`,
      );
    }
  }
  // A non-canonical entry is refused before any slicing.
  const spaced = new TextEncoder().encode(
    `{"emitter":"e", "peer":"p","received":"r","record":${canonicalJson(record)},"sig":"s","v":1}`,
  );
  t.throws(() => parseEntryWithRecord(spaced), { code: 'RECORD_INVALID' });
});

t.test('strings without a UTF-8 form are refused, paired surrogates are fine', async (t) => {
  t.equal(canonicalJson({ s: '\ud83d\ude00' }), '{"s":"\ud83d\ude00"}', 'a surrogate pair (emoji)');
  for (const [what, value] of [
    ['lone high surrogate in a value', { s: 'a\ud800' }],
    ['lone low surrogate in a value', { s: '\udc00b' }],
    ['reversed pair', { s: '\ude00\ud83d' }],
    ['lone surrogate in a key', { ['k\ud800']: 1 }],
    ['lone surrogate deep in an array', { a: [1, ['\udfff']] }],
  ] as const) {
    t.throws(() => canonicalJson(value), { code: 'RECORD_INVALID' }, what);
  }
});
