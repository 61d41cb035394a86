// GET /metrics: add-checkpoint answers by status code, cosignatures, pull polls (ok and failure),
// evidence stored, and the cosigned size per log, in the Prometheus text format.
import t from 'tap';
import { cosignerVerifierKey } from '@vigil/client';
import { forEachStore } from '@vigil/store';
import { formatAddCheckpointRequest } from '../src/witness/request.js';
import { FakeLogServer, eventually } from './fake-log.js';
import { openTestWitness, TestLog, WITNESS_KEY, type TestWitness } from './helpers.js';

const add = (w: TestWitness, oldSize: number, proof: Uint8Array[], note: string) =>
  w.app.inject({
    method: 'POST',
    url: '/add-checkpoint',
    headers: { 'content-type': 'text/plain; charset=utf-8' },
    payload: formatAddCheckpointRequest({ oldSize: BigInt(oldSize), proof, note }),
  });

forEachStore(t, async (t, testStore) => {
  const pulled = new TestLog('example.com/pulled', 3);
  pulled.append(5);
  const server = new FakeLogServer(pulled, [cosignerVerifierKey(WITNESS_KEY.signerKey)]);
  await server.listen();
  t.teardown(() => server.close());
  const witness = await openTestWitness(testStore, {
    pull: true,
    pullTiming: { refreshMs: 50, repostMs: 0 },
  });
  t.teardown(() => witness.close());
  const scrape = async () => {
    const res = await witness.app.inject('/metrics');
    t.equal(res.statusCode, 200);
    t.match(res.headers['content-type'], /^text\/plain; version=0\.0\.4/);
    return res.body;
  };
  t.notMatch(await scrape(), /vigil_witness_add_checkpoint_total\{/, 'no answers counted yet');

  const log = new TestLog('example.com/pushed', 1);
  await witness.store.addLog({ origin: log.origin, vkey: log.vkey, url: null, pullIntervalMs: 5000 });
  log.append(4);
  t.equal((await add(witness, 0, [], log.checkpoint())).statusCode, 200);
  t.equal((await add(witness, 0, [], log.checkpoint())).statusCode, 409);
  t.equal((await add(witness, 0, [], new TestLog('example.com/unknown', 2).checkpoint(0))).statusCode, 404);
  const fork = new TestLog(log.origin, 1);
  fork.append(4, 7);
  t.equal((await add(witness, 4, [], fork.checkpoint())).statusCode, 422);

  await witness.store.addLog({
    origin: pulled.origin,
    vkey: pulled.vkey,
    url: server.url,
    pullIntervalMs: 50,
  });
  await eventually('a pull poll counted', async () =>
    /vigil_witness_pull_polls_total\{origin="example.com\/pulled",result="ok"\} [1-9]/.test(await scrape())
      ? true
      : undefined,
  );
  server.down = true;
  await eventually('a failed poll counted', async () =>
    /vigil_witness_pull_polls_total\{origin="example.com\/pulled",result="failure"\} [1-9]/.test(
      await scrape(),
    )
      ? true
      : undefined,
  );

  const body = await scrape();
  for (const line of [
    'vigil_witness_add_checkpoint_total{code="200"} 1',
    'vigil_witness_add_checkpoint_total{code="409"} 1',
    'vigil_witness_add_checkpoint_total{code="404"} 1',
    'vigil_witness_add_checkpoint_total{code="422"} 1',
    'vigil_witness_cosignatures_total{origin="example.com/pushed"} 1',
    'vigil_witness_cosignatures_total{origin="example.com/pulled"} 1',
    'vigil_witness_evidence_stored_total{origin="example.com/pushed",kind="fork"} 1',
    'vigil_witness_evidence_items 1',
    'vigil_witness_cosigned_size{origin="example.com/pushed"} 4',
    'vigil_witness_cosigned_size{origin="example.com/pulled"} 5',
    'vigil_witness_log_enabled{origin="example.com/pulled"} 1',
  ])
    t.ok(body.split('\n').includes(line), line);
  t.match(body, /# TYPE vigil_witness_add_checkpoint_total counter/);
});
