// `vigil-server reader add|list|revoke` against a running `vigil-server serve` (real processes): the
// token is printed once and works at once; a revocation takes effect through the admin NOTIFY; both
// are records of the operator emitter; the token never appears in the server's output.
import t from 'tap';
import { operatorNameFor } from '@vigil/client';
import { forEachStore } from '../src/db/testing.js';
import {
  ORIGIN,
  SERVER_MAIN,
  eventually,
  prepareLog,
  serverEnv,
  spawnNode,
  startServer,
  stopChild,
} from './helpers/process.js';

forEachStore(t, async (t, store) => {
  await prepareLog(store);
  const { child, url } = await startServer(store);
  t.teardown(() => stopChild(child));
  const cli = async (...args: string[]) => {
    const c = spawnNode(SERVER_MAIN, args, serverEnv(store));
    const { code } = await c.exited;
    return { code, out: c.output() };
  };
  const search = (token: string, query = '') =>
    fetch(`${url}/v1/search?${query}`, { headers: { authorization: `Bearer ${token}` } });

  const added = await cli('reader', 'add', 'alice');
  t.equal(added.code, 0, 'reader add exits 0');
  const token = added.out.trim().split('\n').at(-1)!;
  t.match(token, /^vigil_rt_[A-Za-z0-9_-]{43}$/, 'the token is the last line');
  t.equal((await search(token)).status, 200, 'the new reader searches at once');
  const second = await cli('reader', 'add', 'bob');
  const bob = second.out.trim().split('\n').at(-1)!;

  const list = await cli('reader', 'list');
  t.equal(list.code, 0);
  t.match(list.out, /^alice\t\S+$/m);
  t.notOk(list.out.includes(token), 'reader list never prints a token');

  const revoked = await cli('reader', 'revoke', 'alice');
  t.equal(revoked.code, 0, 'reader revoke exits 0');
  t.match(revoked.out, /revoked reader alice/);
  const refused = await eventually(
    async () => {
      const res = await search(token);
      return res.status === 401 ? res : undefined;
    },
    30_000,
    'the revocation to take effect',
  );
  t.equal(refused.headers.get('www-authenticate'), 'Bearer realm="vigil"');
  t.equal((await search(bob)).status, 200, 'another reader is unaffected');
  const again = await cli('reader', 'revoke', 'alice');
  t.equal(again.code, 1, 'revoking twice fails');
  t.match(again.out, /no active reader alice/);
  t.equal((await cli('reader', 'frob')).code, 1, 'an unknown subcommand is a usage error');

  // Both changes are records of the operator emitter.
  const records = await eventually(
    async () => {
      const res = await search(bob, `emitter=${encodeURIComponent(operatorNameFor(ORIGIN))}`);
      const body = (await res.json()) as { entries: { entry: { record: Record<string, unknown> } }[] };
      const readers = body.entries
        .map((e) => e.entry.record)
        .filter((r) => r.kind === 'reader.add' || r.kind === 'reader.revoke')
        .map((r) => `${r.kind} ${r.name}`)
        .reverse();
      return readers.length === 3 ? readers : undefined;
    },
    30_000,
    'the reader records',
  );
  t.same(records, ['reader.add alice', 'reader.add bob', 'reader.revoke alice']);
  t.notOk(child.output().includes(token) || child.output().includes(bob), 'no token in the server output');
});
