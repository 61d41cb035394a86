import { join } from 'node:path';
import { z } from 'zod';

/**
 * Every setting of `vigil-server`, from the environment and command-line flags (flags win). Only
 * main.ts passes process.env; tests pass plain objects. Each row is in server/README.md.
 */
export const configSchema = z.object({
  // --data-dir / VIGIL_DATA_DIR: the embedded PostgreSQL (pg/, its socket too), its LOCK, the log key. Default ./data.
  dataDir: z.string().min(1).default('./data'),
  // --host / HOST: listen address; loopback by default so a quick start is not exposed.
  host: z.string().min(1).default('127.0.0.1'),
  // --port / PORT: listen port (0 = ephemeral, for tests). Default 8080.
  port: z.coerce.number().int().min(0).max(65535).default(8080),
  // DATABASE_URL: Postgres; unset means the embedded PostgreSQL in <data-dir>/pg (started by serve/start).
  databaseUrl: z.string().min(1).optional(),
  // --tls-cert / TLS_CERT_FILE and --tls-key / TLS_KEY_FILE: serve HTTPS (TLS 1.2+) when both are set.
  tlsCert: z.string().min(1).optional(),
  tlsKey: z.string().min(1).optional(),
  // LOG_LEVEL: pino level. Default info.
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  // --key-file / VIGIL_LOG_KEY_FILE: the log's signer key. Default <data-dir>/log.key.
  keyFile: z.string().min(1).optional(),
  // --operator-key-file / VIGIL_OPERATOR_KEY_FILE: the operator emitter's signer key (registry records).
  // Default <data-dir>/operator.key; never the log key.
  operatorKeyFile: z.string().min(1).optional(),
  // --origin / VIGIL_ORIGIN: origin for `init`/`start` on an empty store. Default vigil.local/log.
  origin: z.string().min(1).optional(),
  // --batch-size / VIGIL_BATCH_SIZE: most entries one sequencer commit takes. Default 4096.
  batchSize: z.coerce.number().int().min(1).max(100_000).default(4096),
  // --queue-size / VIGIL_QUEUE_SIZE: most entries waiting; beyond it POST answers 503. Default 50000.
  queueSize: z.coerce.number().int().min(1).default(50_000),
  // --max-body-bytes / VIGIL_MAX_BODY_BYTES: POST /v1/entries body limit. Default 16 MiB.
  maxBodyBytes: z.coerce
    .number()
    .int()
    .min(1024)
    .default(16 * 1024 * 1024),
  // --rate-emitter / VIGIL_RATE_EMITTER: entries per second per emitter (token bucket, burst = 2 s). 0 = off.
  rateEmitter: z.coerce.number().min(0).default(20_000),
  // --rate-address / VIGIL_RATE_ADDRESS: requests per second per client address. 0 = off.
  rateAddress: z.coerce.number().min(0).default(2_000),
  // --witness-interval / VIGIL_WITNESS_INTERVAL_MS: least time between add-checkpoint pushes. Default 10 s.
  witnessIntervalMs: z.coerce.number().int().min(100).default(10_000),
  // --lock-retry / VIGIL_LOCK_RETRY_MS: how often a non-sequencer retries the Postgres advisory lock.
  lockRetryMs: z.coerce.number().int().min(100).default(5_000),
  // --verify-on-start / VIGIL_VERIFY_ON_START: `full` rehashes every stored entry at start; `quick`
  // recomputes the root from the stored tile hashes only. Default full.
  verifyOnStart: z.enum(['full', 'quick']).default('full'),
  // --search-concurrency / VIGIL_SEARCH_CONCURRENCY: searches answered at once. Default 2 (one per
  // core of the reference machine); the rest of the pool, the loop and memory stay for the write path
  // and the other reads.
  searchConcurrency: z.coerce.number().int().min(1).max(64).default(2),
  // --search-queue / VIGIL_SEARCH_QUEUE: searches waiting for a turn; beyond it GET /v1/search answers
  // 503 SEARCH_BUSY with Retry-After. Default 32.
  searchQueue: z.coerce.number().int().min(0).max(10_000).default(32),
  // --search-max-bytes / VIGIL_SEARCH_MAX_BYTES: most bytes of one search answer; a longer result stops
  // early with a `next` cursor. At least 256 KiB, so one entry (65,535 bytes) and its receipt always
  // fit. Default 4 MiB.
  searchMaxBytes: z.coerce
    .number()
    .int()
    .min(256 * 1024)
    .max(256 * 1024 * 1024)
    .default(4 * 1024 * 1024),
  // --search-timeout / VIGIL_SEARCH_TIMEOUT_MS: a search answer not fully sent by then is cut off (the
  // connection closes), so a client that reads slowly cannot hold a search slot. Default 30 s.
  searchTimeoutMs: z.coerce.number().int().min(100).default(30_000),
  // --retention-interval / VIGIL_RETENTION_INTERVAL_MS: time between retention runs (the sequencing
  // instance erases sealed values older than `retention set`, at start and then at this interval).
  // Default a day; tests shorten it.
  retentionIntervalMs: z.coerce.number().int().min(100).max(2_147_483_647).default(86_400_000),
});

/** Validated settings. */
export type Config = z.infer<typeof configSchema> & { keyFile: string; operatorKeyFile: string };

/** Flag name -> config key; also the env var name for each key. */
export const settings: { key: keyof z.infer<typeof configSchema>; flag: string; env: string }[] = [
  { key: 'dataDir', flag: 'data-dir', env: 'VIGIL_DATA_DIR' },
  { key: 'host', flag: 'host', env: 'HOST' },
  { key: 'port', flag: 'port', env: 'PORT' },
  { key: 'databaseUrl', flag: 'database-url', env: 'DATABASE_URL' },
  { key: 'tlsCert', flag: 'tls-cert', env: 'TLS_CERT_FILE' },
  { key: 'tlsKey', flag: 'tls-key', env: 'TLS_KEY_FILE' },
  { key: 'logLevel', flag: 'log-level', env: 'LOG_LEVEL' },
  { key: 'keyFile', flag: 'key-file', env: 'VIGIL_LOG_KEY_FILE' },
  { key: 'operatorKeyFile', flag: 'operator-key-file', env: 'VIGIL_OPERATOR_KEY_FILE' },
  { key: 'origin', flag: 'origin', env: 'VIGIL_ORIGIN' },
  { key: 'batchSize', flag: 'batch-size', env: 'VIGIL_BATCH_SIZE' },
  { key: 'queueSize', flag: 'queue-size', env: 'VIGIL_QUEUE_SIZE' },
  { key: 'maxBodyBytes', flag: 'max-body-bytes', env: 'VIGIL_MAX_BODY_BYTES' },
  { key: 'rateEmitter', flag: 'rate-emitter', env: 'VIGIL_RATE_EMITTER' },
  { key: 'rateAddress', flag: 'rate-address', env: 'VIGIL_RATE_ADDRESS' },
  { key: 'witnessIntervalMs', flag: 'witness-interval', env: 'VIGIL_WITNESS_INTERVAL_MS' },
  { key: 'lockRetryMs', flag: 'lock-retry', env: 'VIGIL_LOCK_RETRY_MS' },
  { key: 'verifyOnStart', flag: 'verify-on-start', env: 'VIGIL_VERIFY_ON_START' },
  { key: 'searchConcurrency', flag: 'search-concurrency', env: 'VIGIL_SEARCH_CONCURRENCY' },
  { key: 'searchQueue', flag: 'search-queue', env: 'VIGIL_SEARCH_QUEUE' },
  { key: 'searchMaxBytes', flag: 'search-max-bytes', env: 'VIGIL_SEARCH_MAX_BYTES' },
  { key: 'searchTimeoutMs', flag: 'search-timeout', env: 'VIGIL_SEARCH_TIMEOUT_MS' },
  { key: 'retentionIntervalMs', flag: 'retention-interval', env: 'VIGIL_RETENTION_INTERVAL_MS' },
];

/** Thrown by loadConfig with every issue, one a line. */
export class ConfigError extends Error {
  readonly code = 'CONFIG_INVALID';
}

/**
 * Builds the config from env and flags (flags win; empty env values count as unset). Throws
 * ConfigError listing every issue. TLS needs both cert and key.
 */
export function loadConfig(
  env: Record<string, string | undefined>,
  flags: Record<string, string | undefined> = {},
): Config {
  const raw: Record<string, string> = {};
  for (const s of settings) {
    const value = flags[s.flag] ?? env[s.env];
    if (value !== undefined && value !== '') raw[s.key] = value;
  }
  const parsed = configSchema.safeParse(raw);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => {
      const s = settings.find((x) => x.key === i.path[0]);
      return `${s ? `--${s.flag} / ${s.env}` : i.path.join('.')}: ${i.message}`;
    });
    throw new ConfigError(lines.join('\n'));
  }
  const c = parsed.data;
  if ((c.tlsCert === undefined) !== (c.tlsKey === undefined)) {
    throw new ConfigError('--tls-cert / TLS_CERT_FILE and --tls-key / TLS_KEY_FILE must be given together');
  }
  return {
    ...c,
    keyFile: c.keyFile ?? join(c.dataDir, 'log.key'),
    operatorKeyFile: c.operatorKeyFile ?? join(c.dataDir, 'operator.key'),
  };
}
