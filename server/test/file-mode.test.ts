// `vigil-server serve` and the modes of its data directory and log key: the same rule as
// vigil-witness (shared through @vigil/client). A key others can read is made 0600 with a loud
// warning; a key or a data directory others can write refuses the start.
import t from 'tap';
import { chmod, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { createTestStore, storeSkipReason, testStoreKinds } from '../src/db/testing.js';
import { SERVER_MAIN, prepareLog, serverEnv, spawnNode, startServer, stopChild } from './helpers/process.js';

const kind = testStoreKinds().find((k) => storeSkipReason(k) === undefined);

t.test('file modes at start', kind === undefined ? { skip: 'no store available' } : {}, async (t) => {
  const store = await createTestStore(kind!);
  t.teardown(() => store.cleanup());
  await prepareLog(store);
  const keyFile = join(store.dataDir, 'log.key');
  const modeOf = async (path: string) => (await stat(path)).mode & 0o777;

  /** Runs `serve` expecting it to refuse: its exit code and output. */
  const refusedStart = async () => {
    const child = spawnNode(SERVER_MAIN, ['serve', '--port', '0'], serverEnv(store));
    t.teardown(() => stopChild(child));
    // Bounded: a server that starts anyway is stopped after it says it listens.
    const listening = child.waitFor(/vigil log listening/, 30_000).catch(() => undefined);
    await Promise.race([child.exited, listening]);
    await stopChild(child);
    return { code: child.proc.exitCode, output: child.output() };
  };

  t.test('a log key others can read: loud warning, mode made 0600, then it serves', async (t) => {
    await chmod(keyFile, 0o644);
    const { child, url } = await startServer(store);
    t.teardown(() => stopChild(child));
    t.match(
      child.output(),
      `WARNING: log key ${keyFile} had mode 644: others could read it. Its mode is now 600.`,
    );
    t.notMatch(child.output(), /PRIVATE\+KEY/, 'the key is never printed');
    t.equal(await modeOf(keyFile), 0o600);
    t.equal((await fetch(`${url}/checkpoint`)).status, 200);
  });

  t.test('a log key others can write: refuses to start, mode untouched', async (t) => {
    await chmod(keyFile, 0o666);
    t.teardown(() => chmod(keyFile, 0o600));
    const { code, output } = await refusedStart();
    t.equal(code, 1);
    t.match(output, `log key ${keyFile} has mode 666: others can write it`);
    t.match(output, 'refusing to start');
    t.notMatch(output, /listening/);
    t.equal(await modeOf(keyFile), 0o666);
  });

  t.test('a data directory others can write: refuses to start', async (t) => {
    await chmod(store.dataDir, 0o777);
    t.teardown(() => chmod(store.dataDir, 0o700));
    const { code, output } = await refusedStart();
    t.equal(code, 1);
    t.match(output, `data directory ${store.dataDir} has mode 777: others can write it`);
    t.notMatch(output, /listening/);
  });
});
