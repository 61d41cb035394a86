import path from 'node:path';
import { z } from 'zod';

const nonEmpty = z.string().min(1);
const optionalString = z
  .string()
  .optional()
  .transform((v) => (v === undefined || v === '' ? undefined : v));

/**
 * Witness settings. Each is an environment variable and a command-line flag (the flag wins); every one
 * has a row in witness/README.md. Only main.ts passes process.env here; tests pass plain objects.
 */
export const configSchema = z
  .object({
    // VIGIL_DATA_DIR / --data-dir, default ./data: the embedded PostgreSQL (pg/), its LOCK, the key.
    dataDir: nonEmpty.default('./data'),
    // HOST / --host, default 127.0.0.1: loopback unless the operator opens it.
    host: nonEmpty.default('127.0.0.1'),
    // PORT / --port, default 8081 (the log uses 8080).
    port: z.coerce.number().int().min(0).max(65535).default(8081),
    // DATABASE_URL: Postgres; unset means the embedded PostgreSQL in <data-dir>/pg.
    databaseUrl: optionalString,
    // TLS_CERT_FILE / --tls-cert and TLS_KEY_FILE / --tls-key: serve HTTPS (TLS 1.2 minimum); both or neither.
    tlsCert: optionalString,
    tlsKey: optionalString,
    // LOG_LEVEL, default info.
    logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    // VIGIL_WITNESS_KEY_FILE / --key-file, default <data-dir>/witness.key (mode 0600).
    keyFile: optionalString,
    // WITNESS_NAME / --name: the witness key name, used by `init` (e.g. witness.example.com/w1).
    name: optionalString,
    // WITNESS_BODY_LIMIT / --body-limit, default 64 KiB: a checkpoint plus 63 proof hashes is ~3 KiB;
    // post-quantum signatures can be ~5 KB each, so 64 KiB leaves room for a dozen.
    bodyLimit: z.coerce.number().int().min(1024).max(10_485_760).default(65_536),
    // WITNESS_RATE_LIMIT / --rate-limit, default 10: validly signed add-checkpoint requests a second per
    // origin.
    rateLimit: z.coerce.number().positive().default(10),
    // WITNESS_RATE_BURST / --rate-burst, default 20: bucket size per origin.
    rateBurst: z.coerce.number().int().min(1).default(20),
    // WITNESS_FAILURE_RATE_LIMIT / --failure-rate-limit, default 1: add-checkpoint requests a second,
    // per client address (IPv6: per /64), that may fail before or at the signature check (400, 403,
    // 404). Such requests need no key, so they are charged to the sender, not to the origin named.
    failureRateLimit: z.coerce.number().positive().default(1),
    // WITNESS_FAILURE_RATE_BURST / --failure-rate-burst, default 20: bucket size per address.
    failureRateBurst: z.coerce.number().int().min(1).default(20),
    // WITNESS_PULL_TIMEOUT_MS / --pull-timeout, default 10000: one HTTP request to a pulled log.
    pullTimeoutMs: z.coerce.number().int().min(100).default(10_000),
    // WITNESS_PULL_MAX_BACKOFF_MS / --pull-max-backoff, default 60000: longest wait after errors.
    pullMaxBackoffMs: z.coerce.number().int().min(100).default(60_000),
  })
  .refine((c) => (c.tlsCert === undefined) === (c.tlsKey === undefined), {
    message: 'give both --tls-cert and --tls-key, or neither',
    path: ['tlsCert'],
  })
  .transform((c) => ({ ...c, keyFile: c.keyFile ?? path.join(c.dataDir, 'witness.key') }));

export type WitnessConfig = z.output<typeof configSchema>;

/** Environment variable and flag for each setting. */
export const SETTINGS: Record<keyof z.input<typeof configSchema>, { env: string; flag: string }> = {
  dataDir: { env: 'VIGIL_DATA_DIR', flag: 'data-dir' },
  host: { env: 'HOST', flag: 'host' },
  port: { env: 'PORT', flag: 'port' },
  databaseUrl: { env: 'DATABASE_URL', flag: 'database-url' },
  tlsCert: { env: 'TLS_CERT_FILE', flag: 'tls-cert' },
  tlsKey: { env: 'TLS_KEY_FILE', flag: 'tls-key' },
  logLevel: { env: 'LOG_LEVEL', flag: 'log-level' },
  keyFile: { env: 'VIGIL_WITNESS_KEY_FILE', flag: 'key-file' },
  name: { env: 'WITNESS_NAME', flag: 'name' },
  bodyLimit: { env: 'WITNESS_BODY_LIMIT', flag: 'body-limit' },
  rateLimit: { env: 'WITNESS_RATE_LIMIT', flag: 'rate-limit' },
  rateBurst: { env: 'WITNESS_RATE_BURST', flag: 'rate-burst' },
  failureRateLimit: { env: 'WITNESS_FAILURE_RATE_LIMIT', flag: 'failure-rate-limit' },
  failureRateBurst: { env: 'WITNESS_FAILURE_RATE_BURST', flag: 'failure-rate-burst' },
  pullTimeoutMs: { env: 'WITNESS_PULL_TIMEOUT_MS', flag: 'pull-timeout' },
  pullMaxBackoffMs: { env: 'WITNESS_PULL_MAX_BACKOFF_MS', flag: 'pull-max-backoff' },
};

/**
 * Builds the config from the environment and parsed flags (flags win). Throws the ZodError listing
 * every issue; main.ts prints them and exits 1 before opening anything.
 */
export function loadConfig(
  env: Record<string, string | undefined>,
  flags: Record<string, string | boolean | undefined> = {},
): WitnessConfig {
  const raw: Record<string, unknown> = {};
  for (const [key, { env: name, flag }] of Object.entries(SETTINGS)) {
    const fromFlag = flags[flag];
    const value = typeof fromFlag === 'string' ? fromFlag : env[name];
    if (value !== undefined) raw[key] = value;
  }
  return configSchema.parse(raw);
}
