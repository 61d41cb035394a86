import t from 'tap';
import { chmod, mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkDataDirMode, checkKeyFileMode } from '../src/node.js';

const dir = await mkdtemp(join(tmpdir(), 'vigil-mode-'));
t.teardown(() => rm(dir, { recursive: true, force: true }));

const modeOf = async (path: string) => (await stat(path)).mode & 0o777;

const keyCases: { mode: number; outcome: 'ok' | 'fixed' | 'refused' }[] = [
  { mode: 0o600, outcome: 'ok' },
  { mode: 0o400, outcome: 'ok' },
  { mode: 0o640, outcome: 'fixed' },
  { mode: 0o644, outcome: 'fixed' },
  { mode: 0o604, outcome: 'fixed' },
  { mode: 0o700, outcome: 'ok' },
  { mode: 0o710, outcome: 'fixed' },
  { mode: 0o620, outcome: 'refused' },
  { mode: 0o602, outcome: 'refused' },
  { mode: 0o660, outcome: 'refused' },
  { mode: 0o666, outcome: 'refused' },
];

for (const c of keyCases) {
  t.test(`key file mode ${c.mode.toString(8)}: ${c.outcome}`, async (t) => {
    const path = join(dir, `key-${c.mode.toString(8)}`);
    await writeFile(path, 'PRIVATE+KEY+test+00000000+AAAA\n');
    await chmod(path, c.mode);
    const warnings: string[] = [];
    const run = () => checkKeyFileMode(path, 'log key', (line) => warnings.push(line));
    if (c.outcome === 'refused') {
      await t.rejects(run(), { code: 'FILE_MODE_UNSAFE', message: /others can write it.*refusing to start/ });
      t.equal(await modeOf(path), c.mode, 'a refused file keeps its mode');
      return;
    }
    await run();
    if (c.outcome === 'ok') {
      t.same(warnings, []);
      t.equal(await modeOf(path), c.mode);
    } else {
      t.equal(warnings.length, 1);
      t.match(warnings[0], /^WARNING: log key .* had mode 0?\d+: others could read it\. Its mode is now 600/);
      t.notMatch(warnings[0], /PRIVATE/, 'the key is never in the message');
      t.equal(await modeOf(path), 0o600);
    }
  });
}

t.test('a missing key file is an error of its own', async (t) => {
  await t.rejects(
    checkKeyFileMode(join(dir, 'absent'), 'log key', () => {}),
    { code: 'ENOENT' },
  );
});

for (const [mode, refused] of [
  [0o700, false],
  [0o750, false],
  [0o755, false],
  [0o770, true],
  [0o775, true],
  [0o777, true],
  [0o1777, true],
] as const) {
  t.test(`data directory mode ${mode.toString(8)}: ${refused ? 'refused' : 'ok'}`, async (t) => {
    const path = join(dir, `data-${mode.toString(8)}`);
    await mkdir(path);
    await chmod(path, mode);
    if (refused) await t.rejects(checkDataDirMode(path), { code: 'FILE_MODE_UNSAFE' });
    else await t.resolves(checkDataDirMode(path));
  });
}
