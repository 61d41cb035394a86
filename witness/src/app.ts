import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify';
import type { WitnessConfig } from './config.js';
import { errorsPlugin } from './plugins/errors.js';
import { Puller } from './pull/puller.js';
import { RateLimiter } from './rate-limit.js';
import { addCheckpointRoutes } from './routes/add-checkpoint.js';
import { monitoringRoutes } from './routes/monitoring.js';
import type { WitnessStore } from './store.js';
import { Witness, type WitnessHooks } from './witness/witness.js';
import { WitnessMetrics } from './metrics.js';

/** What buildApp needs besides config: opened by main.ts (or a test), closed by its owner. */
export interface AppDeps {
  store: WitnessStore;
  /** The witness signer key text, read once from the key file. Never logged. */
  signerKey: string;
  /** Run the puller for logs with a URL (main.ts: true; most tests: false). */
  pull?: boolean;
  /** Cosignature clock, POSIX seconds. */
  now?: () => bigint;
  hooks?: WitnessHooks;
  /** fetch used by the puller (tests may route it to an in-process log). */
  fetch?: typeof fetch;
  /** Puller timing for tests: how often the log list is re-read and the least time between re-posts. */
  pullTiming?: { refreshMs?: number; repostMs?: number };
  /** Extra Fastify options from main.ts (https, timeouts). */
  fastify?: FastifyServerOptions & { https?: unknown };
}

declare module 'fastify' {
  interface FastifyInstance {
    witness: Witness;
    puller: Puller | undefined;
    metrics: WitnessMetrics;
  }
}

/**
 * Builds the witness HTTP app (never listens). Plugins in order: errors, then the add-checkpoint and
 * read-only route plugins. With deps.pull the puller starts when the app is ready and stops on close.
 */
export async function buildApp(config: WitnessConfig, deps: AppDeps): Promise<FastifyInstance> {
  const app = Fastify({
    logger: { level: config.logLevel, redact: ['req.headers.authorization'] },
    bodyLimit: config.bodyLimit,
    return503OnClosing: true,
    ...(deps.fastify as FastifyServerOptions),
  }) as unknown as FastifyInstance;
  const metrics = new WitnessMetrics();
  app.decorate('metrics', metrics);
  const witness = new Witness({
    metrics,
    store: deps.store,
    signerKey: deps.signerKey,
    ...(deps.now === undefined ? {} : { now: deps.now }),
    ...(deps.hooks === undefined ? {} : { hooks: deps.hooks }),
    logger: app.log.child({ component: 'witness' }),
  });
  app.decorate('witness', witness);
  const puller = deps.pull
    ? new Puller({
        witness,
        logger: app.log.child({ component: 'puller' }),
        timeoutMs: config.pullTimeoutMs,
        maxBackoffMs: config.pullMaxBackoffMs,
        metrics,
        ...(deps.fetch === undefined ? {} : { fetch: deps.fetch }),
        ...deps.pullTiming,
      })
    : undefined;
  app.decorate('puller', puller);

  await app.register(errorsPlugin);
  const limiter = new RateLimiter({ ratePerSecond: config.rateLimit, burst: config.rateBurst });
  const failureLimiter = new RateLimiter({
    ratePerSecond: config.failureRateLimit,
    burst: config.failureRateBurst,
  });
  await app.register(addCheckpointRoutes, {
    witness,
    limiter,
    failureLimiter,
    bodyLimit: config.bodyLimit,
  });
  await app.register(monitoringRoutes, { witness });
  app.addHook('onResponse', async (request, reply) => {
    if (request.routeOptions.url === '/add-checkpoint') metrics.addCheckpoint.inc(String(reply.statusCode));
  });
  app.get('/metrics', async (_request, reply) => {
    const logs = [];
    for (const log of await witness.store.listLogs()) {
      const latest = await witness.store.latest(log.origin);
      logs.push({ origin: log.origin, size: latest?.size ?? 0n, disabled: log.disabled });
    }
    const evidenceItems = await witness.store.countEvidence();
    return reply
      .type('text/plain; version=0.0.4; charset=utf-8')
      .send(metrics.render({ logs, evidenceItems }));
  });

  if (puller !== undefined) {
    app.addHook('onReady', async () => puller.start());
    app.addHook('onClose', async () => puller.stop());
  }
  return app;
}
