// Who called, through the real proxy to server-everything: a JWT access token's validated claims on
// every record (never the token), and a sender-constrained token (cnf.jkt) accepted only with a DPoP
// proof made by its key. Proofs come from the MCP SDK v2 client (`withDpop`), tokens are signed here
// with node:crypto (the issuer's side).
import { generateKeyPairSync, type KeyObject, sign } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  Client as ClientV2,
  DpopSession,
  StreamableHTTPClientTransport as TransportV2,
  withDpop,
} from '@modelcontextprotocol/client';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import t from 'tap';
import { createCapture } from '../../src/mcp/capture.js';
import { MemorySink } from '../../src/mcp/memory-sink.js';
import { openedOfKind } from './helpers/opened.js';
import { startProxy } from '../../src/mcp/proxy.js';
import type { JsonObject } from '../../src/mcp/types.js';
import { startEverythingHttp } from './helpers/everything.js';

const upstream = await startEverythingHttp();
t.teardown(() => upstream.stop());
const dir = await mkdtemp(join(tmpdir(), 'vigil-proxy-auth-'));
t.teardown(() => rm(dir, { recursive: true, force: true }));
const issuerKey = generateKeyPairSync('ed25519');
const keyFile = join(dir, 'issuer.pem');
await writeFile(keyFile, issuerKey.publicKey.export({ type: 'spki', format: 'pem' }));
const ISS = 'https://issuer.test';

function accessToken(claims: Record<string, unknown>, key: KeyObject = issuerKey.privateKey): string {
  const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
  const input = `${b64({ alg: 'EdDSA', typ: 'at+jwt' })}.${b64({
    iss: ISS,
    sub: 'alice',
    aud: 'https://mcp.test/mcp',
    client_id: 'agent-app',
    exp: Math.floor(Date.now() / 1000) + 600,
    ...claims,
  })}`;
  return `${input}.${sign(null, Buffer.from(input), key).toString('base64url')}`;
}

async function proxied(requireAuth: boolean, publicUrl?: string) {
  const sink = new MemorySink();
  const capture = createCapture({ sink, transport: 'streamable-http', mode: 'sync' });
  const proxy = await startProxy({
    upstream: upstream.url,
    port: 0,
    capture,
    jwtPublicKeyFile: keyFile,
    jwtIssuer: ISS,
    requireAuth,
    ...(publicUrl === undefined ? {} : { publicUrl }),
  });
  return { sink, proxy };
}

/** A v2 client presenting `token` with the DPoP scheme and a proof by `session` on every request. */
async function dpopClient(url: string, session: DpopSession, token: string) {
  const client = new ClientV2({ name: 'dpop-client', version: '0.0.1' });
  const transport = new TransportV2(new URL(url), { fetch: withDpop(session, () => token)(fetch) });
  await client.connect(transport);
  return { client, transport };
}

const principals = (sink: MemorySink): JsonObject[] =>
  openedOfKind(sink, 'mcp.message').map((f) => f['principal'] as JsonObject);

t.test(
  'a DPoP-bound token with its proof: the claims, the delegation chain and the key on every record',
  async (t) => {
    const { sink, proxy } = await proxied(true);
    t.teardown(() => proxy.close());
    const session = await DpopSession.create();
    const token = accessToken({
      cnf: { jkt: session.thumbprint },
      resource: 'https://mcp.test/mcp',
      act: { sub: 'planner-agent', act: { sub: 'user-assistant', client_id: 'ua' } },
    });
    const { client, transport } = await dpopClient(proxy.url, session, token);
    const echo = await client.callTool({ name: 'echo', arguments: { message: 'bound' } });
    t.same(echo.content, [{ type: 'text', text: 'Echo: bound' }]);
    await transport.terminateSession();
    await client.close();
    const all = principals(sink);
    t.ok(all.length >= 4, `${all.length} messages`);
    for (const p of all) {
      t.match(p, {
        type: 'jwt',
        iss: ISS,
        sub: 'alice',
        aud: 'https://mcp.test/mcp',
        resource: 'https://mcp.test/mcp',
        clientId: 'agent-app',
        act: [{ sub: 'planner-agent' }, { sub: 'user-assistant', client_id: 'ua' }],
        cnfJkt: session.thumbprint,
        dpop: 'verified',
      });
    }
    t.notOk(JSON.stringify(sink.records).includes(token), 'the token is never recorded');
    t.same(openedOfKind(sink, 'mcp.http.refused'), []);
  },
);

t.test('--require-auth: a bound token without a matching proof is refused (401) and recorded', async (t) => {
  const { sink, proxy } = await proxied(true);
  t.teardown(() => proxy.close());
  const session = await DpopSession.create();
  const token = accessToken({ cnf: { jkt: session.thumbprint } });

  // Presented as a plain bearer token by an SDK v1 client: no proof.
  const bearer = new Client({ name: 'no-proof', version: '0.0.1' });
  const plain = new StreamableHTTPClientTransport(new URL(proxy.url), {
    requestInit: { headers: { authorization: `Bearer ${token}` } },
  });
  await t.rejects(bearer.connect(plain));
  await bearer.close();

  // Proofs by another key (a stolen token replayed by someone else).
  const thief = await DpopSession.create();
  const stolen = new ClientV2({ name: 'thief', version: '0.0.1' });
  await t.rejects(
    stolen.connect(new TransportV2(new URL(proxy.url), { fetch: withDpop(thief, () => token)(fetch) })),
  );
  await stolen.close();

  // A raw request shows the challenge.
  const res = await fetch(proxy.url, {
    method: 'POST',
    headers: {
      authorization: `DPoP ${token}`,
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
    },
    body: '{"jsonrpc":"2.0","id":1,"method":"ping"}',
  });
  t.equal(res.status, 401);
  t.match(res.headers.get('www-authenticate'), /^DPoP error="invalid_dpop_proof"/);
  t.match(await res.json(), { code: 'DPOP_PROOF_MISSING' });

  const refused = openedOfKind(sink, 'mcp.http.refused');
  t.match(refused, [
    { code: 'DPOP_PROOF_MISSING', principal: { cnfJkt: session.thumbprint, dpop: 'missing' } },
    { code: 'DPOP_PROOF_INVALID', principal: { cnfJkt: session.thumbprint, dpop: 'invalid' } },
    { code: 'DPOP_PROOF_MISSING', principal: { dpop: 'missing' } },
  ]);
  for (const r of refused) {
    t.match(r, {
      principal: { type: 'jwt', sub: 'alice' },
      http: { method: 'POST', status: 401, 'client.address': '127.0.0.1' },
    });
  }
  t.same(openedOfKind(sink, 'mcp.message'), [], 'nothing was forwarded');
  t.notOk(JSON.stringify(sink.records).includes(token), 'the token is never recorded');
});

t.test('--require-auth: invalid and missing tokens are refused and recorded', async (t) => {
  const { sink, proxy } = await proxied(true);
  t.teardown(() => proxy.close());
  const forged = accessToken({}, generateKeyPairSync('ed25519').privateKey);
  for (const authorization of [`Bearer ${forged}`, undefined]) {
    const res = await fetch(proxy.url, {
      method: 'POST',
      headers: {
        ...(authorization === undefined ? {} : { authorization }),
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
      },
      body: '{"jsonrpc":"2.0","id":1,"method":"ping"}',
    });
    await res.text();
    t.equal(res.status, 401);
  }
  t.match(openedOfKind(sink, 'mcp.http.refused'), [
    { code: 'TOKEN_INVALID', principal: { type: 'token' }, http: { status: 401 } },
    { code: 'AUTH_REQUIRED', principal: { type: 'anonymous' }, http: { status: 401 } },
  ]);
  t.notOk(JSON.stringify(sink.records).includes(forged));
});

t.test('without --require-auth: a bound token without a proof is forwarded and marked', async (t) => {
  const { sink, proxy } = await proxied(false);
  t.teardown(() => proxy.close());
  const session = await DpopSession.create();
  const token = accessToken({ cnf: { jkt: session.thumbprint } });
  const client = new Client({ name: 'no-proof', version: '0.0.1' });
  const transport = new StreamableHTTPClientTransport(new URL(proxy.url), {
    requestInit: { headers: { authorization: `Bearer ${token}` } },
  });
  await client.connect(transport);
  await transport.terminateSession();
  await client.close();
  const all = principals(sink);
  t.ok(all.length > 0);
  for (const p of all) t.match(p, { type: 'jwt', cnfJkt: session.thumbprint, dpop: 'missing' });
});

t.test(
  '--public-url: proofs must name the URL clients use, not whatever Host a request carries',
  async (t) => {
    const PUBLIC = 'https://mcp.example.com';
    const { sink, proxy } = await proxied(true, PUBLIC);
    t.teardown(() => proxy.close());
    const session = await DpopSession.create();
    const token = accessToken({ cnf: { jkt: session.thumbprint } });
    // As behind a TLS-terminating reverse proxy: the client addresses the public URL, its requests
    // reach this proxy. The SDK signs each proof for the URL it was asked to fetch.
    const toProxy = new URL(proxy.url);
    const viaReverseProxy = (async (input: string | URL | Request, init?: RequestInit) => {
      const url = new URL(input instanceof Request ? input.url : String(input));
      return fetch(new URL(url.pathname + url.search, toProxy), init);
    }) as typeof fetch;
    const client = new ClientV2({ name: 'public', version: '0.0.1' });
    const transport = new TransportV2(new URL(`${PUBLIC}${toProxy.pathname}`), {
      fetch: withDpop(session, () => token)(viaReverseProxy),
    });
    await client.connect(transport);
    await transport.terminateSession();
    await client.close();
    t.ok(principals(sink).length > 0);
    for (const p of principals(sink)) t.match(p, { dpop: 'verified' });

    // A proof for the proxy's own address (what a Host header could claim) is refused.
    const direct = new ClientV2({ name: 'direct', version: '0.0.1' });
    await t.rejects(
      direct.connect(new TransportV2(new URL(proxy.url), { fetch: withDpop(session, () => token)(fetch) })),
    );
    await direct.close();
    t.match(openedOfKind(sink, 'mcp.http.refused'), [{ code: 'DPOP_PROOF_INVALID' }]);
  },
);
