// A small C2SP log served over HTTP for pull-mode tests: /checkpoint, /checkpoint/witnessed, tlog-tiles
// and POST /v1/cosignatures, all built from a TestLog with the client-lib core. This is a legitimate
// tlog-tiles log; `serve(log)` swaps the tree behind it to simulate a log rewritten behind the
// witness's back, `down` makes every request fail with 503, and `takesCosignatures = false` makes it a
// plain tlog-tiles log without POST /v1/cosignatures (404, as any non-Vigil log answers).
import Fastify, { type FastifyInstance } from 'fastify';
import { parseNote, parseTilePath, verifyCosignature } from '@vigil/client';
import type { TestLog } from './helpers.js';

export class FakeLogServer {
  readonly app: FastifyInstance;
  url = '';
  log: TestLog;
  /** Size the log publishes (defaults to every leaf). */
  size: number | undefined;
  down = false;
  takesCosignatures = true;
  /** Requests refused while down. */
  refused = 0;
  /** Cosignature lines received, by checkpoint text. */
  readonly cosignatures = new Map<string, string[]>();
  readonly posts: string[] = [];
  witnessVkeys: string[];

  constructor(log: TestLog, witnessVkeys: string[]) {
    this.log = log;
    this.witnessVkeys = witnessVkeys;
    this.app = Fastify({ logger: false });
    this.app.addHook('onRequest', async (_request, reply) => {
      if (this.down) this.refused += 1;
      if (this.down) return reply.code(503).send({ code: 'DOWN', message: 'down' });
      return undefined;
    });
    this.app.get('/checkpoint', async (_request, reply) =>
      reply.type('text/plain; charset=utf-8').send(this.note()),
    );
    this.app.get('/checkpoint/witnessed', async (_request, reply) => {
      const note = this.note();
      return this.witnessVkeys.every((vkey) => this.hasCosignature(note, vkey))
        ? reply.type('text/plain; charset=utf-8').send(note)
        : reply.code(404).send({ code: 'NOT_WITNESSED', message: 'quorum not met' });
    });
    this.app.get('/tile/*', async (request, reply) => {
      const tile = parseTilePath(`tile/${(request.params as { '*': string })['*']}`);
      if (tile.level === 'entries') return reply.code(404).send();
      const size = BigInt(this.size ?? this.log.leaves.length);
      const n = size >> BigInt(8 * tile.level);
      if ((tile.index + 1n) * 256n <= n ? tile.width !== 256 : BigInt(tile.width) !== n - tile.index * 256n) {
        return reply.code(404).send();
      }
      return reply
        .type('application/octet-stream')
        .send(Buffer.from(this.log.tile(tile.level, tile.index, tile.width)));
    });
    this.app.addContentTypeParser('text/plain', { parseAs: 'string' }, (_request, body, done) =>
      done(null, body),
    );
    this.app.post('/v1/cosignatures', async (request, reply) => {
      const body = request.body as string;
      this.posts.push(body);
      if (!this.takesCosignatures) return reply.code(404).send({ code: 'NOT_FOUND', message: 'no route' });
      const parsed = parseNote(body);
      if (parsed.text !== parseNote(this.note()).text) {
        return reply.code(409).send({ code: 'CHECKPOINT_UNKNOWN', message: 'not our current checkpoint' });
      }
      const lines = this.cosignatures.get(parsed.text) ?? [];
      for (const vkey of this.witnessVkeys) {
        try {
          verifyCosignature(body, vkey);
        } catch {
          continue;
        }
        const mine = parsed.signatureLines.filter(
          (s) => !this.log.checkpoint(this.currentSize()).includes(s.line),
        );
        for (const s of mine) if (!lines.includes(s.line)) lines.push(s.line);
      }
      this.cosignatures.set(parsed.text, lines);
      return reply.code(200).send({ ok: true });
    });
  }

  currentSize(): number {
    return this.size ?? this.log.leaves.length;
  }

  /** The current checkpoint with every cosignature collected for it. */
  note(): string {
    const note = this.log.checkpoint(this.currentSize());
    const text = parseNote(note).text;
    return note + (this.cosignatures.get(text) ?? []).join('');
  }

  hasCosignature(note: string, vkey: string): boolean {
    try {
      verifyCosignature(note, vkey);
      return true;
    } catch {
      return false;
    }
  }

  async listen(): Promise<string> {
    const address = await this.app.listen({ host: '127.0.0.1', port: 0 });
    this.url = address;
    return address;
  }

  async close(): Promise<void> {
    await this.app.close();
  }
}

/** Polls `check` until it returns a value other than undefined, or fails after `ms`. */
export async function eventually<T>(
  what: string,
  check: () => Promise<T | undefined> | T | undefined,
  ms = 60_000,
): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setImmediate(resolve));
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
