/**
 * `vigil mcp wrap|proxy`: the MCP capture commands (DESIGN.md "MCP capture"). Dispatched from
 * cli/main.ts; receives the arguments after `mcp` and the environment, returns the exit status.
 */
import { parseArgs } from 'node:util';
import { verifyKeySourceUrl } from '../mcp/jwt.js';
import { openCapture } from '../mcp/open-capture.js';
import { type ProxyOptions, startProxy } from '../mcp/proxy.js';
import { resolveSettings, SettingsError, type SettingFlags } from '../mcp/settings.js';
import { processPrincipal, runWrap } from '../mcp/wrap.js';

export const USAGE = `usage:
  vigil mcp wrap [--log URL] [--key FILE] [--policy FILE] [--mode sync|spool] [--spool-dir DIR]
                 [--timeout MS] [--seal none|payload|all] [--receipts] [--config FILE]
                 -- <server command> [args...]
  vigil mcp proxy --upstream URL [--listen HOST:PORT] [--tls-cert FILE --tls-key FILE]
                 [--jwt-public-key FILE | --jwks URL | --oidc-issuer URL] [--jwt-issuer ISS]
                 [--jwt-audience AUD]
                 [--require-auth] [--resource-metadata URL] [--trust-proxy] [--public-url URL]
                 [same log options as wrap]

Log settings also come from VIGIL_LOG_URL, VIGIL_KEY_FILE, VIGIL_POLICY_FILE, VIGIL_MODE,
VIGIL_SPOOL_DIR, VIGIL_SEAL, or a JSON config file (--config, VIGIL_CONFIG, ~/.config/vigil/config.json).
--seal: what records seal (readers of the log open it): payload (default) message content, stderr,
the server's command line and environment names, principal claims; all also tool, prompt and
resource names; none only the wire commitment.
--receipts (sync mode; VIGIL_RECEIPTS=true, "receipts": true): each answer to a client request
carries the log's tlog-proof@v1 receipt of the request's record in result._meta["io.vigil/receipt"],
and later messages the receipts of earlier answers' records in _meta["io.vigil/receipts"].
`;

const LOG_OPTIONS = {
  log: { type: 'string' },
  key: { type: 'string' },
  policy: { type: 'string' },
  mode: { type: 'string' },
  'spool-dir': { type: 'string' },
  timeout: { type: 'string' },
  config: { type: 'string' },
  seal: { type: 'string' },
  receipts: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

function flagsOf(values: Record<string, string | boolean | undefined>): SettingFlags {
  const flags: SettingFlags = {};
  const pick = (name: string): string | undefined => {
    const v = values[name];
    return typeof v === 'string' ? v : undefined;
  };
  const set = (k: Exclude<keyof SettingFlags, 'receipts'>, v: string | undefined): void => {
    if (v !== undefined) flags[k] = v;
  };
  set('log', pick('log'));
  set('key', pick('key'));
  set('policy', pick('policy'));
  set('mode', pick('mode'));
  set('spoolDir', pick('spool-dir'));
  set('timeout', pick('timeout'));
  set('config', pick('config'));
  set('seal', pick('seal'));
  if (values['receipts'] === true) flags.receipts = true;
  return flags;
}

const warn = (message: string): void => {
  process.stderr.write(`vigil: ${message}\n`);
};

/** Runs `vigil mcp <subcommand> ...`; returns the exit status (the child's, for wrap). */
export async function runMcpCommand(
  argv: string[],
  env: Record<string, string | undefined>,
): Promise<number> {
  const args = argv[0] === 'mcp' ? argv.slice(1) : argv;
  const [sub, ...rest] = args;
  try {
    if (sub === 'wrap') return await wrapCommand(rest, env);
    if (sub === 'proxy') return await proxyCommand(rest, env);
    process.stderr.write(
      sub === undefined || sub === '--help' || sub === '-h' ? USAGE : `unknown: mcp ${sub}\n${USAGE}`,
    );
    return 2;
  } catch (err) {
    if (err instanceof SettingsError || (err as { code?: string }).code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
      warn((err as Error).message);
      return 2;
    }
    warn(`error: ${(err as Error).message}`);
    return 2;
  }
}

async function wrapCommand(argv: string[], env: Record<string, string | undefined>): Promise<number> {
  const dash = argv.indexOf('--');
  const own = dash === -1 ? argv : argv.slice(0, dash);
  const command = dash === -1 ? [] : argv.slice(dash + 1);
  const { values } = parseArgs({ args: own, options: LOG_OPTIONS, strict: true, allowPositionals: false });
  if (values.help === true || command.length === 0) {
    process.stderr.write(command.length === 0 ? `no server command after --\n${USAGE}` : USAGE);
    return 2;
  }
  const settings = await resolveSettings(flagsOf(values), env);
  const [program, ...programArgs] = command as [string, ...string[]];
  // Who launched the server: the OS user and the client process, in stream.open and on every record.
  const principal = processPrincipal();
  const opened = await openCapture(
    settings,
    'stdio',
    { command: program, args: programArgs, principal },
    warn,
  );
  let status = 1;
  try {
    const result = await runWrap({
      command: program,
      args: programArgs,
      capture: opened.capture,
      stdin: process.stdin,
      stdout: process.stdout,
      stderr: process.stderr,
      env: process.env,
      session: opened.emitter.stream,
      principal,
      onWarning: warn,
    });
    status = result.status;
  } finally {
    await opened.close('process_exit');
  }
  return status;
}

async function proxyCommand(argv: string[], env: Record<string, string | undefined>): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      ...LOG_OPTIONS,
      upstream: { type: 'string' },
      listen: { type: 'string' },
      'tls-cert': { type: 'string' },
      'tls-key': { type: 'string' },
      'jwt-public-key': { type: 'string' },
      jwks: { type: 'string' },
      'oidc-issuer': { type: 'string' },
      'jwt-issuer': { type: 'string' },
      'jwt-audience': { type: 'string' },
      'require-auth': { type: 'boolean' },
      'trust-proxy': { type: 'boolean' },
      'public-url': { type: 'string' },
      'resource-metadata': { type: 'string' },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.help === true) {
    process.stderr.write(USAGE);
    return 0;
  }
  const upstream = values.upstream ?? env['VIGIL_UPSTREAM'];
  if (upstream === undefined)
    throw new SettingsError('no upstream: pass --upstream URL (e.g. http://127.0.0.1:3001/mcp)');
  const keySources = [values['jwt-public-key'], values.jwks, values['oidc-issuer']].filter(
    (v) => v !== undefined,
  );
  if (keySources.length > 1)
    throw new SettingsError('give one of --jwt-public-key, --jwks and --oidc-issuer, not several');
  if (values['public-url'] !== undefined && !URL.canParse(values['public-url']))
    throw new SettingsError(`bad --public-url ${values['public-url']}`);
  // Checked before anything is opened: key material only over https (or from a loopback host).
  try {
    if (values.jwks !== undefined) verifyKeySourceUrl(values.jwks, '--jwks');
    if (values['oidc-issuer'] !== undefined) verifyKeySourceUrl(values['oidc-issuer'], '--oidc-issuer');
  } catch (err) {
    throw new SettingsError((err as Error).message);
  }
  const settings = await resolveSettings(flagsOf(values), env);
  const listen = values.listen ?? '127.0.0.1:8090';
  const colon = listen.lastIndexOf(':');
  const host = colon === -1 ? '127.0.0.1' : listen.slice(0, colon).replace(/^\[|\]$/g, '');
  const port = Number(colon === -1 ? listen : listen.slice(colon + 1));
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new SettingsError(`bad --listen ${listen}`);
  const opened = await openCapture(settings, 'streamable-http', { upstream }, warn);
  const options: ProxyOptions = {
    upstream,
    host,
    port,
    capture: opened.capture,
    requireAuth: values['require-auth'] === true,
    trustProxy: values['trust-proxy'] === true,
    onWarning: warn,
  };
  if (values['tls-cert'] !== undefined) options.tlsCertFile = values['tls-cert'];
  if (values['tls-key'] !== undefined) options.tlsKeyFile = values['tls-key'];
  if (values['jwt-public-key'] !== undefined) options.jwtPublicKeyFile = values['jwt-public-key'];
  if (values.jwks !== undefined) options.jwksUrl = values.jwks;
  if (values['oidc-issuer'] !== undefined) options.oidcIssuer = values['oidc-issuer'];
  if (values['jwt-issuer'] !== undefined) options.jwtIssuer = values['jwt-issuer'];
  if (values['jwt-audience'] !== undefined) options.jwtAudience = values['jwt-audience'];
  if (values['public-url'] !== undefined) options.publicUrl = values['public-url'];
  if (values['resource-metadata'] !== undefined) options.resourceMetadataUrl = values['resource-metadata'];
  const proxy = await startProxy(options);
  // The one line on stdout: where to point clients (tests read it).
  process.stdout.write(`vigil mcp proxy listening on ${proxy.url} -> ${upstream}\n`);
  await new Promise<void>((resolve) => {
    const stop = (): void => resolve();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  await proxy.close();
  await opened.close('proxy_stop');
  return 0;
}
