// JWT principals (the proxy's --jwt-public-key / --jwks): algorithm bound to the key type, `exp`
// required and numeric, and JWKS re-fetches for unknown key IDs bounded. Tokens are signed here with
// node:crypto, independently of the verifier.
import t from 'tap';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { generateKeyPairSync, randomUUID, sign, type KeyObject } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InvalidTokenError, PrincipalResolver } from '../../src/mcp/jwt.js';

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
