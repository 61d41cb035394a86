// `vigil mcp proxy` flags that are refused before anything is opened (no log, spool or socket):
// several JWT key sources at once, and key sources that are not https (or loopback http).
import t from 'tap';
import { runMcpCommand } from '../../src/cli/mcp.js';

/** Runs the command in process, capturing what it writes to stderr. */
async function run(args: string[]): Promise<{ status: number; stderr: string }> {
  const write = process.stderr.write.bind(process.stderr);
  let stderr = '';
  process.stderr.write = ((chunk: string | Uint8Array) => {
    stderr += String(chunk);
    return true;
  }) as typeof process.stderr.write;
  try {
    // No log settings at all: a refusal that came from anything else would name them.
    return { status: await runMcpCommand(['mcp', 'proxy', ...args], { HOME: '/nonexistent' }), stderr };
  } finally {
    process.stderr.write = write;
  }
}

const upstream = ['--upstream', 'http://127.0.0.1:9/mcp'];

t.test('one JWT key source at a time', async (t) => {
  const r = await run([...upstream, '--jwks', 'https://a.test/jwks', '--oidc-issuer', 'https://a.test']);
  t.equal(r.status, 2);
  t.match(r.stderr, /give one of --jwt-public-key, --jwks and --oidc-issuer/);
});

t.test('key sources must be https or loopback http', async (t) => {
  for (const [flag, url] of [
    ['--jwks', 'http://issuer.example/jwks'],
    ['--oidc-issuer', 'http://issuer.example'],
  ] as const) {
    const r = await run([...upstream, flag, url]);
    t.equal(r.status, 2, flag);
    t.match(r.stderr, new RegExp(`${flag} must be https`), flag);
  }
  // Accepted: the next complaint is the missing log settings.
  const ok = await run([...upstream, '--oidc-issuer', 'http://127.0.0.1:9', '--trust-proxy']);
  t.equal(ok.status, 2);
  t.match(ok.stderr, /no log URL/);
});
