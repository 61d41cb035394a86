import type { FastifyBaseLogger } from 'fastify';
import {
  bytesEqual,
  cosign,
  cosignerVerifierKey,
  emptyRoot,
  openNote,
  parseCheckpoint,
  parseNote,
  parseSignerKey,
  parseVerifierKey,
  TlogError,
  verifyConsistency,
  type SignerKey,
  type VerifierKey,
} from '@vigil/client';
import { WitnessError } from '../errors.js';
import type { EvidenceInput, LogRecord, WitnessedCheckpoint, WitnessStore } from '../store.js';
import type { AddCheckpointRequest } from './request.js';
import type { WitnessMetrics } from '../metrics.js';

export type Logger = Pick<FastifyBaseLogger, 'error' | 'warn' | 'info' | 'debug'>;

/** Test hooks; production passes none. */
export interface WitnessHooks {
  /**
   * Runs after every check passed and before the compare-and-swap. Tests use it to force two requests
   * from the same old size to interleave (the tlog-witness rollback race) without sleeps.
   */
  beforeSave?: (origin: string, oldSize: bigint, newSize: bigint) => Promise<void> | void;
}

export interface WitnessOptions {
  store: WitnessStore;
  /** The witness's signer key text (`PRIVATE+KEY+<name>+...`); read from the key file by main.ts. */
  signerKey: string;
  /** POSIX seconds; the cosignature timestamp. Must be non-zero (c2sp.org/tlog-witness). */
  now?: () => bigint;
  hooks?: WitnessHooks;
  logger?: Logger;
  /** Counts cosignatures and evidence for GET /metrics. */
  metrics?: WitnessMetrics;
}

/** A checkpoint whose log signature verified against the log's key. */
export interface VerifiedCheckpoint {
  origin: string;
  size: bigint;
  root: Uint8Array;
  /** The checkpoint text (note body, ending in `\n`). */
  text: string;
  /** The note reduced to the text and the log's verified signature line(s). */
  note: string;
}

const VERIFIER_KEY_CACHE_LIMIT = 4096;

const silent: Logger = {
  error: () => undefined,
  warn: () => undefined,
  info: () => undefined,
  debug: () => undefined,
} as unknown as Logger;

/** The note text: everything up to and including the newline before the last blank line (signed-note). */
function noteTextOf(note: string): string | undefined {
  const blank = note.lastIndexOf('\n\n');
  return blank < 0 ? undefined : note.slice(0, blank + 1);
}

/**
 * The witness: checks that each checkpoint extends the last one it cosigned for that origin, cosigns it
 * (Ed25519 cosignature/v1, c2sp.org/tlog-cosignature) and stores it by compare-and-swap. Used by the
 * add-checkpoint route (push) and the puller (pull). Holds no state of its own: the store is the truth.
 */
export class Witness {
  readonly name: string;
  /** Our cosigner verifier key (type 0x04), what `vigil-witness init` prints. */
  readonly vkey: string;
  readonly store: WitnessStore;
  readonly #signerKey: SignerKey;
  readonly #now: () => bigint;
  readonly #hooks: WitnessHooks;
  readonly #metrics: WitnessMetrics | undefined;
  readonly #logger: Logger;
  /** Parsed log verifier keys by key text (a log's vkey never changes; bounded like the key cache). */
  readonly #verifierKeys = new Map<string, VerifierKey>();

  constructor(options: WitnessOptions) {
    this.store = options.store;
    this.#signerKey = parseSignerKey(options.signerKey);
    this.name = this.#signerKey.name;
    this.vkey = cosignerVerifierKey(options.signerKey);
    this.#now = options.now ?? (() => BigInt(Math.floor(Date.now() / 1000)));
    this.#hooks = options.hooks ?? {};
    this.#metrics = options.metrics;
    this.#logger = options.logger ?? silent;
  }

  /**
   * Reads the origin of a note without trusting it. Throws REQUEST_MALFORMED when the note has no
   * parseable checkpoint text.
   */
  originOf(note: string): string {
    const text = noteTextOf(note);
    if (text === undefined) throw new WitnessError('REQUEST_MALFORMED', 'note has no signature block');
    try {
      return parseCheckpoint(text).origin;
    } catch (err) {
      throw new WitnessError('REQUEST_MALFORMED', 'checkpoint is malformed', { cause: err });
    }
  }

  /** Parses a log's verifier key once; stored keys were checked by `log add`, so a failure is a 403. */
  #verifierKey(vkey: string): VerifierKey {
    let key = this.#verifierKeys.get(vkey);
    if (key === undefined) {
      try {
        key = parseVerifierKey(vkey);
      } catch (err) {
        throw new WitnessError('SIGNATURE_INVALID', 'invalid signature: no trusted log signature verifies', {
          cause: err,
        });
      }
      if (this.#verifierKeys.size >= VERIFIER_KEY_CACHE_LIMIT) this.#verifierKeys.clear();
      this.#verifierKeys.set(vkey, key);
    }
    return key;
  }

  /**
   * Verifies the log's signature on `note` (signed-note rules: unknown signatures are ignored; a
   * known key whose signature fails, or no known signature, is SIGNATURE_INVALID) and parses the
   * checkpoint (REQUEST_MALFORMED). Requires the checkpoint origin to be `log.origin`.
   */
  verifyLogSignature(log: LogRecord, note: string): VerifiedCheckpoint {
    const key = this.#verifierKey(log.vkey);
    let text: string;
    try {
      text = openNote(note, [key]).text;
    } catch (err) {
      // A signature block we cannot even parse carries no trusted signature either (witness.json
      // request 1: a signature with non-canonical base64 answers 403).
      throw new WitnessError('SIGNATURE_INVALID', 'invalid signature: no trusted log signature verifies', {
        cause: err,
      });
    }
    let checkpoint;
    try {
      checkpoint = parseCheckpoint(text);
    } catch (err) {
      throw new WitnessError('REQUEST_MALFORMED', 'checkpoint is malformed', { cause: err });
    }
    if (checkpoint.origin !== log.origin) {
      throw new WitnessError('REQUEST_MALFORMED', `checkpoint origin is not ${log.origin}`);
    }
    const logLines = parseNote(note)
      .signatureLines.filter((s) => s.name === key.name && s.keyId === key.keyId)
      .map((s) => s.line);
    return {
      origin: checkpoint.origin,
      size: checkpoint.size,
      root: checkpoint.root,
      text,
      note: `${text}\n${[...new Set(logLines)].join('')}`,
    };
  }

  /**
   * c2sp.org/tlog-witness add-checkpoint, with the checks in the spec's order: 404 unknown origin,
   * 403 signature, 400 old > size, 409 old is not our size, 422 size-0 root, 422 proof (non-empty with
   * old 0, or failing), 422 same size with another root; then compare-and-swap and the cosignature
   * line. Throws WitnessError with the matching code. `admit(origin)` runs once the log's signature
   * verified and before any other work; the route uses it to charge the origin's rate limit, so only
   * requests the log itself signed spend the log's budget (it throws RATE_LIMITED to refuse).
   */
  async addCheckpoint(
    request: AddCheckpointRequest,
    options: { admit?: (origin: string) => void } = {},
  ): Promise<{ cosignature: string; note: string }> {
    const origin = this.originOf(request.note);
    // The log and our state in one read; the checks below still run in the spec's order.
    const state = await this.store.getLogState(origin);
    if (state === undefined || state.log.disabled) {
      throw new WitnessError('ORIGIN_UNKNOWN', `unknown log ${origin}`);
    }
    const { log, latest } = state;
    const checkpoint = this.verifyLogSignature(log, request.note);
    options.admit?.(origin);
    if (request.oldSize > checkpoint.size) {
      throw new WitnessError(
        'REQUEST_MALFORMED',
        `old size ${request.oldSize} is greater than size ${checkpoint.size}`,
      );
    }
    const current = latest?.size ?? 0n;
    if (request.oldSize !== current) {
      throw new WitnessError(
        'SIZE_CONFLICT',
        `old size ${request.oldSize} is not the witnessed size ${current}`,
        {
          size: current,
        },
      );
    }
    await this.#checkExtends(log, latest, checkpoint, request.proof, 'push');
    return this.#cosignAndStore(checkpoint, current);
  }

  /**
   * Throws PROOF_INVALID unless `checkpoint` extends `latest` by `proof` (checks 5-7 of tlog-witness,
   * in order). Records evidence when the
   * log's own signatures vouch for two inconsistent trees (see README "Evidence").
   */
  async #checkExtends(
    log: LogRecord,
    latest: WitnessedCheckpoint | undefined,
    checkpoint: VerifiedCheckpoint,
    proof: Uint8Array[],
    source: 'push' | 'pull',
  ): Promise<void> {
    // tlog-witness: a size-0 checkpoint whose root is not SHA-256("") is 422.
    if (checkpoint.size === 0n && !bytesEqual(checkpoint.root, emptyRoot())) {
      throw new WitnessError('PROOF_INVALID', 'checkpoint of size 0 does not have the empty root');
    }
    const oldSize = latest?.size ?? 0n;
    if (oldSize === 0n) {
      // tlog-witness: with old 0 no proof is needed, and the proof MUST be empty.
      if (proof.length > 0)
        throw new WitnessError('PROOF_INVALID', `consistency proof from size 0 must be empty`);
      return;
    }
    if (latest === undefined) throw new Error('unreachable: non-zero size without a stored checkpoint');
    if (oldSize === checkpoint.size) {
      if (!bytesEqual(latest.root, checkpoint.root)) {
        await this.recordEvidence(log, {
          origin: log.origin,
          kind: 'fork',
          source,
          oldSize,
          newSize: checkpoint.size,
          oldNote: latest.note,
          newNote: checkpoint.note,
          proof: [],
          prefixRoot: null,
        });
        throw new WitnessError('PROOF_INVALID', `checkpoint has size ${oldSize} and a different root`);
      }
      if (proof.length > 0)
        throw new WitnessError('PROOF_INVALID', 'consistency proof between equal sizes must be empty');
      return;
    }
    try {
      verifyConsistency(oldSize, checkpoint.size, latest.root, checkpoint.root, proof);
    } catch (err) {
      if (err instanceof TlogError) {
        throw new WitnessError(
          'PROOF_INVALID',
          `consistency proof from ${oldSize} to ${checkpoint.size} failed`,
          {
            cause: err,
          },
        );
      }
      throw err;
    }
  }

  /** Appends evidence and logs it at error: a human must look at a log that signed inconsistent trees. */
  async recordEvidence(log: LogRecord, evidence: EvidenceInput): Promise<void> {
    const stored = await this.store.addEvidence(evidence);
    this.#metrics?.evidence.inc(log.origin, evidence.kind);
    this.#logger.error(
      {
        origin: log.origin,
        kind: evidence.kind,
        source: evidence.source,
        oldSize: evidence.oldSize.toString(),
        newSize: evidence.newSize.toString(),
        evidenceId: stored.id.toString(),
      },
      'log misbehaviour: validly signed checkpoint does not extend the witnessed one',
    );
  }

  /**
   * Cosigns `checkpoint` and stores it if our size is still `oldSize`, else SIZE_CONFLICT with the size
   * that won. The store commits before this returns, so a 200 is never answered for unsaved state.
   */
  async #cosignAndStore(
    checkpoint: VerifiedCheckpoint,
    oldSize: bigint,
  ): Promise<{ cosignature: string; note: string }> {
    const time = this.#now();
    if (time <= 0n) throw new Error('clock reads a non-positive time');
    const cosignature = cosign(checkpoint.note, this.#signerKey, time);
    const note = `${checkpoint.note}${cosignature}`;
    await this.#hooks.beforeSave?.(checkpoint.origin, oldSize, checkpoint.size);
    const saved = await this.store.compareAndSwap(checkpoint.origin, oldSize, {
      size: checkpoint.size,
      root: checkpoint.root,
      note,
    });
    if (!saved) {
      const size = (await this.store.latest(checkpoint.origin))?.size ?? 0n;
      throw new WitnessError('SIZE_CONFLICT', `witnessed size moved from ${oldSize} to ${size}`, { size });
    }
    this.#metrics?.cosignatures.inc(checkpoint.origin);
    return { cosignature, note };
  }

  /**
   * Pull mode: cosigns `checkpoint` (already verified against the log key) given a consistency proof
   * from our size that the caller computed from the log's tiles. Same checks as add-checkpoint.
   */
  async witnessPulled(
    log: LogRecord,
    latest: WitnessedCheckpoint | undefined,
    checkpoint: VerifiedCheckpoint,
    proof: Uint8Array[],
  ): Promise<{ cosignature: string; note: string }> {
    await this.#checkExtends(log, latest, checkpoint, proof, 'pull');
    return this.#cosignAndStore(checkpoint, latest?.size ?? 0n);
  }
}
