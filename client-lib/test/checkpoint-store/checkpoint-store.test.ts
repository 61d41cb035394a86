// CheckpointStore against third-party tiles: Tessera testdata (partial tiles at sizes 1..15) and the
// Sunlight mirror (size 300: a full tile, a partial, and a level-1 tile), from
// client-lib/test/vectors/tiles.json. The checkpoints are signed here with a seeded test key for the
// vectors' data: the tiles are the third party's, the proofs are computed from them.
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import {
  CheckpointStore,
  formatCheckpoint,
  generateKey,
  hexDecode,
  leafHashesFromTile,
  parsePolicy,
  rootFromLeafHashes,
  signNote,
  tilePath,
  type ReadTile,
} from '../../src/index.js';
import { fileCheckpointStorage } from '../../src/node-client.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const vectors = JSON.parse(
  await fs.readFile(path.join(here, '../../../test/vectors/tiles.json'), 'utf8'),
) as {
  tile_contents: {
    tessera_testdata: { files: Record<string, string> };
    sunlight_mirror_300: { files: Record<string, string>; origin: string; root_hex: string };
  };
};

function reader(files: Record<string, string>, reads?: string[]): ReadTile {
  return (level, index, width) => {
    const p = tilePath({ level, index, width });
    reads?.push(p);
    const hex = files[p];
    if (hex === undefined) throw new Error(`no tile ${p}`);
    return Promise.resolve(hexDecode(hex));
  };
}

const seed = new Uint8Array(32).fill(7);

function setup(origin: string): {
  sign: (size: bigint, root: Uint8Array) => string;
  policy: ReturnType<typeof parsePolicy>;
} {
  const k = generateKey(origin, seed);
  return {
    sign: (size, root) => signNote(formatCheckpoint({ origin, size, root, extensions: [] }), [k.signerKey]),
    policy: parsePolicy(`log ${k.verifierKey}\nquorum none\n`),
  };
}

const tessera = vectors.tile_contents.tessera_testdata.files;
const tesseraLeaves = leafHashesFromTile(hexDecode(tessera['tile/0/000.p/15']!), 15);
const tesseraRoot = (n: number): Uint8Array => rootFromLeafHashes(tesseraLeaves.slice(0, n));

t.test('tessera: accepts growth, catches rollback and fork, with proofs from tiles', async (t) => {
  const origin = 'tessera.example/log';
  const { sign, policy } = setup(origin);
  const store = new CheckpointStore(policy);
  const readTile = reader(tessera);
  const u1 = await store.update(sign(3n, tesseraRoot(3)), readTile);
  t.equal(u1.advanced, true);
  t.equal(u1.previousSize, undefined);
  for (const n of [5, 7, 8, 13, 15]) {
    const u = await store.update(sign(BigInt(n), tesseraRoot(n)), reader(tessera));
    t.equal(u.checkpoint.size, BigInt(n), `advanced to ${n}`);
  }
  t.equal((await store.latest(origin))!.checkpoint.size, 15n);
  const same = await store.update(sign(15n, tesseraRoot(15)), readTile);
  t.equal(same.advanced, false, 'the same checkpoint again does not move');

  await t.rejects(store.update(sign(10n, tesseraRoot(10)), readTile), {
    name: 'CheckpointConflictError',
    kind: 'rollback',
    code: 'SIZE_INVALID',
    message: /presented size 10, already verified size 15/,
  });
  const otherRoot = tesseraRoot(14);
  await t.rejects(store.update(sign(15n, otherRoot), readTile), { kind: 'fork', code: 'PROOF_INVALID' });
  t.equal((await store.latest(origin))!.checkpoint.size, 15n, 'store unchanged after failures');
});

t.test('tessera: a larger checkpoint whose tree does not extend the old one is a fork', async (t) => {
  const { sign, policy } = setup('tessera.example/log');
  const store = new CheckpointStore(policy);
  await store.update(sign(5n, tesseraRoot(5)), reader(tessera));
  // A log that rewrote entry 2 and signed size 8: its tiles are consistent with its own root but
  // not with the size-5 root this client saw.
  const forged = tesseraLeaves.slice(0, 8).map((h, i) => (i === 2 ? tesseraLeaves[12]! : h));
  const files = { 'tile/0/000.p/8': Buffer.concat(forged).toString('hex') };
  const err = await store.update(sign(8n, rootFromLeafHashes(forged)), reader(files)).then(
    () => undefined,
    (e: unknown) => e as { kind?: string; previousNote?: string; presentedNote?: string },
  );
  t.equal(err?.kind, 'fork');
  t.match(err?.previousNote, /^tessera.example\/log\n5\n/);
  t.match(err?.presentedNote, /^tessera.example\/log\n8\n/);
});

t.test('lying tiles cannot make an inconsistent checkpoint pass', async (t) => {
  const { sign, policy } = setup('tessera.example/log');
  const store = new CheckpointStore(policy);
  await store.update(sign(6n, tesseraRoot(6)), reader(tessera));
  const bad = { ...tessera, 'tile/0/000.p/9': tessera['tile/0/000.p/9']!.replace(/^../, 'ff') };
  await t.rejects(store.update(sign(9n, tesseraRoot(9)), reader(bad)), {
    name: 'CheckpointConflictError',
    kind: 'fork',
  });
});

t.test('a checkpoint not signed by the policy key is refused before anything else', async (t) => {
  const { policy } = setup('tessera.example/log');
  const stranger = generateKey('tessera.example/log', new Uint8Array(32).fill(9));
  const store = new CheckpointStore(policy);
  const note = signNote(
    formatCheckpoint({ origin: 'tessera.example/log', size: 3n, root: tesseraRoot(3), extensions: [] }),
    [stranger.signerKey],
  );
  await t.rejects(store.update(note, reader(tessera)), { code: 'NO_KNOWN_SIGNATURE' });
  t.equal(await store.latest('tessera.example/log'), undefined);
});

t.test('sunlight 300: consistency across the tile boundary from level-1 and partial tiles', async (t) => {
  const s = vectors.tile_contents.sunlight_mirror_300;
  const { sign, policy } = setup(s.origin);
  const leaves0 = leafHashesFromTile(hexDecode(s.files['tile/0/000']!), 256);
  const reads: string[] = [];
  const store = new CheckpointStore(policy);
  await store.update(sign(100n, rootFromLeafHashes(leaves0.slice(0, 100))), reader(s.files));
  const u = await store.update(sign(300n, hexDecode(s.root_hex)), reader(s.files, reads));
  t.equal(u.checkpoint.size, 300n);
  t.ok(reads.length > 0 && reads.every((r) => r in s.files), `read only published tiles: ${reads.join(' ')}`);
  await t.rejects(store.update(sign(256n, leaves0[0]!), reader(s.files)), {
    name: 'CheckpointConflictError',
    kind: 'rollback',
  });
});

t.test('file storage: a new process over the same directory still catches a rollback', async (t) => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'vigil-cpstore-'));
  t.teardown(() => fs.rm(dir, { recursive: true, force: true }));
  const { sign, policy } = setup('tessera.example/log');
  await new CheckpointStore(policy, fileCheckpointStorage(dir)).update(
    sign(12n, tesseraRoot(12)),
    reader(tessera),
  );
  const again = new CheckpointStore(policy, fileCheckpointStorage(dir));
  t.equal((await again.latest('tessera.example/log'))!.checkpoint.size, 12n);
  await t.rejects(again.update(sign(11n, tesseraRoot(11)), reader(tessera)), {
    name: 'CheckpointConflictError',
    kind: 'rollback',
  });
  const files = await fs.readdir(dir);
  t.equal(files.length, 1, 'one file per origin, no temp file left');
  t.equal((await fs.stat(path.join(dir, files[0]!))).mode & 0o777, 0o600);
});
