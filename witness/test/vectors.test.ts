// Replays client-lib/test/vectors/witness.json (source: FiloSottile/litetlog
// cmd/litewitness/testdata/litewitness.txt @ 3195373f; see the file's "source" and "checked_by") in
// order against a fresh witness that trusts the vector's log key. `expected_status_spec` is what we
// must answer; the litewitness body assertions are checked for 200 and 409.
import { readFileSync } from 'node:fs';
import t from 'tap';
import { hexEncode, sha256, utf8, verifyCosignature } from '@vigil/client';
import { forEachWitness, WITNESS_KEY } from './helpers.js';
import { cosignerVerifierKey } from '@vigil/client';

interface Vector {
  request_body: string;
  expected_status_spec: number;
  expected_status_litewitness: number;
  litewitness_assert: string;
  witness_state_size_after: number;
  note: string;
}

const file = JSON.parse(
  readFileSync(new URL('../../../client-lib/test/vectors/witness.json', import.meta.url), 'utf8'),
) as { log_origin: string; log_vkey: string; requests: Vector[] };

const CODE_BY_STATUS: Record<number, string> = {
  400: 'REQUEST_MALFORMED',
  403: 'SIGNATURE_INVALID',
  404: 'ORIGIN_UNKNOWN',
  422: 'PROOF_INVALID',
};

forEachWitness(t, async (t, { app, store }) => {
  await store.addLog({ origin: file.log_origin, vkey: file.log_vkey, url: null, pullIntervalMs: 5000 });
  const witnessVkey = cosignerVerifierKey(WITNESS_KEY.signerKey);
  for (const [i, v] of file.requests.entries()) {
    const res = await app.inject({
      method: 'POST',
      url: '/add-checkpoint',
      headers: { 'content-type': 'text/plain; charset=utf-8' },
      payload: v.request_body,
    });
    const label = `request ${i}: ${v.litewitness_assert}${v.note ? ` (${v.note})` : ''}`;
    t.equal(res.statusCode, v.expected_status_spec, `${label}: status`);
    if (v.expected_status_spec === 200) {
      t.match(res.body, /^— example\.com\/witness [A-Za-z0-9+/]+=*\n$/, `${label}: one cosignature line`);
      t.match(res.headers['content-type'], /^text\/plain/);
      const note = v.request_body.slice(v.request_body.indexOf('\n\n') + 2) + res.body;
      t.ok(verifyCosignature(note, witnessVkey) > 0n, `${label}: cosignature verifies`);
    } else if (v.expected_status_spec === 409) {
      const m = /^body == "(\d+)\\n"$/.exec(v.litewitness_assert);
      t.ok(m, 'vector asserts the 409 body');
      t.equal(res.body, `${m![1]}\n`, `${label}: body`);
      t.equal(res.headers['content-type'], 'text/x.tlog.size', `${label}: content type`);
    } else {
      t.equal(res.json().code, CODE_BY_STATUS[v.expected_status_spec], `${label}: code`);
      const contains = /^body contains "(.*)"$/.exec(v.litewitness_assert)?.[1];
      t.ok(contains, 'vector asserts part of the body');
      t.ok(res.json().message.includes(contains!), `${label}: message contains "${contains}"`);
    }
    const latest = await store.latest(file.log_origin);
    t.equal(latest?.size ?? 0n, BigInt(v.witness_state_size_after), `${label}: witnessed size after`);
  }
  // Monitoring endpoint: the newest cosigned checkpoint with the log's signature and ours.
  const hash = hexEncode(sha256(utf8(file.log_origin)));
  const res = await app.inject({ method: 'GET', url: `/${hash}/checkpoint` });
  t.equal(res.statusCode, 200);
  t.match(res.body, /^sigsum\.org\/v1\/tree\/[0-9a-f]+\n5\n/);
  t.ok(verifyCosignature(res.body, witnessVkey) > 0n);
});
