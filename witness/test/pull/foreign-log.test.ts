// A pulled log that is not Vigil has no POST /v1/cosignatures (it answers 404). That is no failure:
// the witness keeps cosigning as the log grows, without backing off, and serves each cosigned
// checkpoint from its monitoring endpoint (c2sp.org/tlog-witness "Monitoring").
import t from 'tap';
import {
  cosignerVerifierKey,
  hexEncode,
  openNote,
  parseCheckpoint,
  sha256,
  utf8,
  verifyCosignature,
} from '@vigil/client';
import { forEachStore } from '@vigil/store';
import { Puller } from '../../src/pull/puller.js';
import { openTestWitness, TestLog, WITNESS_KEY } from '../helpers.js';
import { FakeLogServer } from '../fake-log.js';

const WITNESS_VKEY = cosignerVerifierKey(WITNESS_KEY.signerKey);

forEachStore(t, async (t, testStore) => {
  const log = new TestLog('tiles-only.example/log', 21);
  log.append(4);
  const server = new FakeLogServer(log, [WITNESS_VKEY]);
  server.takesCosignatures = false;
  await server.listen();
  t.teardown(() => server.close());
  const witness = await openTestWitness(testStore);
  t.teardown(() => witness.close());
  await witness.store.addLog({ origin: log.origin, vkey: log.vkey, url: server.url, pullIntervalMs: 100 });
  const warnings: unknown[] = [];
  const logger = {
    error: (...args: unknown[]) => warnings.push(args),
    warn: (...args: unknown[]) => warnings.push(args),
    info: () => undefined,
    debug: () => undefined,
  };
  const puller = new Puller({
    witness: witness.app.witness,
    logger: logger as never,
    timeoutMs: 2000,
    maxBackoffMs: 1000,
    repostMs: 0,
  });
  const record = (await witness.store.getLog(log.origin))!;
  const monitoring = `/${hexEncode(sha256(utf8(log.origin)))}/checkpoint`;

  for (const [grow, size] of [
    [0, 4n],
    [300, 304n],
    [2, 306n],
  ] as const) {
    await t.test(`cosigns size ${size} although the log takes no cosignatures`, async (t) => {
      log.append(grow);
      t.equal(await puller.pollOnce(record), 'cosigned');
      t.equal((await witness.store.latest(log.origin))?.size, size);
      const served = await witness.app.inject({ method: 'GET', url: monitoring });
      t.equal(served.statusCode, 200);
      t.equal(parseCheckpoint(openNote(served.body, [log.vkey]).text).size, size);
      t.ok(verifyCosignature(served.body, WITNESS_VKEY) > 0n, 'with our cosignature');
      // Unchanged: the re-post to a log without the endpoint is not a failure either.
      t.equal(await puller.pollOnce(record), 'reposted');
    });
  }
  t.equal(server.posts.length, 6, 'every cosignature was offered to the log');
  t.same(warnings, [], 'no failure logged');
});
