// DPoP proofs (RFC 9449 section 4.3), checked against proofs made by an independent implementation
// (the MCP SDK v2 client's DpopSession) and hand-made mutations signed here with node:crypto.
import { createHash, generateKeyPairSync, randomUUID, sign } from 'node:crypto';
import { DpopSession } from '@modelcontextprotocol/client';
import { calculateJwkThumbprint, type JWK } from 'jose';
import t from 'tap';
import { DpopProofError, DpopVerifier, isSameTarget } from '../../src/mcp/dpop.js';

const URL_ = 'https://mcp.test/mcp';
const TOKEN = 'access-token-value';
const session = await DpopSession.create();
const request = { method: 'POST', url: URL_, accessToken: TOKEN, jkt: session.thumbprint };

const b64url = (v: string | Buffer) => Buffer.from(v).toString('base64url');
const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const ecJwk = ec.publicKey.export({ format: 'jwk' }) as JWK;
const ecJkt = await calculateJwkThumbprint(ecJwk, 'sha256');
const now = () => Math.floor(Date.now() / 1000);

/** A proof signed here with the P-256 key; `header` and `claims` override the well-formed ones. */
function handMade(header: Record<string, unknown> = {}, claims: Record<string, unknown> = {}): string {
  const h = { typ: 'dpop+jwt', alg: 'ES256', jwk: ecJwk, ...header };
  const c = {
    jti: randomUUID(),
    htm: 'POST',
    htu: URL_,
    iat: now(),
    ath: b64url(createHash('sha256').update(TOKEN).digest()),
    ...claims,
  };
  const input = `${b64url(JSON.stringify(h))}.${b64url(JSON.stringify(c))}`;
  const signature = sign('sha256', Buffer.from(input), { key: ec.privateKey, dsaEncoding: 'ieee-p1363' });
  return `${input}.${b64url(signature)}`;
}

type Rejects = Pick<typeof t, 'rejects'>;
const rejectsWith = async (t: Rejects, p: Promise<unknown>, code: string, what: string) => {
  await t.rejects(p, { name: 'DpopProofError', code }, what);
};

t.test('an SDK proof for this request and key verifies; each mismatch is refused', async (t) => {
  const verifier = new DpopVerifier();
  const proof = () => session.buildProof({ htm: 'POST', htu: URL_, accessToken: TOKEN });
  await verifier.verify(await proof(), request);
  // The SDK strips the query; any query on the request is ignored too.
  await verifier.verify(await proof(), { ...request, url: `${URL_}?sessionId=1` });
  for (const [what, p, r] of [
    ['other method', proof(), { ...request, method: 'GET' }],
    ['other path', proof(), { ...request, url: 'https://mcp.test/other' }],
    ['other host', proof(), { ...request, url: 'https://evil.test/mcp' }],
    ['other scheme', proof(), { ...request, url: 'http://mcp.test/mcp' }],
    ['other token (ath)', proof(), { ...request, accessToken: 'another-token' }],
    ['token bound to another key', proof(), { ...request, jkt: ecJkt }],
    ['no ath', session.buildProof({ htm: 'POST', htu: URL_ }), request],
  ] as const) {
    await rejectsWith(t, verifier.verify(await p, r), 'DPOP_PROOF_INVALID', what);
  }
  await rejectsWith(t, verifier.verify(undefined, request), 'DPOP_PROOF_MISSING', 'no proof');
  await rejectsWith(t, verifier.verify('', request), 'DPOP_PROOF_MISSING', 'empty proof');
  const two = `${await proof()}, ${await proof()}`;
  await rejectsWith(t, verifier.verify(two, request), 'DPOP_PROOF_INVALID', 'two DPoP headers');
});

t.test('a proof is accepted once (jti replay)', async (t) => {
  const verifier = new DpopVerifier();
  const proof = await session.buildProof({ htm: 'POST', htu: URL_, accessToken: TOKEN });
  await verifier.verify(proof, request);
  await rejectsWith(t, verifier.verify(proof, request), 'DPOP_PROOF_INVALID', 'replayed');
});

t.test('hand-made proofs: well-formed passes, each broken rule is refused', async (t) => {
  const verifier = new DpopVerifier({ maxAgeSeconds: 300, leewaySeconds: 60 });
  const r = { ...request, jkt: ecJkt };
  await verifier.verify(handMade(), r);
  const { d: _d, ...pub } = ec.privateKey.export({ format: 'jwk' }) as JWK;
  t.same(pub, ecJwk, 'the public half of the key');
  for (const [what, proof] of [
    ['typ JWT', handMade({ typ: 'JWT' })],
    ['no typ', handMade({ typ: undefined })],
    ['private key in jwk', handMade({ jwk: ec.privateKey.export({ format: 'jwk' }) })],
    ['no jwk', handMade({ jwk: undefined })],
    ['alg none', handMade({ alg: 'none' })],
    ['alg HS256', handMade({ alg: 'HS256' })],
    ['iat too old', handMade({}, { iat: now() - 600 })],
    ['iat in the future', handMade({}, { iat: now() + 600 })],
    ['no iat', handMade({}, { iat: undefined })],
    ['no jti', handMade({}, { jti: undefined })],
    ['htm lower case', handMade({}, { htm: 'post' })],
    [
      'signature by another key',
      handMade({
        jwk: generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'jwk' }),
      }),
    ],
  ] as const) {
    await rejectsWith(t, verifier.verify(proof, r), 'DPOP_PROOF_INVALID', what);
  }
  t.type(new DpopProofError('DPOP_PROOF_MISSING', 'x'), Error);
});

t.test('htu comparison: normalised, query and fragment ignored', async (t) => {
  t.ok(isSameTarget('https://MCP.test:443/mcp?x=1#f', 'https://mcp.test/mcp'));
  t.ok(isSameTarget('http://127.0.0.1:80/a/../mcp', 'http://127.0.0.1/mcp'));
  t.notOk(isSameTarget('https://mcp.test:8443/mcp', 'https://mcp.test/mcp'));
  t.notOk(isSameTarget('https://mcp.test/mcp/', 'https://mcp.test/mcp'));
  t.notOk(isSameTarget('not a url', 'https://mcp.test/mcp'));
});
