// The c2sp.org/tlog-witness add-checkpoint status matrix, one test per rule, in the spec's order of
// checks, plus the rollback race, content types, limits and restart. Every test runs on both stores.
import t, { type Test } from 'tap';
import {
  cosignerVerifierKey,
  formatCheckpoint,
  generateKey,
  hexEncode,
  sha256,
  signNote,
  utf8,
  verifyCosignature,
} from '@vigil/client';
import { buildApp, type AppDeps } from '../../src/app.js';
import type { WitnessConfig } from '../../src/config.js';
import { migrateWitness } from '../../src/db/open.js';
import type { WitnessDatabase } from '../../src/db/schema.js';
import { createWitnessStore } from '../../src/db/store.js';
import { formatAddCheckpointRequest } from '../../src/witness/request.js';
import { forEachStore } from '@vigil/store';
import { openTestWitness, testConfig, TestLog, WITNESS_KEY, type TestWitness } from '../helpers.js';

const NOW = 1_790_000_000n;
const WITNESS_VKEY = cosignerVerifierKey(WITNESS_KEY.signerKey);

function post(
  witness: TestWitness,
  body: string,
  contentType: string | undefined = 'text/plain; charset=utf-8',
) {
  return witness.app.inject({
    method: 'POST',
    url: '/add-checkpoint',
    headers: contentType === undefined ? {} : { 'content-type': contentType },
    payload: body,
  });
}

function request(oldSize: number, proof: Uint8Array[], note: string): string {
  return formatAddCheckpointRequest({ oldSize: BigInt(oldSize), proof, note });
}

let origins = 0;

/** Adds a fresh log (its own origin: every rule shares the store of its store kind). */
async function setup(witness: TestWitness, size = 0): Promise<TestLog> {
  const log = new TestLog(`example.com/log${++origins}`);
  await witness.store.addLog({ origin: log.origin, vkey: log.vkey, url: null, pullIntervalMs: 5000 });
  if (size > 0) {
    log.append(size);
    const res = await post(witness, request(0, [], log.checkpoint()));
    if (res.statusCode !== 200) throw new Error(`setup failed: ${res.statusCode} ${res.body}`);
  }
  return log;
}

const deps = { now: () => NOW };

interface Rule {
  name: string;
  fn: (t: Test, witness: TestWitness) => Promise<void>;
  deps?: Partial<AppDeps>;
  config?: WitnessConfig;
}
const rules: Rule[] = [];

/** Registers a test; all run in order on one store per kind (each with its own app and origin). */
function rule(name: string, fn: Rule['fn'], options: Omit<Rule, 'name' | 'fn'> = {}): void {
  rules.push({ name, fn, ...options });
}

rule('rule 1: unknown origin is 404 ORIGIN_UNKNOWN, before the signature check', async (t, witness) => {
  await setup(witness);
  const other = new TestLog('example.com/other', 9);
  other.append(1);
  const res = await post(witness, request(0, [], other.checkpoint()));
  t.equal(res.statusCode, 404);
  t.equal(res.json().code, 'ORIGIN_UNKNOWN');
});

rule('rule 1: a disabled log is 404 and its state is kept', async (t, witness) => {
  const log = await setup(witness, 2);
  t.ok(await witness.store.disableLog(log.origin));
  log.append(1);
  const res = await post(witness, request(2, log.proof(2), log.checkpoint()));
  t.equal(res.statusCode, 404);
  t.equal((await witness.store.latest(log.origin))?.size, 2n);
});

rule('rule 2: no trusted signature is 403 SIGNATURE_INVALID', async (t, witness) => {
  const log = await setup(witness);
  log.append(1);
  // Signed by another key with the same name: unknown key ID, so no trusted signature.
  const impostor = generateKey(log.origin, new Uint8Array(32).fill(99)).signerKey;
  const res = await post(witness, request(0, [], log.checkpoint(1, [impostor])));
  t.equal(res.statusCode, 403);
  t.equal(res.json().code, 'SIGNATURE_INVALID');
});

rule('rule 2: a known key whose signature fails is 403 even beside a good one', async (t, witness) => {
  const log = await setup(witness);
  log.append(1);
  const note = log.checkpoint();
  const [text, sigs] = note.split('\n\n') as [string, string];
  const other = new TestLog(log.origin, 1);
  other.append(2);
  // The log's key over different text: name and key ID match, the signature does not verify.
  const badLine = other.checkpoint().split('\n\n')[1]!;
  const res = await post(witness, request(0, [], `${text}\n\n${sigs}${badLine}`));
  t.equal(res.statusCode, 403);
});

rule('rule 3: old > size is 400 REQUEST_MALFORMED, after the signature check', async (t, witness) => {
  const log = await setup(witness);
  log.append(2);
  const res = await post(witness, request(3, [], log.checkpoint()));
  t.equal(res.statusCode, 400);
  t.equal(res.json().code, 'REQUEST_MALFORMED');
  const impostor = generateKey(log.origin, new Uint8Array(32).fill(99)).signerKey;
  const res2 = await post(witness, request(3, [], log.checkpoint(2, [impostor])));
  t.equal(res2.statusCode, 403, '403 is checked before 400');
});

rule('rule 3: a malformed body is 400', async (t, witness) => {
  const log = await setup(witness);
  log.append(1);
  for (const body of [
    '',
    'old 0\n',
    `old 00\n\n${log.checkpoint()}`,
    `old 0\n\nnot a checkpoint\n\n— x AAAA\n`,
  ]) {
    const res = await post(witness, body);
    t.equal(res.statusCode, 400, JSON.stringify(body.slice(0, 20)));
    t.equal(res.json().code, 'REQUEST_MALFORMED');
  }
});

rule('rule 4: old != witnessed size is 409 with text/x.tlog.size "<size>\\n"', async (t, witness) => {
  const log = await setup(witness, 3);
  log.append(2);
  const res = await post(witness, request(1, log.proof(1), log.checkpoint()));
  t.equal(res.statusCode, 409);
  t.equal(res.headers['content-type'], 'text/x.tlog.size');
  t.equal(res.body, '3\n');
  // Bootstrap: a client that sends old 0 learns the size.
  const res0 = await post(witness, request(0, [], log.checkpoint()));
  t.equal(res0.statusCode, 409);
  t.equal(res0.body, '3\n');
});

rule('rule 5: a size-0 checkpoint whose root is not the empty root is 422', async (t, witness) => {
  const log = await setup(witness);
  const text = formatCheckpoint({
    origin: log.origin,
    size: 0n,
    root: new Uint8Array(32).fill(1),
    extensions: [],
  });
  const res = await post(witness, request(0, [], signNote(text, [log.signerKey])));
  t.equal(res.statusCode, 422);
  t.equal(res.json().code, 'PROOF_INVALID');
  const good = await post(witness, request(0, [], log.checkpoint(0)));
  t.equal(good.statusCode, 200, 'the empty tree with the empty root is cosigned');
});

rule('rule 6: old 0 with a non-empty proof is 422', async (t, witness) => {
  const log = await setup(witness);
  log.append(2);
  const res = await post(witness, request(0, [log.root(1)], log.checkpoint()));
  t.equal(res.statusCode, 422);
  t.equal(res.json().code, 'PROOF_INVALID');
});

rule(
  'rule 6: a consistency proof that fails is 422 (flipped bit, short, long, empty)',
  async (t, witness) => {
    const log = await setup(witness, 3);
    log.append(4);
    const proof = log.proof(3);
    const flipped = proof.map((h, i) => (i === 1 ? h.map((b, j) => (j === 0 ? b ^ 1 : b)) : h));
    for (const [name, p] of [
      ['flipped bit', flipped],
      ['one hash short', proof.slice(0, -1)],
      ['one hash long', [...proof, proof[0]!]],
      ['empty', []],
    ] as [string, Uint8Array[]][]) {
      const res = await post(witness, request(3, p, log.checkpoint()));
      t.equal(res.statusCode, 422, name);
      t.equal(res.json().code, 'PROOF_INVALID', name);
    }
    t.equal((await witness.store.latest(log.origin))?.size, 3n, 'state did not move');
    const ok = await post(witness, request(3, proof, log.checkpoint()));
    t.equal(ok.statusCode, 200, 'the correct proof is accepted');
  },
);

rule('rule 7: same size with a different root is 422 and recorded as fork evidence', async (t, witness) => {
  const log = await setup(witness, 3);
  const fork = new TestLog(log.origin, 1);
  fork.append(3, 5);
  const res = await post(witness, request(3, [], fork.checkpoint()));
  t.equal(res.statusCode, 422);
  t.equal(res.json().code, 'PROOF_INVALID');
  const evidence = await witness.store.listEvidence(log.origin);
  t.equal(evidence.length, 1);
  t.equal(evidence[0]?.kind, 'fork');
  t.equal(evidence[0]?.oldSize, 3n);
  t.equal(evidence[0]?.newNote, fork.checkpoint());
  const listed = await witness.app.inject({
    method: 'GET',
    url: `/v1/evidence?origin=${encodeURIComponent(log.origin)}`,
  });
  t.equal(listed.statusCode, 200);
  const item = listed.json().evidence[0];
  t.equal(item.kind, 'fork');
  t.equal(item.conclusive, true);
  t.equal(item.logVkey, log.vkey);
  t.equal(item.oldSize, '3');
  // A resubmission of the same fork does not duplicate the evidence.
  await post(witness, request(3, [], fork.checkpoint()));
  t.equal((await witness.store.listEvidence(log.origin)).length, 1);
});

rule(
  'rule 8: success is 200 with a cosignature line, persisted; same size and root re-cosigns',
  async (t, witness) => {
    const log = await setup(witness);
    log.append(5);
    const note = log.checkpoint();
    const res = await post(witness, request(0, [], note));
    t.equal(res.statusCode, 200);
    t.match(res.headers['content-type'], /^text\/plain/);
    t.match(res.body, /^— example\.com\/witness [A-Za-z0-9+/]+=*\n$/);
    t.equal(verifyCosignature(note + res.body, WITNESS_VKEY), NOW, 'timestamp is now, non-zero');
    const latest = await witness.store.latest(log.origin);
    t.equal(latest?.size, 5n);
    t.equal(latest?.note, note + res.body);
    const again = await post(witness, request(5, [], note));
    t.equal(again.statusCode, 200, 'same size, same root');
    log.append(3);
    const next = await post(witness, request(5, log.proof(5), log.checkpoint()));
    t.equal(next.statusCode, 200);
    t.equal((await witness.store.latest(log.origin))?.size, 8n);
  },
);

rule(
  'a store failure during the save is a 500 "internal error" and leaves the state as it was',
  async (t, witness) => {
    const log = await setup(witness, 2);
    const faulty = {
      ...witness.store,
      compareAndSwap: async () => {
        throw new Error('connection reset: password=hunter2');
      },
    };
    const app = await buildApp(testConfig(), { store: faulty, signerKey: WITNESS_KEY.signerKey, ...deps });
    t.teardown(() => app.close());
    log.append(2);
    const res = await app.inject({
      method: 'POST',
      url: '/add-checkpoint',
      headers: { 'content-type': 'text/plain' },
      payload: request(2, log.proof(2), log.checkpoint()),
    });
    t.equal(res.statusCode, 500);
    t.same(res.json(), { code: 'INTERNAL', message: 'internal error' });
    t.equal((await witness.store.latest(log.origin))?.size, 2n, 'nothing was saved');
    const retry = await post(witness, request(2, log.proof(2), log.checkpoint()));
    t.equal(retry.statusCode, 200, 'the same request succeeds once the store works');
  },
);

rule(
  'a client that lost our 200 retries: 409 tells it the size, then the same checkpoint is re-cosigned',
  async (t, witness) => {
    const log = await setup(witness, 2);
    log.append(3);
    t.equal((await post(witness, request(2, log.proof(2), log.checkpoint()))).statusCode, 200);
    const lost = await post(witness, request(2, log.proof(2), log.checkpoint()));
    t.equal(lost.statusCode, 409);
    t.equal(lost.body, '5\n');
    const again = await post(witness, request(5, [], log.checkpoint()));
    t.equal(again.statusCode, 200);
    t.ok(verifyCosignature(log.checkpoint() + again.body, WITNESS_VKEY) > 0n);
  },
);

rule('unknown signatures beside the log signature are ignored', async (t, witness) => {
  const log = await setup(witness);
  log.append(2);
  const stranger = generateKey('stranger.example/key', new Uint8Array(32).fill(3)).signerKey;
  const res = await post(witness, request(0, [], log.checkpoint(2, [stranger, log.signerKey])));
  t.equal(res.statusCode, 200);
  const latest = await witness.store.latest(log.origin);
  t.notMatch(latest?.note ?? '', /stranger/, 'only the log signature and ours are kept');
});

// Both requests pass every check, then meet at the barrier before the compare-and-swap.
let waiting: (() => void)[] = [];
const barrier = async () => {
  await new Promise<void>((resolve) => {
    waiting.push(resolve);
    if (waiting.length === 2) {
      for (const r of waiting) r();
      waiting = [];
    }
  });
};
rule(
  'the rollback race: two requests from the same old size, exactly one wins',
  async (t, witness) => {
    const log = await setup(witness);
    log.append(2);
    const a = log.checkpoint();
    log.append(3);
    const b = log.checkpoint();
    const results = await Promise.all([post(witness, request(0, [], a)), post(witness, request(0, [], b))]);
    const statuses = results.map((r) => r.statusCode).sort();
    t.same(statuses, [200, 409]);
    const winner = results.find((r) => r.statusCode === 200)!;
    const loser = results.find((r) => r.statusCode === 409)!;
    const latest = await witness.store.latest(log.origin);
    t.equal(loser.body, `${latest?.size}\n`, '409 names the size that won');
    t.ok(
      latest?.note.endsWith(winner.body),
      'the stored checkpoint is the one whose cosignature was returned',
    );
  },
  { deps: { hooks: { beforeSave: barrier } } },
);

rule('content types: text/* and none are accepted, others are not', async (t, witness) => {
  const log = await setup(witness);
  log.append(1);
  t.equal((await post(witness, request(0, [], log.checkpoint()), 'text/x-anything')).statusCode, 200);
  log.append(1);
  t.equal((await post(witness, request(1, log.proof(1), log.checkpoint()), undefined)).statusCode, 200);
  log.append(1);
  const json = await post(witness, request(2, log.proof(2), log.checkpoint()), 'application/json');
  t.equal(json.statusCode, 400);
  t.equal(json.json().code, 'REQUEST_MALFORMED');
  const bad = await witness.app.inject({
    method: 'POST',
    url: '/add-checkpoint',
    headers: { 'content-type': 'text/plain' },
    payload: Buffer.from([0x6f, 0x6c, 0x64, 0x20, 0xff, 0x0a]),
  });
  t.equal(bad.statusCode, 400, 'invalid utf-8');
});

rule('body limit: a body over the limit is 413', async (t, witness) => {
  const res = await post(witness, 'old 0\n' + 'A'.repeat(70_000));
  t.equal(res.statusCode, 413);
  t.equal(res.json().code, 'BODY_TOO_LARGE');
});

rule(
  'per-origin rate limit answers 429 RATE_LIMITED',
  async (t, witness) => {
    const log = await setup(witness);
    log.append(1);
    const note = log.checkpoint();
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++)
      statuses.push((await post(witness, request(i === 0 ? 0 : 1, [], note))).statusCode);
    t.same(statuses, [200, 200, 429, 429]);
    const res = await post(witness, request(1, [], note));
    t.equal(res.json().code, 'RATE_LIMITED');
    t.equal(res.headers['retry-after'], '1');
  },
  { config: testConfig({ WITNESS_RATE_LIMIT: '0.001', WITNESS_RATE_BURST: '2' }) },
);

rule(
  'a flood of forged requests for an origin does not stop the log pushing it (429 goes to the sender)',
  async (t, witness) => {
    const log = await setup(witness);
    log.append(3);
    // Anyone may send add-checkpoint for any origin; these carry a signature by a key the witness
    // does not trust for it, from one address, as fast as the witness answers.
    const impostor = generateKey(log.origin, new Uint8Array(32).fill(99)).signerKey;
    const forged = request(0, [], log.checkpoint(3, [impostor]));
    const statuses = new Map<number, number>();
    const started = Date.now();
    for (let i = 0; i < 1000; i++) {
      const res = await witness.app.inject({
        method: 'POST',
        url: '/add-checkpoint',
        remoteAddress: '203.0.113.7',
        headers: { 'content-type': 'text/plain; charset=utf-8' },
        payload: forged,
      });
      statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1);
    }
    const seconds = Math.ceil((Date.now() - started) / 1000);
    const forbidden = statuses.get(403) ?? 0;
    t.equal(forbidden + (statuses.get(429) ?? 0), 1000, 'only 403 and 429');
    // Burst 20, then 1 a second: the flood got few signature checks before it was refused unread.
    t.ok(forbidden >= 20 && forbidden <= 20 + seconds + 1, `${forbidden} forged requests checked`);

    // The log, from its own address, pushes through the flood: its signed requests alone count
    // against the origin's budget.
    const push = await witness.app.inject({
      method: 'POST',
      url: '/add-checkpoint',
      remoteAddress: '198.51.100.1',
      headers: { 'content-type': 'text/plain; charset=utf-8' },
      payload: request(0, [], log.checkpoint()),
    });
    t.equal(push.statusCode, 200, push.body);
    t.equal(verifyCosignature(log.checkpoint() + push.body, WITNESS_VKEY), NOW);
    t.equal((await witness.store.latest(log.origin))?.size, 3n);

    // The flooding address stays refused, before its body is read (the IPv4-mapped form too).
    for (const remoteAddress of ['203.0.113.7', '::ffff:203.0.113.7']) {
      const refused = await witness.app.inject({
        method: 'POST',
        url: '/add-checkpoint',
        remoteAddress,
        headers: { 'content-type': 'text/plain; charset=utf-8' },
        payload: request(3, [], log.checkpoint()),
      });
      t.equal(refused.statusCode, 429);
      t.equal(refused.json().code, 'RATE_LIMITED');
    }
  },
);

t.test('restart keeps state: a reopened store answers 409 with the stored size', async (t) => {
  forEachStore(t, async (t, testStore) => {
    const first = await openTestWitness(testStore, deps);
    const log = await setup(first, 4);
    await first.close();
    const second = await openTestWitness(testStore, deps);
    t.teardown(() => second.close());
    t.equal((await second.store.latest(log.origin))?.size, 4n);
    log.append(1);
    const res = await post(second, request(0, [], log.checkpoint()));
    t.equal(res.statusCode, 409);
    t.equal(res.body, '4\n');
    const ok = await post(second, request(4, log.proof(4), log.checkpoint()));
    t.equal(ok.statusCode, 200);
  });
});

rule('monitoring: GET /<sha256(origin)>/checkpoint', async (t, witness) => {
  const log = await setup(witness);
  const url = `/${hexEncode(sha256(utf8(log.origin)))}/checkpoint`;
  t.equal((await witness.app.inject({ method: 'GET', url })).statusCode, 404, 'nothing cosigned yet');
  t.equal(
    (await witness.app.inject({ method: 'GET', url: `/${'0'.repeat(64)}/checkpoint` })).statusCode,
    404,
  );
  log.append(2);
  await post(witness, request(0, [], log.checkpoint()));
  const res = await witness.app.inject({ method: 'GET', url });
  t.equal(res.statusCode, 200);
  t.ok(res.body.startsWith(log.checkpoint()), 'checkpoint with the log signature');
  t.equal(verifyCosignature(res.body, WITNESS_VKEY), NOW, 'and ours');
  const health = await witness.app.inject({ method: 'GET', url: '/healthz' });
  t.equal(health.statusCode, 200);
  const info = await witness.app.inject({ method: 'GET', url: '/v1/witness' });
  t.equal(info.json().vkey, WITNESS_VKEY);
  t.equal(info.json().logs.find((l: { origin: string }) => l.origin === log.origin).size, '2');
});

forEachStore(t, async (t, testStore) => {
  const opened = await testStore.open<WitnessDatabase>();
  t.teardown(() => opened.close());
  await migrateWitness(opened.db);
  const store = createWitnessStore(opened.db);
  for (const r of rules) {
    await t.test(r.name, async (t) => {
      const app = await buildApp(r.config ?? testConfig(), {
        store,
        signerKey: WITNESS_KEY.signerKey,
        ...deps,
        ...r.deps,
      });
      t.teardown(() => app.close());
      await r.fn(t, { app, store, close: () => app.close() });
    });
  }
});
