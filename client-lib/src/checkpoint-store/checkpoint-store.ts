/**
 * Remembers the newest verified checkpoint per origin so that a rollback or a fork presented to this
 * client is caught (DESIGN.md "Client library and CLI": "with the last verified checkpoint kept so a
 * rollback is caught"). Browser-safe: storage is an interface; a file-backed one is in
 * file-storage.ts (node-only).
 *
 * The consistency proof between the remembered and the presented checkpoint is computed here from
 * the log's tiles (c2sp.org/tlog-tiles), never taken from the log's proof endpoint, so it works
 * against any tlog-tiles log and the log cannot choose the proof. Tiles are untrusted input: the
 * proof is verified against both signed roots (RFC 9162 section 2.1.4.2).
 */
import { bytesEqual } from '../encoding.js';
import { TlogError } from '../errors.js';
import { consistencyProof, verifyConsistency } from '../merkle/index.js';
import { parseCheckpoint, type Checkpoint } from '../note/index.js';
import { verifyCheckpoint, type Policy } from '../policy/index.js';
import { tileNodeReader, type ReadTile } from '../tiles/index.js';

/** Persists one note per origin. Implementations must replace atomically. */
export interface CheckpointStorage {
  load(origin: string): Promise<string | undefined>;
  save(origin: string, note: string): Promise<void>;
}

/** In-memory storage (lost with the process). */
export function memoryCheckpointStorage(): CheckpointStorage {
  const notes = new Map<string, string>();
  return {
    load: (origin) => Promise.resolve(notes.get(origin)),
    save: (origin, note) => {
      notes.set(origin, note);
      return Promise.resolve();
    },
  };
}

/**
 * A checkpoint older than or inconsistent with the one this client verified before. Carries both
 * notes: together they are evidence (two validly signed, inconsistent views), or proof of a rollback.
 * `code` is SIZE_INVALID for a rollback and PROOF_INVALID for a fork.
 */
export class CheckpointConflictError extends TlogError {
  readonly kind: 'rollback' | 'fork';
  readonly previousNote: string;
  readonly presentedNote: string;

  constructor(
    kind: 'rollback' | 'fork',
    message: string,
    previousNote: string,
    presentedNote: string,
    cause?: unknown,
  ) {
    super(kind === 'rollback' ? 'SIZE_INVALID' : 'PROOF_INVALID', message, { cause });
    this.name = 'CheckpointConflictError';
    this.kind = kind;
    this.previousNote = previousNote;
    this.presentedNote = presentedNote;
  }
}

/** Result of CheckpointStore.update. */
export interface CheckpointUpdate {
  checkpoint: Checkpoint;
  note: string;
  /** Size of the checkpoint remembered before, if any. */
  previousSize: bigint | undefined;
  /** Whether the remembered checkpoint moved forward. */
  advanced: boolean;
}

/** Checkpoint text of a note: everything up to and including the blank line's first newline. */
function checkpointText(note: string): string {
  const at = note.lastIndexOf('\n\n');
  if (at === -1) throw new TlogError('NOTE_MALFORMED', 'note has no blank line before its signatures');
  return note.slice(0, at + 1);
}

/**
 * Verifies checkpoints under one policy and keeps the newest per origin.
 */
export class CheckpointStore {
  readonly policy: Policy;
  private readonly storage: CheckpointStorage;

  constructor(policy: Policy, storage: CheckpointStorage = memoryCheckpointStorage()) {
    this.policy = policy;
    this.storage = storage;
  }

  /** The remembered note for `origin`, re-verified under the policy; undefined if none. */
  async latest(origin: string): Promise<{ checkpoint: Checkpoint; note: string } | undefined> {
    const note = await this.storage.load(origin);
    if (note === undefined) return undefined;
    verifyCheckpoint(note, this.policy);
    return { checkpoint: parseCheckpoint(checkpointText(note)), note };
  }

  /**
   * Verifies `note` (log signature, witness quorum) and checks it against the remembered checkpoint of
   * its origin: a smaller size is a rollback, the same size with another root is a fork, a larger
   * size needs a consistency proof built from `readTile` (tiles of the NEW checkpoint's size) that
   * verifies against both roots. Remembers the note when it is newer. Throws TlogError (or
   * CheckpointConflictError) and leaves the store unchanged on any failure.
   */
  async update(note: string, readTile: ReadTile): Promise<CheckpointUpdate> {
    verifyCheckpoint(note, this.policy);
    const checkpoint = parseCheckpoint(checkpointText(note));
    const previous = await this.latest(checkpoint.origin);
    if (previous === undefined) {
      await this.storage.save(checkpoint.origin, note);
      return { checkpoint, note, previousSize: undefined, advanced: true };
    }
    const old = previous.checkpoint;
    if (checkpoint.size < old.size) {
      throw new CheckpointConflictError(
        'rollback',
        `checkpoint rollback for ${checkpoint.origin}: presented size ${checkpoint.size}, already verified size ${old.size}`,
        previous.note,
        note,
      );
    }
    if (checkpoint.size === old.size) {
      if (!bytesEqual(checkpoint.root, old.root)) {
        throw new CheckpointConflictError(
          'fork',
          `checkpoint fork for ${checkpoint.origin}: two roots at size ${checkpoint.size}`,
          previous.note,
          note,
        );
      }
      return { checkpoint, note: previous.note, previousSize: old.size, advanced: false };
    }
    if (old.size > 0n) {
      try {
        const proof = await consistencyProof(
          old.size,
          checkpoint.size,
          tileNodeReader(checkpoint.size, readTile),
        );
        verifyConsistency(old.size, checkpoint.size, old.root, checkpoint.root, proof);
      } catch (err) {
        if (err instanceof TlogError && err.code === 'PROOF_INVALID') {
          throw new CheckpointConflictError(
            'fork',
            `checkpoint fork for ${checkpoint.origin}: size ${checkpoint.size} is not consistent with verified size ${old.size}: ${err.message}`,
            previous.note,
            note,
            err,
          );
        }
        throw err;
      }
    }
    await this.storage.save(checkpoint.origin, note);
    return { checkpoint, note, previousSize: old.size, advanced: true };
  }
}
