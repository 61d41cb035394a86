// buildApp(config, deps): the log's Fastify instance, never listening (main.ts listens).
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify';
import type { Kysely } from 'kysely';
import { operatorNameFor, parseSignerKey, verifierKeyFromSignerKey } from '@vigil/client';
import { useNodeCrypto } from '@vigil/client/node';
import type { Config } from './config.js';
import type { Database } from './db/schema.js';
import { registerErrorHandler, HttpError } from './plugins/errors.js';
import { TileReader } from './tlog/tiles.js';
import { LogService } from './tlog/service.js';
import { Sequencer, type SequencerHooks } from './tlog/sequencer.js';
import { Metrics } from './tlog/metrics.js';
import { RateLimiter } from './tlog/rate-limit.js';
import { WitnessPusher } from './tlog/witness-push.js';
import { RecordVerifier } from './tlog/verify.js';
import { Slots } from './tlog/slots.js';
import { checkLogKey, readKeyFile } from './tlog/signer.js';
import { loadOperatorKey, type OperatorKey } from './tlog/registry.js';
import { entriesRoutes } from './routes/entries.js';
import { readRoutes } from './routes/read.js';
import { searchRoutes } from './routes/search.js';
import { cosignatureRoutes } from './routes/cosignatures.js';
import { sealedRoutes } from './routes/sealed.js';
import { consoleRoutes } from './routes/console.js';
import type { RouteContext } from './routes/context.js';
import { Retention } from './erasure.js';

export interface AppDeps {
  db: Kysely<Database>;
  /** Signer key text; default: read from config.keyFile. */
  signerKey?: string;
  /**
   * The operator emitter's signer key text; default: read from config.operatorKeyFile, which is
   * created when missing and the tree has no operator yet.
   */
  operatorKey?: string;
  hooks?: SequencerHooks;
  /**
   * Takes the sequencing lock (Postgres advisory lock); resolves false when another instance holds
   * it. Absent: the caller holds it already (the embedded store: the data-directory lock).
   */
  tryLock?: () => Promise<boolean>;
  /** The sequencer cannot know the database state: main.ts exits non-zero. */
  onFatal?: (err: Error) => void;
  logger?: FastifyServerOptions['logger'];
  https?: { key: Buffer; cert: Buffer };
}

/** How often the sequencer compares the emitters table with the tree's registry. */
const REGISTRY_SYNC_MS = 2000;

declare module 'fastify' {
  interface FastifyInstance {
    vigil: RouteContext;
    retention: Retention;
  }
}

/** Builds the app: checks the key against the stored log, loads and verifies the tree on ready. */
export async function buildApp(config: Config, deps: AppDeps): Promise<FastifyInstance> {
  useNodeCrypto();
  const signerKey = deps.signerKey ?? (await readKeyFile(config.keyFile)).signerKey;
  const vkey = verifierKeyFromSignerKey(signerKey);
  const log = await checkLogKey(deps.db, vkey);
  const app = Fastify({
    logger:
      deps.logger === undefined
        ? {
            level: config.logLevel,
            redact: ['req.headers.authorization'],
            serializers: { req: requestForLog },
          }
        : typeof deps.logger === 'object'
          ? { serializers: { req: requestForLog }, ...deps.logger }
          : deps.logger,
    bodyLimit: 1024 * 1024,
    return503OnClosing: true,
    ...(deps.https ? { https: { ...deps.https, minVersion: 'TLSv1.2' as const } } : {}),
  }) as unknown as FastifyInstance;
  registerErrorHandler(app);
  const operator = await operatorKeyOf(config, deps, log.origin);
  if (operator.created)
    app.log.warn(
      { file: config.operatorKeyFile, vkey: operator.vkey },
      'wrote new operator key (mode 0600): keep it with the log key',
    );
  const tiles = new TileReader(deps.db);
  const tlog = new LogService(deps.db, tiles, log.origin, log.vkey, {
    name: operator.name,
    vkey: operator.vkey,
  });
  const metrics = new Metrics();
  const sequencer = new Sequencer({
    db: deps.db,
    origin: log.origin,
    signerKey,
    operator,
    logger: app.log.child({ origin: log.origin }),
    tiles,
    batchSize: config.batchSize,
    queueSize: config.queueSize,
    verifyOnStart: config.verifyOnStart,
    hooks: deps.hooks,
    onFatal: deps.onFatal,
    onBatch: (m) => metrics.onBatch(m),
  });
  tlog.setHeadSource(() => sequencer.head);
  const pusher = new WitnessPusher(tlog, app.log.child({ origin: log.origin }), config.witnessIntervalMs);
  const ctx: RouteContext = {
    config,
    tlog,
    sequencer,
    metrics,
    emitterLimiter: new RateLimiter(config.rateEmitter),
    pusher,
    verifier: new RecordVerifier(),
    searchSlots: new Slots(config.searchConcurrency, config.searchQueue),
  };
  app.decorate('vigil', ctx);
  // Retention runs on the sequencing instance only; a run that erased something has the sequencer
  // append its log.erasure action at once (the periodic sync would within REGISTRY_SYNC_MS).
  const retention = new Retention({
    db: deps.db,
    logger: app.log.child({ origin: log.origin }),
    intervalMs: config.retentionIntervalMs,
    isActive: () => sequencer.state === 'active',
    onErased: () => sequencer.syncOperatorActions(),
  });
  app.decorate('retention', retention);

  // With the per-address limit off (0) no hook runs at all: one promise less on every request.
  if (config.rateAddress > 0) {
    const addressLimiter = new RateLimiter(config.rateAddress);
    app.addHook('onRequest', async (request) => {
      if (!addressLimiter.take(request.ip))
        throw new HttpError('RATE_LIMITED', `too many requests from ${request.ip}`);
    });
  }

  await app.register(async (a) => entriesRoutes(a, ctx));
  await app.register(async (a) => readRoutes(a, ctx));
  await app.register(async (a) => searchRoutes(a, ctx));
  await app.register(async (a) => cosignatureRoutes(a, ctx));
  await app.register(async (a) => sealedRoutes(a, ctx));
  await app.register(async (a) => consoleRoutes(a));

  // The emitters table is written by admin commands of other processes: the registry follows it
  // within REGISTRY_SYNC_MS (a new emitter's first record registers it at once in any case).
  // Operator actions (reader.add, log.erasure, ...) follow the same way.
  const syncTimer = setInterval(() => {
    sequencer.syncRegistry();
    sequencer.syncOperatorActions();
  }, REGISTRY_SYNC_MS);
  syncTimer.unref();
  let lockTimer: NodeJS.Timeout | undefined;
  app.addHook('onReady', async () => {
    if (!deps.tryLock || (await deps.tryLock())) {
      await sequencer.start();
    } else {
      const why = 'another instance holds the sequencing lock (Postgres advisory lock) for this database';
      sequencer.standby(why);
      app.log.warn(`not sequencing: ${why}; serving reads, answering writes 503`);
      lockTimer = setInterval(() => {
        void deps.tryLock!().then(
          async (got) => {
            if (!got || sequencer.state !== 'standby') return;
            clearInterval(lockTimer);
            app.log.info('took the sequencing lock');
            await sequencer.start();
            void retention.runOnce();
          },
          (err: unknown) => app.log.error({ err }, 'sequencing lock attempt failed'),
        );
      }, config.lockRetryMs);
      lockTimer.unref();
    }
    pusher.start();
    retention.start();
  });
  app.addHook('onClose', async () => {
    clearInterval(syncTimer);
    if (lockTimer) clearInterval(lockTimer);
    await pusher.stop();
    await retention.stop();
    await sequencer.close();
  });
  return app;
}

/**
 * A request as the log shows it: Fastify's fields, with the value of a `token` or `access_token`
 * query parameter replaced (a reader token sent there is refused, and never written to the log).
 */
function requestForLog(req: {
  method: string;
  url: string;
  host: string;
  ip: string;
  socket?: { remotePort?: number | undefined };
}): Record<string, unknown> {
  return {
    method: req.method,
    url: req.url.replace(/([?&](?:access_)?token=)[^&#]*/gi, '$1[redacted]'),
    host: req.host,
    remoteAddress: req.ip,
    remotePort: req.socket?.remotePort,
  };
}

/** The operator key: given, or from its file (created for a log whose tree has no operator yet). */
async function operatorKeyOf(
  config: Config,
  deps: AppDeps,
  origin: string,
): Promise<OperatorKey & { created: boolean }> {
  if (deps.operatorKey === undefined) return loadOperatorKey(deps.db, config.operatorKeyFile, origin);
  const name = operatorNameFor(origin);
  if (parseSignerKey(deps.operatorKey).name !== name)
    throw new Error(`the operator key must be named ${name}`);
  const vkey = verifierKeyFromSignerKey(deps.operatorKey);
  return { name, signerKey: deps.operatorKey, vkey, created: false };
}
