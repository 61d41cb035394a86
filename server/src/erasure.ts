// Erasure of sealed values, retention and legal holds (DESIGN.md "Readers and sealed payloads"). The
// bytes go at once (one transaction, then VACUUM); the log.erasure record that says so is appended by
// the running log from the pending operator action this inserts.
import type { Kysely } from 'kysely';
import type { FastifyBaseLogger } from 'fastify';
import type { Database } from './db/schema.js';
import { getSetting } from './db/repository.js';
import { eraseSealed, vacuumSealed, type ErasureResult, type SealedSelection } from './db/erasures.js';

/** The settings key of the retention duration (`180d`, `12h`, `30m`, or `off`). */
export const RETENTION_SETTING = 'retention';

const UNIT_MS = { m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

/**
 * Parses a retention duration: a positive decimal without leading zeros and one unit, `m`, `h` or `d`
 * (`30m`, `12h`, `180d`); returns its milliseconds. Throws on anything else.
 */
export function parseDuration(text: string): number {
  const m = /^([1-9][0-9]{0,5})([mhd])$/.exec(text);
  if (!m) throw new Error(`duration ${JSON.stringify(text)}: want a number and m, h or d (30m, 12h, 180d)`);
  return Number(m[1]) * UNIT_MS[m[2] as keyof typeof UNIT_MS];
}

/** A commitment as the CLI takes it: 64 lowercase hex. */
export function isCommitmentHex(text: string): boolean {
  return /^[0-9a-f]{64}$/.test(text);
}

/**
 * Erases a selection and, when something was erased, VACUUMs the sealed tables (after the commit, so
 * the deleted tuples are dead to every snapshot); `vacuumFull` rewrites them (see vacuumSealed). The
 * caller notifies the log.
 */
export async function eraseAndVacuum(
  db: Kysely<Database>,
  sel: SealedSelection,
  req: Parameters<typeof eraseSealed>[2],
  vacuumFull = false,
): Promise<ErasureResult> {
  const result = await eraseSealed(db, sel, req);
  if (result.kind === 'erased') await vacuumSealed(db, vacuumFull);
  return result;
}

/** The retention duration in force, or undefined (keep forever). */
export async function getRetention(db: Kysely<Database>): Promise<string | undefined> {
  const value = await getSetting(db, RETENTION_SETTING);
  return value === undefined || value === 'off' ? undefined : value;
}

export interface RetentionOptions {
  db: Kysely<Database>;
  logger: FastifyBaseLogger;
  /** Time between runs (config retentionIntervalMs; a day by default). */
  intervalMs: number;
  /** Runs only while true: the instance that sequences erases, a standby does not. */
  isActive: () => boolean;
  /** Called after a run erased something (the log appends the log.erasure record). */
  onErased: () => void;
  clock?: () => number;
}

/**
 * The log's retention: at start and every interval, erases the sealed values received longer ago than
 * the `retention` setting, skipping held ones, with one log.erasure action per run that erased
 * something. One run at a time (a run asked for while one is going shares it).
 */
export class Retention {
  readonly #o: RetentionOptions;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<ErasureResult | undefined> | undefined;

  constructor(options: RetentionOptions) {
    this.#o = options;
  }

  /** Runs once now and then every interval. */
  start(): void {
    void this.runOnce();
    this.#timer = setInterval(() => void this.runOnce(), this.#o.intervalMs);
    this.#timer.unref();
  }

  async stop(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    await this.#running;
  }

  /** One run; resolves with what it erased (undefined: not active, retention off, or it failed). */
  runOnce(): Promise<ErasureResult | undefined> {
    this.#running ??= this.#run().finally(() => (this.#running = undefined));
    return this.#running;
  }

  async #run(): Promise<ErasureResult | undefined> {
    if (!this.#o.isActive()) return undefined;
    try {
      const duration = await getRetention(this.#o.db);
      if (duration === undefined) return undefined;
      const now = (this.#o.clock ?? Date.now)();
      const olderThan = new Date(now - parseDuration(duration));
      const result = await eraseAndVacuum(
        this.#o.db,
        { olderThan },
        { reason: `retention ${duration}`, by: 'retention', target: { retention: duration }, held: 'skip' },
      );
      if (result.kind === 'erased') {
        this.#o.logger.info(
          { count: result.count, action: String(result.actionId), olderThan: olderThan.toISOString() },
          'retention erased sealed values',
        );
        this.#o.onErased();
      }
      return result;
    } catch (err) {
      this.#o.logger.error({ err }, 'retention run failed');
      return undefined;
    }
  }
}
