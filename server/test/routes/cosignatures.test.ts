// POST /v1/cosignatures: pull witnesses hand back cosigned checkpoints; only a valid cosignature by a
// configured witness over a checkpoint this log signed is attached.
import t from 'tap';
import {
  base64Decode,
  base64Encode,
  cosign,
  cosignerVerifierKey,
  formatCheckpoint,
  generateKey,
  parseCheckpoint,
  signNote,
  verifyCosignature,
} from '@vigil/client';
import { forEachStore } from '../../src/db/testing.js';
import type { Database } from '../../src/db/schema.js';
import { buildApp } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { runAdminCommand } from '../../src/admin.js';
import { prepareLog, recordStream } from '../helpers/process.js';

const W1 = generateKey('witness.test/w1');
const STRANGER = generateKey('witness.test/stranger');
const NOW = 1_800_000_000n;

forEachStore(t, async (t, store) => {
  const log = await prepareLog(store);
  const { db } = await store.open<Database>();
  // Configured with its cosigner (0x04) vkey; 0x01 keys are accepted too (DESIGN.md).
  await runAdminCommand(db, {
    command: 'witness add',
    args: ['witness.test/w1', cosignerVerifierKey(W1.signerKey)],
  });
  const config = loadConfig({}, { 'data-dir': store.dataDir, 'rate-address': '0' });
  const app = await buildApp(config, { db, logger: false });
  await app.ready();
  t.teardown(() => app.close());
  const stream = recordStream(log.emitterKey, '1c2d3e4f-3333-4444-8555-666677778888');
  const append = async (n: number): Promise<string> => {
    const res = await app.inject({
      method: 'POST',
      url: '/v1/entries',
      headers: { 'content-type': 'application/json' },
      payload: JSON.stringify({ entries: stream.next(n) }),
    });
    if (res.statusCode !== 200) throw new Error(res.body);
    return (res.json() as { checkpoint: string }).checkpoint;
  };
  const note1 = await append(1);
  const note3 = await append(2);
  const postCosigned = (body: string, contentType = 'text/plain; charset=utf-8') =>
    app.inject({
      method: 'POST',
      url: '/v1/cosignatures',
      headers: { 'content-type': contentType },
      payload: body,
    });

  t.test('a valid cosignature from a configured witness is attached', async (t) => {
    const line = cosign(note3, W1.signerKey, NOW);
    const res = await postCosigned(note3 + line);
    t.equal(res.statusCode, 200, res.body);
    t.same(res.json(), { accepted: ['witness.test/w1'], size: '5' });
    const cp = await app.inject({ url: '/checkpoint' });
    t.ok(cp.body.endsWith(line), '/checkpoint carries the line');
    t.equal(verifyCosignature(cp.body, W1.verifierKey), NOW);
    // The same cosignature again is harmless.
    const again = await postCosigned(note3 + line);
    t.equal(again.statusCode, 200);
    t.equal((await app.inject({ url: '/checkpoint' })).body, cp.body, 'stored once');
    // An older checkpoint can be cosigned too.
    t.equal((await postCosigned(note1 + cosign(note1, W1.signerKey, NOW))).statusCode, 200);
  });

  t.test('refusals', async (t) => {
    const good = cosign(note3, W1.signerKey, NOW + 1n);
    // Flip one bit of the Ed25519 signature (after the 4-byte key ID and the 8-byte timestamp).
    const m = /^— (\S+) (\S+)\n$/.exec(good)!;
    const raw = base64Decode(m[2]!);
    raw[20]! ^= 1;
    const flipped = `— ${m[1]} ${base64Encode(raw)}\n`;
    const size3 = parseCheckpoint(note3.slice(0, note3.indexOf('\n\n') + 1));
    const forged = signNote(
      formatCheckpoint({ origin: size3.origin, size: 3n, root: new Uint8Array(32).fill(9), extensions: [] }),
      [generateKey(size3.origin).signerKey],
    );
    const unpublished = signNote(
      formatCheckpoint({ origin: size3.origin, size: 99n, root: size3.root, extensions: [] }),
      [generateKey(size3.origin).signerKey],
    );
    const otherLog = signNote(
      formatCheckpoint({ origin: 'other.example/log', size: 3n, root: size3.root, extensions: [] }),
      [generateKey('other.example/log').signerKey],
    );
    const cases: [string, string, number, string, string?][] = [
      ['unknown witness', note3 + cosign(note3, STRANGER.signerKey, NOW), 403, 'NO_KNOWN_SIGNATURE'],
      ['no cosignature at all', note3, 403, 'NO_KNOWN_SIGNATURE'],
      ['bad signature', note3 + flipped, 403, 'COSIGNATURE_INVALID'],
      [
        'cosignature over another checkpoint',
        note3 + cosign(note1, W1.signerKey, NOW),
        403,
        'COSIGNATURE_INVALID',
      ],
      [
        'another root at a published size',
        forged + cosign(forged, W1.signerKey, NOW),
        404,
        'CHECKPOINT_UNKNOWN',
      ],
      [
        'a size never published',
        unpublished + cosign(unpublished, W1.signerKey, NOW),
        404,
        'CHECKPOINT_UNKNOWN',
      ],
      ['another origin', otherLog + cosign(otherLog, W1.signerKey, NOW), 404, 'CHECKPOINT_UNKNOWN'],
      ['not a note', 'hello\n', 400, 'NOTE_MALFORMED'],
      ['wrong content type', note3 + good, 415, 'CONTENT_TYPE_UNSUPPORTED', 'application/octet-stream'],
    ];
    for (const [name, body, status, code, contentType] of cases) {
      const res = await postCosigned(body, contentType);
      t.equal(res.statusCode, status, `${name}: status (${res.body})`);
      t.equal(res.json().code, code, `${name}: code`);
    }
    const cp = await app.inject({ url: '/checkpoint' });
    t.equal(cp.body.split('\n— witness.test/').length, 2, 'only the one valid cosignature is stored');
  });
});
