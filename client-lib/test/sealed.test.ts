import t from 'tap';
import {
  canonicalJson,
  isSealedRef,
  openSealed,
  openSealedBytes,
  replaceSealed,
  sealBytes,
  sealValue,
  utf8,
  type SealedRef,
} from '../src/index.js';

/*
 * Vectors: S written out by hand as RFC 8785 text and hashed independently with Python's hashlib
 * (`python3 -c 'import hashlib;print(hashlib.sha256(S.encode()).hexdigest())'`).
 */
const salt0 = Uint8Array.from({ length: 16 }, (_, i) => i);
const saltFF = new Uint8Array(16).fill(0xff);
const vectors = [
  {
    desc: 'low-entropy string',
    seal: () => sealValue('yes', salt0),
    s: '{"salt":"AAECAwQFBgcICQoLDA0ODw==","value":"yes"}',
    sha256: '55533572c55c26fe055e6d1a204a72fabb97faed736950f5d497055ed232d86b',
    value: 'yes' as unknown,
  },
  {
    desc: 'object, keys sorted',
    seal: () => sealValue({ b: 1, a: [true, null] }, salt0),
    s: '{"salt":"AAECAwQFBgcICQoLDA0ODw==","value":{"a":[true,null],"b":1}}',
    sha256: '25b8e08fb1134ff6443d2cb0fb42495ef6b8aad4f3fb7dfd56d11259add665fc',
    value: { a: [true, null], b: 1 } as unknown,
  },
  {
    desc: 'exact bytes, not utf-8',
    seal: () => sealBytes(Uint8Array.from([0xff, 0xfe, ...utf8('{"jsonrpc"\n')]), saltFF),
    s: '{"salt":"/////////////////////w==","value":"//57Impzb25ycGMiCg=="}',
    sha256: '4710f482a14a04df65d76b56d8bc70d3328674eef5da50b7e3ef10d0249294f1',
    value: '//57Impzb25ycGMiCg==' as unknown,
  },
];

for (const v of vectors) {
  t.test(v.desc, async (t) => {
    const sealed = v.seal();
    t.equal(new TextDecoder().decode(sealed.bytes), v.s);
    t.same(sealed.ref, { $sealed: { sha256: v.sha256, size: utf8(v.s).length } });
    t.ok(isSealedRef(sealed.ref));
    t.same(openSealed(sealed.ref, sealed.bytes), v.value);
    // Mutated siblings: one flipped bit, one byte short, one byte long, a wrong size in the ref.
    const flipped = Uint8Array.from(sealed.bytes);
    flipped[10] = flipped[10]! ^ 1;
    t.throws(() => openSealed(sealed.ref, flipped), { code: 'HASH_INVALID' });
    t.throws(() => openSealed(sealed.ref, sealed.bytes.subarray(1)), { code: 'HASH_INVALID' });
    t.throws(() => openSealed(sealed.ref, Uint8Array.from([...sealed.bytes, 32])), { code: 'HASH_INVALID' });
    const wrongSize: SealedRef = { $sealed: { ...sealed.ref.$sealed, size: sealed.ref.$sealed.size + 1 } };
    t.throws(() => openSealed(wrongSize, sealed.bytes), { code: 'HASH_INVALID' });
  });
}

t.test('sealBytes round-trips the exact bytes', async (t) => {
  const data = Uint8Array.from([0, 0xc3, 0x28, 0x0a, 0xed, 0xa0, 0x80]);
  const sealed = sealBytes(data, salt0);
  t.same([...openSealedBytes(sealed.ref, sealed.bytes)], [...data]);
  t.throws(() => openSealedBytes(sealValue({ a: 1 }, salt0).ref, sealValue({ a: 1 }, salt0).bytes), {
    code: 'RECORD_INVALID',
  });
});

t.test('the salt hides equal values', async (t) => {
  t.not(sealValue('yes', salt0).ref.$sealed.sha256, sealValue('yes', saltFF).ref.$sealed.sha256);
});

t.test('bad inputs', async (t) => {
  t.throws(() => sealValue('x', new Uint8Array(15)), { code: 'ENCODING_INVALID' });
  t.throws(() => sealValue(Number.NaN, salt0), { code: 'RECORD_INVALID' });
  const badShapes: { desc: string; s: string }[] = [
    { desc: 'not canonical (spaces)', s: '{"salt": "AAECAwQFBgcICQoLDA0ODw==","value":1}' },
    { desc: 'extra field', s: '{"extra":1,"salt":"AAECAwQFBgcICQoLDA0ODw==","value":1}' },
    { desc: 'short salt', s: '{"salt":"AAECAwQFBgcICQoLDA0O","value":1}' },
    { desc: 'salt not base64', s: '{"salt":"not base64 at all!!!!!!!","value":1}' },
    { desc: 'not json', s: 'salt=1' },
    { desc: 'an array', s: '[1]' },
  ];
  for (const b of badShapes) {
    const bytes = utf8(b.s);
    const { sha256 } = await import('@noble/hashes/sha2.js');
    const { bytesToHex } = await import('@noble/hashes/utils.js');
    const ref: SealedRef = { $sealed: { sha256: bytesToHex(sha256(bytes)), size: bytes.length } };
    t.throws(() => openSealed(ref, bytes), { code: 'RECORD_INVALID' }, b.desc);
  }
  t.notOk(isSealedRef({ $sealed: { sha256: 'AB'.repeat(32), size: 1 } }), 'uppercase hex');
  t.notOk(isSealedRef({ $sealed: { sha256: 'ab'.repeat(32), size: -1 } }), 'negative size');
  t.notOk(isSealedRef({ $sealed: { sha256: 'ab'.repeat(32), size: 1 }, x: 1 }), 'extra member');
  t.notOk(isSealedRef({ $sealed: { sha256: 'ab'.repeat(32), size: 1, x: 1 } }), 'extra inner member');
  t.throws(() => openSealed({ $blob: {} } as unknown as SealedRef, utf8('{}')), { code: 'RECORD_INVALID' });
});

t.test('replaceSealed puts opened values in place of their commitments, and only those', async (t) => {
  const params = sealValue({ name: 'echo', arguments: { message: 'hi' } }, salt0);
  const result = sealValue({ content: [] }, saltFF);
  const erased = sealValue('gone', salt0);
  const record = {
    kind: 'mcp.message',
    message: { jsonrpc: '2.0', id: 1, params: params.ref },
    list: [result.ref, erased.ref, 3],
  };
  const store = new Map([
    [params.ref.$sealed.sha256, params.bytes],
    [result.ref.$sealed.sha256, result.bytes],
  ]);
  const opened = replaceSealed(record, (ref) => {
    const bytes = store.get(ref.$sealed.sha256);
    return bytes === undefined ? undefined : { value: openSealed(ref, bytes) };
  });
  t.same(opened, {
    kind: 'mcp.message',
    message: { jsonrpc: '2.0', id: 1, params: { name: 'echo', arguments: { message: 'hi' } } },
    list: [{ content: [] }, erased.ref, 3],
  });
  t.same(record.message.params, params.ref, 'the input is not changed');
  // A value that opens to null replaces its commitment too.
  const nul = sealValue(null, salt0);
  t.equal(
    replaceSealed(nul.ref, (ref) => ({ value: openSealed(ref, nul.bytes) })),
    null,
  );
});

// Properties over generated JSON values and salts (fast-check): S opens to its value, and a changed
// salt, value, size or byte of S is refused against the original commitment.
t.test('properties: a changed salt, value, size or byte is refused', async (t) => {
  const fc = (await import('fast-check')).default;
  // Values RFC 8785 can carry (sealValue refuses the rest with RECORD_INVALID, tested above).
  const jsonValue = fc
    .jsonValue({ maxDepth: 3 })
    .filter((v) => !throwsCode(() => canonicalJson(v), 'RECORD_INVALID'));
  const salt = fc.uint8Array({ minLength: 16, maxLength: 16 });
  let runs = 0;
  fc.assert(
    fc.property(jsonValue, jsonValue, salt, salt, fc.nat(), (value, other, s1, s2, at) => {
      runs++;
      const sealed = sealValue(value, s1);
      if (canonicalJson(openSealed(sealed.ref, sealed.bytes)) !== canonicalJson(value)) return false;
      // Another salt: another commitment, and its S does not open under the first one.
      if (!s1.every((b, i) => b === s2[i])) {
        const resalted = sealValue(value, s2);
        if (resalted.ref.$sealed.sha256 === sealed.ref.$sealed.sha256) return false;
        if (!throwsCode(() => openSealed(sealed.ref, resalted.bytes), 'HASH_INVALID')) return false;
      }
      // Another value under the same salt.
      if (canonicalJson(other) !== canonicalJson(value)) {
        const changed = sealValue(other, s1);
        if (!throwsCode(() => openSealed(sealed.ref, changed.bytes), 'HASH_INVALID')) return false;
      }
      // A size that lies, either way.
      for (const size of [sealed.ref.$sealed.size + 1, sealed.ref.$sealed.size - 1]) {
        const lie: SealedRef = { $sealed: { sha256: sealed.ref.$sealed.sha256, size } };
        if (!throwsCode(() => openSealed(lie, sealed.bytes), size < 0 ? 'RECORD_INVALID' : 'HASH_INVALID'))
          return false;
      }
      // Any one byte of S changed.
      const flipped = Uint8Array.from(sealed.bytes);
      const i = at % flipped.length;
      flipped[i] = flipped[i]! ^ 0x20;
      return throwsCode(() => openSealed(sealed.ref, flipped), 'HASH_INVALID');
    }),
    { numRuns: 300, seed: 20261206 },
  );
  t.equal(runs, 300, 'every generated case ran');
});

function throwsCode(f: () => unknown, code: string): boolean {
  try {
    f();
    return false;
  } catch (err) {
    return (err as { code?: string }).code === code;
  }
}
