// JWT principals (the proxy's --jwt-public-key / --jwks / --oidc-issuer): algorithm bound to the key type, `exp`
// required and numeric, and JWKS re-fetches for unknown key IDs bounded. Tokens are signed here with
// node:crypto, independently of the verifier.
import t from 'tap';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createHash, generateKeyPairSync, randomUUID, sign, type KeyObject } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  InvalidTokenError,
  JwtConfigError,
  MAX_DISCOVERY_BYTES,
  MAX_JWKS_BYTES,
  PrincipalResolver,
} from '../../src/mcp/jwt.js';

const b64url = (v: string | Buffer) => Buffer.from(v).toString('base64url');

/** A JWS compact token: `alg` goes in the header as given; the signature is made with `how`. */
function jwt(
  header: Record<string, unknown>,
  claims: Record<string, unknown>,
  key: KeyObject,
  how: 'rsa' | 'ec' | 'ed',
): string {
  const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
  const signature =
    how === 'ed'
      ? sign(null, Buffer.from(input), key)
      : how === 'ec'
        ? sign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' })
        : sign('sha256', Buffer.from(input), key);
  return `${input}.${b64url(signature)}`;
}

const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const ed = generateKeyPairSync('ed25519');
const now = () => Math.floor(Date.now() / 1000);
const claims = () => ({ sub: 'alice', iss: 'https://issuer.test', exp: now() + 600 });

const dir = await mkdtemp(join(tmpdir(), 'vigil-jwt-'));
t.teardown(() => rm(dir, { recursive: true, force: true }));
async function keyFile(name: string, key: KeyObject): Promise<string> {
  const file = join(dir, name);
  await writeFile(file, key.export({ type: 'spki', format: 'pem' }));
  return file;
}
const rsaFile = await keyFile('rsa.pem', rsa.publicKey);
const ecFile = await keyFile('ec.pem', ec.publicKey);
const edFile = await keyFile('ed.pem', ed.publicKey);

t.test('valid tokens resolve to their subject', async (t) => {
  for (const [file, alg, key, how] of [
    [rsaFile, 'RS256', rsa.privateKey, 'rsa'],
    [ecFile, 'ES256', ec.privateKey, 'ec'],
    [edFile, 'EdDSA', ed.privateKey, 'ed'],
  ] as const) {
    const resolver = new PrincipalResolver({ publicKeyFile: file, issuer: 'https://issuer.test' });
    const principal = await resolver.resolve(`Bearer ${jwt({ alg, typ: 'JWT' }, claims(), key, how)}`);
    t.match(principal, { type: 'jwt', sub: 'alice', iss: 'https://issuer.test' }, alg);
  }
});

t.test('an ES256 header over an RSA signature is refused (alg bound to the key type)', async (t) => {
  const resolver = new PrincipalResolver({ publicKeyFile: rsaFile });
  // A valid RS256 signature by the trusted RSA key, relabelled ES256.
  const token = jwt({ alg: 'ES256' }, claims(), rsa.privateKey, 'rsa');
  await t.rejects(resolver.resolve(`Bearer ${token}`), InvalidTokenError);
  // The same signature under its true label is accepted: only the label was wrong.
  const honest = jwt({ alg: 'RS256' }, claims(), rsa.privateKey, 'rsa');
  t.match(await resolver.resolve(`Bearer ${honest}`), { sub: 'alice' });
  // And the other way round: an RS256 label over an EC key.
  const ecResolver = new PrincipalResolver({ publicKeyFile: ecFile });
  await t.rejects(
    ecResolver.resolve(`Bearer ${jwt({ alg: 'RS256' }, claims(), ec.privateKey, 'ec')}`),
    InvalidTokenError,
  );
  for (const alg of ['none', 'HS256']) {
    await t.rejects(
      resolver.resolve(`Bearer ${jwt({ alg }, claims(), rsa.privateKey, 'rsa')}`),
      InvalidTokenError,
      alg,
    );
  }
});

t.test('exp is required and must be a number', async (t) => {
  const resolver = new PrincipalResolver({ publicKeyFile: edFile });
  const { exp, ...noExp } = claims();
  for (const [what, body] of [
    ['no exp', noExp],
    ['string exp', { ...noExp, exp: String(exp) }],
    ['expired', { ...noExp, exp: now() - 3600 }],
  ] as const) {
    await t.rejects(
      resolver.resolve(`Bearer ${jwt({ alg: 'EdDSA' }, body, ed.privateKey, 'ed')}`),
      InvalidTokenError,
      what,
    );
  }
});

t.test('JWKS: unknown kids cause a small bounded number of fetches', async (t) => {
  const jwk = { ...rsa.publicKey.export({ format: 'jwk' }), kid: 'k1', alg: 'RS256', use: 'sig' };
  let fetches = 0;
  const fakeFetch = (async () => {
    fetches += 1;
    return new Response(JSON.stringify({ keys: [jwk] }), {
      headers: { 'content-type': 'application/json' },
    });
  }) as unknown as typeof fetch;
  const resolver = new PrincipalResolver({ jwksUrl: 'https://issuer.test/jwks', fetch: fakeFetch });
  const good = jwt({ alg: 'RS256', kid: 'k1' }, claims(), rsa.privateKey, 'rsa');
  t.match(await resolver.resolve(`Bearer ${good}`), { sub: 'alice' });
  t.equal(fetches, 1);
  // 200 requests, each with a random kid: sequential and concurrent.
  for (let i = 0; i < 100; i++) {
    const token = jwt({ alg: 'RS256', kid: randomUUID() }, claims(), rsa.privateKey, 'rsa');
    await t.rejects(resolver.resolve(`Bearer ${token}`), InvalidTokenError);
  }
  await Promise.all(
    Array.from({ length: 100 }, async () => {
      const token = jwt({ alg: 'RS256', kid: randomUUID() }, claims(), rsa.privateKey, 'rsa');
      await t.rejects(resolver.resolve(`Bearer ${token}`), InvalidTokenError);
    }),
  );
  t.ok(fetches <= 2, `${fetches} JWKS fetches for 200 unknown kids`);
  t.match(await resolver.resolve(`Bearer ${good}`), { sub: 'alice' }, 'the known key still validates');
  // An ES256 header over the RSA key from the JWKS is refused there too.
  const relabelled = jwt({ alg: 'ES256', kid: 'k1' }, claims(), rsa.privateKey, 'rsa');
  await t.rejects(resolver.resolve(`Bearer ${relabelled}`), InvalidTokenError);
});

t.test('JWKS: an endpoint that is down is not asked again within the cooldown', async (t) => {
  let fetches = 0;
  for (const failure of ['network', 'status'] as const) {
    fetches = 0;
    const fakeFetch = (async () => {
      fetches += 1;
      if (failure === 'network') throw new TypeError('fetch failed');
      return new Response('down', { status: 503 });
    }) as unknown as typeof fetch;
    const resolver = new PrincipalResolver({ jwksUrl: 'https://issuer.test/jwks', fetch: fakeFetch });
    for (let i = 0; i < 100; i++) {
      const token = jwt({ alg: 'RS256', kid: randomUUID() }, claims(), rsa.privateKey, 'rsa');
      await t.rejects(resolver.resolve(`Bearer ${token}`), InvalidTokenError);
    }
    t.equal(fetches, 1, `${failure}: one fetch for 100 tokens`);
  }
});

t.test('JWKS: a rotated key is picked up once the cooldown has passed', async (t) => {
  const keys = [{ ...rsa.publicKey.export({ format: 'jwk' }), kid: 'old' }];
  let fetches = 0;
  const fakeFetch = (async () => {
    fetches += 1;
    return new Response(JSON.stringify({ keys }), { headers: { 'content-type': 'application/json' } });
  }) as unknown as typeof fetch;
  const resolver = new PrincipalResolver({
    jwksUrl: 'https://issuer.test/jwks',
    fetch: fakeFetch,
    jwksCooldownMs: 0,
  });
  t.match(
    await resolver.resolve(`Bearer ${jwt({ alg: 'RS256', kid: 'old' }, claims(), rsa.privateKey, 'rsa')}`),
    { sub: 'alice' },
  );
  keys.push({ ...ec.publicKey.export({ format: 'jwk' }), kid: 'new' });
  t.match(
    await resolver.resolve(`Bearer ${jwt({ alg: 'ES256', kid: 'new' }, claims(), ec.privateKey, 'ec')}`),
    { sub: 'alice' },
  );
  t.equal(fetches, 2);
});

t.test(
  'the principal holds the validated claims: aud, resource, client_id or azp, act chain, cnf.jkt',
  async (t) => {
    const resolver = new PrincipalResolver({ publicKeyFile: edFile });
    const token = jwt(
      { alg: 'EdDSA' },
      {
        ...claims(),
        aud: ['https://mcp.test/mcp', 'other'],
        resource: 'https://mcp.test/mcp',
        azp: 'azp-client',
        act: { sub: 'agent-2', iss: 'https://issuer.test', act: { sub: 'agent-1', client_id: 'c1', n: 5 } },
        cnf: { jkt: 'thumb' },
      },
      ed.privateKey,
      'ed',
    );
    const principal = await resolver.resolve(`Bearer ${token}`);
    t.same(principal, {
      type: 'jwt',
      sub: 'alice',
      tokenSha256: createHash('sha256').update(token).digest('hex'),
      clientId: 'azp-client',
      iss: 'https://issuer.test',
      aud: ['https://mcp.test/mcp', 'other'],
      resource: 'https://mcp.test/mcp',
      act: [
        { sub: 'agent-2', iss: 'https://issuer.test' },
        { sub: 'agent-1', client_id: 'c1' },
      ],
      cnfJkt: 'thumb',
    });
    t.notOk(JSON.stringify(principal).includes(token), 'never the token');
    // client_id wins over azp; a single aud stays a string; no act, no cnf: none recorded.
    const plain = jwt(
      { alg: 'EdDSA' },
      { ...claims(), aud: 'one', client_id: 'cid', azp: 'azp' },
      ed.privateKey,
      'ed',
    );
    const p2 = await resolver.resolve(`DPoP ${plain}`);
    t.match(p2, { clientId: 'cid', aud: 'one' });
    t.notOk('act' in p2 || 'cnfJkt' in p2 || 'resource' in p2);
  },
);

t.test('key sources must be https, or http on a loopback host', async (t) => {
  for (const bad of ['http://issuer.example/jwks', 'ftp://127.0.0.1/jwks', 'not a url']) {
    t.throws(() => new PrincipalResolver({ jwksUrl: bad }), JwtConfigError, bad);
    t.throws(() => new PrincipalResolver({ oidcIssuer: bad }), JwtConfigError, bad);
  }
  for (const good of [
    'https://issuer.example',
    'http://127.0.0.1:9/x',
    'http://localhost:9',
    'http://[::1]:9',
  ]) {
    t.ok(new PrincipalResolver({ oidcIssuer: good }).validates, good);
  }
});

/** A local OpenID issuer over real HTTP: its discovery document and JWKS are whatever `serve` says. */
async function startIssuer(serve: (path: string, base: string) => { status?: number; body: string }) {
  const hits: string[] = [];
  const server = http.createServer((req, res) => {
    hits.push(req.url ?? '');
    const { status, body } = serve(req.url ?? '', base);
    res.writeHead(status ?? 200, { 'content-type': 'application/json' });
    res.end(body);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  return { base, hits };
}

const jwks = () => JSON.stringify({ keys: [{ ...rsa.publicKey.export({ format: 'jwk' }), kid: 'k1' }] });
const signedBy = (iss: string) =>
  `Bearer ${jwt({ alg: 'RS256', kid: 'k1' }, { ...claims(), iss }, rsa.privateKey, 'rsa')}`;

t.test('--oidc-issuer: jwks_uri discovered once, tokens must name the issuer', async (t) => {
  const issuer = await startIssuer((path, base) =>
    path === '/.well-known/openid-configuration'
      ? { body: JSON.stringify({ issuer: base, jwks_uri: `${base}/keys` }) }
      : path === '/keys'
        ? { body: jwks() }
        : { status: 404, body: '{}' },
  );
  const resolver = new PrincipalResolver({ oidcIssuer: issuer.base });
  t.match(await resolver.resolve(signedBy(issuer.base)), { type: 'jwt', sub: 'alice', iss: issuer.base });
  t.match(await resolver.resolve(signedBy(issuer.base)), { sub: 'alice' });
  await t.rejects(resolver.resolve(signedBy('https://other.test')), InvalidTokenError, 'other iss');
  t.same(issuer.hits, ['/.well-known/openid-configuration', '/keys'], 'discovered and fetched once');
});

t.test('--oidc-issuer: a discovery document that does not hold is refused', async (t) => {
  const big = 'x'.repeat(MAX_DISCOVERY_BYTES);
  for (const [what, doc] of [
    ['another issuer named', (base: string) => ({ issuer: `${base}/x`, jwks_uri: `${base}/keys` })],
    ['jwks_uri not https', (base: string) => ({ issuer: base, jwks_uri: 'http://keys.example/keys' })],
    ['no jwks_uri', (base: string) => ({ issuer: base })],
    ['larger than the bound', (base: string) => ({ issuer: base, jwks_uri: `${base}/keys`, big })],
  ] as const) {
    const issuer = await startIssuer((path, base) =>
      path === '/keys' ? { body: jwks() } : { body: JSON.stringify(doc(base)) },
    );
    const resolver = new PrincipalResolver({ oidcIssuer: issuer.base, jwksCooldownMs: 60_000 });
    await t.rejects(resolver.resolve(signedBy(issuer.base)), InvalidTokenError, what);
    await t.rejects(resolver.resolve(signedBy(issuer.base)), InvalidTokenError, `${what} (again)`);
    t.same(issuer.hits, ['/.well-known/openid-configuration'], `${what}: asked once within the cooldown`);
  }
});

t.test('a JWKS larger than the bound is refused', async (t) => {
  const filler = Array.from({ length: 3000 }, (_, i) => ({
    ...rsa.publicKey.export({ format: 'jwk' }),
    kid: `pad-${i}`,
  }));
  // The token's key is in both sets: only the size differs.
  const issuer = await startIssuer((path) => ({
    body: path === '/big' ? JSON.stringify({ keys: [...filler, ...JSON.parse(jwks()).keys] }) : jwks(),
  }));
  t.ok(JSON.stringify({ keys: filler }).length > MAX_JWKS_BYTES, 'the key set is over the bound');
  const big = new PrincipalResolver({ jwksUrl: `${issuer.base}/big` });
  await t.rejects(big.resolve(signedBy('https://issuer.test')), InvalidTokenError);
  const small = new PrincipalResolver({ jwksUrl: `${issuer.base}/small` });
  t.match(await small.resolve(signedBy('https://issuer.test')), { sub: 'alice' });
});
