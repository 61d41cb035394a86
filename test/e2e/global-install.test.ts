// The `vigil` CLI installs globally from a packed tarball of client-lib and runs outside the
// repository: `npm pack -w client-lib`, `npm install -g --prefix <tmp> <tarball>`, then `vigil --help`
// and `vigil keygen` from a directory that has no node_modules above it.
import { execFile } from 'node:child_process';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import t from 'tap';

const run = promisify(execFile);
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';

t.test(
  'npm pack + npm install -g gives a working vigil outside the repository',
  { timeout: 600_000 },
  async (t) => {
    const tmp = await mkdtemp(path.join(tmpdir(), 'vigil-global-'));
    t.teardown(() => rm(tmp, { recursive: true, force: true }));
    const packed = await run(npm, ['pack', '-w', 'client-lib', '--pack-destination', tmp, '--json'], {
      cwd: root,
      maxBuffer: 16 * 1024 * 1024,
    });
    const [info] = JSON.parse(packed.stdout) as { filename: string; files: { path: string }[] }[];
    t.ok(info, 'npm pack reports the tarball');
    const files = info!.files.map((f) => f.path);
    t.ok(files.includes('bin/vigil.js'), 'the tarball holds the bin');
    t.ok(files.includes('dist/src/cli/main.js'), 'and the built CLI');
    t.notOk(
      files.some((f) => f.startsWith('dist/test/') || f.startsWith('src/')),
      'but no tests or TypeScript sources',
    );

    const prefix = path.join(tmp, 'prefix');
    await run(
      npm,
      [
        'install',
        '-g',
        '--prefix',
        prefix,
        '--no-audit',
        '--no-fund',
        '--prefer-offline',
        path.join(tmp, info!.filename),
      ],
      { cwd: tmp, maxBuffer: 16 * 1024 * 1024 },
    );
    const vigil = path.join(prefix, 'bin', 'vigil');
    const outside = path.join(tmp, 'elsewhere');
    await run('mkdir', ['-p', outside]);
    const env = { PATH: process.env.PATH ?? '', HOME: tmp };

    const help = await run(vigil, ['--help'], { cwd: outside, env });
    t.match(help.stdout + help.stderr, /keygen <name>/, 'vigil --help prints the usage');

    const keygen = await run(vigil, ['keygen', 'emitter.example/host1', '--out', 'host1.key'], {
      cwd: outside,
      env,
    });
    t.match(
      keygen.stdout,
      /^emitter\.example\/host1\+[0-9a-f]{8}\+[A-Za-z0-9+/=]+\n$/,
      'prints only the vkey',
    );
    t.equal((await stat(path.join(outside, 'host1.key'))).mode & 0o777, 0o600, 'the key file is mode 0600');
    t.notMatch(keygen.stdout, /PRIVATE/, 'the private key is not printed');
  },
);
