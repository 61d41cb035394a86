// Push witnesses: send add-checkpoint (c2sp.org/tlog-witness) to every witness with a URL, at most
// once per interval, and store the cosignature lines they return.
import {
  base64Encode,
  cosignerKeyFromVerifierKey,
  parseDecimal,
  parseNote,
  verifyCosignature,
} from '@vigil/client';
import type { FastifyBaseLogger } from 'fastify';
import { insertCosignature } from '../db/repository.js';
import type { LogService } from './service.js';

export class WitnessPusher {
  readonly #tlog: LogService;
  readonly #logger: FastifyBaseLogger;
  readonly #intervalMs: number;
  readonly #oldSize = new Map<string, bigint>();
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #lastPushed = -1n;

  constructor(tlog: LogService, logger: FastifyBaseLogger, intervalMs: number) {
    this.#tlog = tlog;
    this.#logger = logger;
    this.#intervalMs = intervalMs;
  }

  start(): void {
    this.#timer = setInterval(() => void this.pushOnce(), this.#intervalMs);
    this.#timer.unref();
  }

  async stop(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    await this.#running;
  }

  /** One round: push the newest checkpoint to every push witness (skipped when nothing changed). */
  pushOnce(): Promise<void> {
    if (this.#running) return this.#running;
    this.#running = this.#round().finally(() => (this.#running = undefined));
    return this.#running;
  }

  async #round(): Promise<void> {
    const witnesses = (await this.#tlog.witnesses()).filter((w) => w.url);
    if (witnesses.length === 0) return;
    const head = await this.#tlog.head();
    if (!head || head.size === this.#lastPushed) return;
    for (const w of witnesses) {
      try {
        await this.#push(w.name, w.vkey, w.url!, head.size, head.note);
      } catch (err) {
        this.#logger.warn({ err, witness: w.name }, 'add-checkpoint failed');
      }
    }
    this.#lastPushed = head.size;
  }

  async #push(name: string, vkey: string, url: string, size: bigint, note: string): Promise<void> {
    for (let attempt = 0; attempt < 2; attempt++) {
      const old = this.#oldSize.get(name) ?? 0n;
      let proof: Uint8Array[] = [];
      if (old > 0n && old < size) proof = await this.#tlog.tiles.consistencyProof(old, size);
      const body = `old ${old}\n${proof.map((p) => `${base64Encode(p)}\n`).join('')}\n${note}`;
      const res = await fetch(`${url.replace(/\/$/, '')}/add-checkpoint`, {
        method: 'POST',
        headers: { 'content-type': 'text/plain; charset=utf-8' },
        body,
        signal: AbortSignal.timeout(10_000),
      });
      const text = await res.text();
      if (res.status === 409 && (res.headers.get('content-type') ?? '').startsWith('text/x.tlog.size')) {
        const theirs = parseDecimal(text.trim());
        if (theirs > size) throw new Error(`witness ${name} is at size ${theirs}, beyond ours (${size})`);
        if (theirs > 0n && !(await this.#tlog.publishedCheckpoint(theirs))) {
          throw new Error(`witness ${name} is at size ${theirs}, which this log never published`);
        }
        this.#oldSize.set(name, theirs);
        continue;
      }
      if (res.status !== 200)
        throw new Error(`witness ${name} answered ${res.status}: ${text.slice(0, 200)}`);
      const { line, timestamp } = cosignatureLine(note + text, vkey);
      await insertCosignature(this.#tlog.db, { size, witness: name, line, timestamp });
      this.#tlog.cosignatureAdded();
      this.#oldSize.set(name, size);
      return;
    }
    throw new Error(`witness ${name} kept answering 409`);
  }
}

/**
 * The verified cosignature line of the witness with `vkey` in `note`, and its timestamp. Throws
 * NO_KNOWN_SIGNATURE / COSIGNATURE_INVALID (c2sp.org/tlog-cosignature).
 */
export function cosignatureLine(note: string, vkey: string): { line: string; timestamp: bigint } {
  const timestamp = verifyCosignature(note, vkey);
  const key = cosignerKeyFromVerifierKey(vkey);
  const sig = parseNote(note).signatureLines.find((l) => l.name === key.name && l.keyId === key.keyId);
  if (!sig) throw new Error('verified cosignature line not found');
  return { line: sig.line.endsWith('\n') ? sig.line : `${sig.line}\n`, timestamp };
}
