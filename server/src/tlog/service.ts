// Shared state of a running log: emitter and witness configuration (re-read from the database so
// admin commands against Postgres take effect), receipts.
import { formatReceipt, hashLeaf, verifyCosignature, type GetNode } from '@vigil/client';
import type { Kysely } from 'kysely';
import type { Database } from '../db/schema.js';
import {
  getCheckpoint,
  getActiveReaderByTokenHash,
  getCosignatures,
  getEmitter,
  getSetting,
  getTreeHead,
  listCheckpointsDesc,
  listWitnesses,
  type EmitterInfo,
  type TreeHead,
  type WitnessInfo,
} from '../db/repository.js';
import type { TileReader } from './tiles.js';

const EMITTER_TTL_MS = 3000;
/**
 * How long a reader token found in the readers table is trusted from memory. A revocation by an admin
 * command forgets it at once through the admin NOTIFY (invalidate); otherwise within this time.
 */
const READER_TTL_MS = 3000;
const READER_CACHE_MAX = 10_000;
/**
 * How long a checkpoint's collected cosignatures are served from memory. This process forgets them
 * at once when it stores a cosignature; one written by another process shows within this time.
 */
const COSIGNED_TTL_MS = 1000;

export class LogService {
  readonly db: Kysely<Database>;
  readonly tiles: TileReader;
  readonly origin: string;
  readonly vkey: string;
  /** The operator emitter (name and vkey): listed in /v1/log, refused as a submitter. */
  readonly operator: { name: string; vkey: string };
  #emitters = new Map<string, { info: EmitterInfo | undefined; at: number }>();
  /** Unrevoked readers by token hash, as read from the readers table (unknown hashes are not kept). */
  #readers = new Map<string, { name: string; at: number }>();
  #headSource: (() => TreeHead | undefined) | undefined;
  #cosigned: { size: bigint; note: string; at: number } | undefined;
  #witnessed: { value: { head: TreeHead; note: string } | undefined; at: number } | undefined;
  /** Bumped on every stored cosignature, so a read that raced with it is not cached. */
  #cosignatures = 0;

  constructor(
    db: Kysely<Database>,
    tiles: TileReader,
    origin: string,
    vkey: string,
    operator: { name: string; vkey: string },
  ) {
    this.db = db;
    this.tiles = tiles;
    this.origin = origin;
    this.vkey = vkey;
    this.operator = operator;
  }

  /** An emitter by name: cached a few seconds; an unknown name is always re-read. */
  async emitter(name: string): Promise<EmitterInfo | undefined> {
    const hit = this.#emitters.get(name);
    if (hit?.info && Date.now() - hit.at < EMITTER_TTL_MS) return hit.info;
    const info = await getEmitter(this.db, name);
    this.#emitters.set(name, { info, at: Date.now() });
    if (this.#emitters.size > 10_000) this.#emitters.delete(this.#emitters.keys().next().value!);
    return info;
  }

  /**
   * The unrevoked reader whose token hashes to `tokenSha256` (64 hex), or undefined; cached briefly.
   * An unknown hash is always re-read, so a reader added a moment ago is accepted at once.
   */
  async reader(tokenSha256: string): Promise<string | undefined> {
    const hit = this.#readers.get(tokenSha256);
    if (hit && Date.now() - hit.at < READER_TTL_MS) return hit.name;
    const at = Date.now();
    const row = await getActiveReaderByTokenHash(this.db, tokenSha256);
    if (!row) {
      this.#readers.delete(tokenSha256);
      return undefined;
    }
    this.#readers.set(tokenSha256, { name: row.name, at });
    if (this.#readers.size > READER_CACHE_MAX) this.#readers.delete(this.#readers.keys().next().value!);
    return row.name;
  }

  /** Forgets cached emitters and readers (after an admin command: the admin NOTIFY). */
  invalidate(): void {
    this.#emitters.clear();
    this.#readers.clear();
    this.#witnessed = undefined;
  }

  witnesses(): Promise<WitnessInfo[]> {
    return listWitnesses(this.db);
  }

  async quorum(): Promise<number> {
    const v = await getSetting(this.db, 'quorum');
    return v === undefined ? 0 : Number(v);
  }

  /**
   * Where the tree head is known without asking the store: the active sequencer of this process,
   * the one writer of tree_heads, which updates it right after each commit.
   */
  setHeadSource(source: () => TreeHead | undefined): void {
    this.#headSource = source;
  }

  /** The newest tree head: from the active sequencer when there is one, else from the store. */
  head(): Promise<TreeHead | undefined> {
    const h = this.#headSource?.();
    return h !== undefined ? Promise.resolve(h) : getTreeHead(this.db);
  }

  /** The checkpoint note of `size` with every cosignature line collected for it. */
  async noteWithCosignatures(head: TreeHead): Promise<string> {
    const hit = this.#cosigned;
    if (hit !== undefined && hit.size === head.size && Date.now() - hit.at < COSIGNED_TTL_MS) return hit.note;
    const [at, generation] = [Date.now(), this.#cosignatures];
    const cos = await getCosignatures(this.db, head.size);
    const note = head.note + cos.map((c) => c.line).join('');
    if (generation === this.#cosignatures) this.#cosigned = { size: head.size, note, at };
    return note;
  }

  /** Forgets cached cosignatures: called right after this process stores one. */
  cosignatureAdded(): void {
    this.#cosignatures++;
    this.#cosigned = undefined;
    this.#witnessed = undefined;
  }

  /** Newest checkpoint whose valid cosignatures from configured witnesses meet the quorum. */
  async witnessedCheckpoint(): Promise<{ head: TreeHead; note: string } | undefined> {
    const hit = this.#witnessed;
    if (hit !== undefined && Date.now() - hit.at < COSIGNED_TTL_MS) return hit.value;
    const [at, generation] = [Date.now(), this.#cosignatures];
    const value = await this.#findWitnessed();
    if (generation === this.#cosignatures) this.#witnessed = { value, at };
    return value;
  }

  async #findWitnessed(): Promise<{ head: TreeHead; note: string } | undefined> {
    const quorum = await this.quorum();
    const witnesses = await this.witnesses();
    for (const head of await listCheckpointsDesc(this.db, 200)) {
      const note = await this.noteWithCosignatures(head);
      let n = 0;
      for (const w of witnesses) {
        try {
          verifyCosignature(note, w.vkey);
          n++;
        } catch {
          // not cosigned by this witness
        }
      }
      if (n >= quorum) return { head, note };
    }
    return undefined;
  }

  async publishedCheckpoint(size: bigint): Promise<TreeHead | undefined> {
    return getCheckpoint(this.db, size);
  }

  /** A tlog-proof@v1 receipt for `index` against the checkpoint `head` (note with cosignatures). */
  async receipt(index: bigint, head: TreeHead, note?: string, getNode?: GetNode): Promise<string> {
    const proof = await this.tiles.inclusionProof(
      index,
      head.size,
      getNode ?? this.tiles.nodeReader(head.size),
    );
    return formatReceipt({ index, proof, note: note ?? head.note });
  }

  leafHash(entry: Uint8Array): Uint8Array {
    return hashLeaf(entry);
  }
}
