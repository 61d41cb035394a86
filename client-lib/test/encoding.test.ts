import t from 'tap';
import { base64Decode, base64Encode, isUtf8 } from '../src/index.js';

t.test('base64Encode matches RFC 4648 section 10 and node for every tail length', async (t) => {
  const rfc: [string, string][] = [
    ['', ''],
    ['f', 'Zg=='],
    ['fo', 'Zm8='],
    ['foo', 'Zm9v'],
    ['foob', 'Zm9vYg=='],
    ['fooba', 'Zm9vYmE='],
    ['foobar', 'Zm9vYmFy'],
  ];
  for (const [text, b64] of rfc) t.equal(base64Encode(new TextEncoder().encode(text)), b64, text);
  const bytes = Uint8Array.from({ length: 3000 }, (_, i) => (i * 7919) & 255);
  for (let n = 0; n < 300; n++) {
    const slice = bytes.subarray(0, n);
    const s = base64Encode(slice);
    if (s !== Buffer.from(slice).toString('base64')) t.fail(`length ${n}`);
    t.same([...base64Decode(s)], [...slice]);
  }
});

t.test('isUtf8 (RFC 3629 well-formed sequences)', async (t) => {
  const vectors: [string, number[], boolean][] = [
    ['empty', [], true],
    ['ascii', [0x41, 0x0a], true],
    ['2-byte', [0xc3, 0xa9], true],
    ['3-byte', [0xe2, 0x82, 0xac], true],
    ['4-byte', [0xf0, 0x9f, 0x98, 0x80], true],
    ['U+10FFFF', [0xf4, 0x8f, 0xbf, 0xbf], true],
    ['lone continuation', [0x80], false],
    ['0xff', [0xff], false],
    ['overlong 2-byte', [0xc0, 0xaf], false],
    ['overlong 3-byte', [0xe0, 0x80, 0xaf], false],
    ['overlong 4-byte', [0xf0, 0x80, 0x80, 0xaf], false],
    ['surrogate', [0xed, 0xa0, 0x80], false],
    ['past U+10FFFF', [0xf4, 0x90, 0x80, 0x80], false],
    ['truncated at end', [0x41, 0xe2, 0x82], false],
    ['bad continuation', [0xe2, 0x41, 0xac], false],
  ];
  for (const [desc, bytes, ok] of vectors) {
    const u = Uint8Array.from(bytes);
    t.equal(isUtf8(u), ok, desc);
    let fatal = true;
    try {
      new TextDecoder('utf-8', { fatal: true }).decode(u);
    } catch {
      fatal = false;
    }
    t.equal(fatal, ok, `${desc}: agrees with the WHATWG decoder`);
  }
});
