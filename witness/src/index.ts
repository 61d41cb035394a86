export { buildApp, type AppDeps } from './app.js';
export { configSchema, loadConfig, type WitnessConfig } from './config.js';
export { WitnessError, isWitnessError, type WitnessErrorCode } from './errors.js';
export { STATUS_BY_CODE } from './plugins/errors.js';
export { Puller, backoffMs, type PollOutcome } from './pull/puller.js';
export { RateLimiter } from './rate-limit.js';
export { evidenceToJson } from './routes/monitoring.js';
export type * from './store.js';
export { createWitnessStore } from './db/store.js';
export { openWitnessStore, migrateWitness, pendingWitnessMigrations } from './db/open.js';
export {
  parseAddCheckpointRequest,
  formatAddCheckpointRequest,
  type AddCheckpointRequest,
} from './witness/request.js';
export { Witness, type WitnessHooks, type VerifiedCheckpoint } from './witness/witness.js';
export { runAdminCommand, parseInterval, type AdminCommand } from './admin.js';
