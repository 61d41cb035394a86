// POST /v1/cosignatures: a pull witness returns the checkpoint note with its cosignature line; the log
// checks it against the configured witness keys and attaches it. DESIGN.md "HTTP API".
import type { FastifyInstance } from 'fastify';
import { bytesEqual, parseCheckpoint, parseNote } from '@vigil/client';
import { HttpError } from '../plugins/errors.js';
import { insertCosignature } from '../db/repository.js';
import { cosignatureLine } from '../tlog/witness-push.js';
import type { RouteContext } from './context.js';

export async function cosignatureRoutes(app: FastifyInstance, ctx: RouteContext): Promise<void> {
  app.addContentTypeParser('text/plain', { parseAs: 'string', bodyLimit: 64 * 1024 }, (_req, body, done) =>
    done(null, body),
  );
  app.post('/v1/cosignatures', { bodyLimit: 64 * 1024 }, async (request) => {
    if (typeof request.body !== 'string')
      throw new HttpError('CONTENT_TYPE_UNSUPPORTED', 'send the note as text/plain');
    const note = request.body;
    const parsed = parseNote(note);
    const cp = parseCheckpoint(parsed.text);
    if (cp.origin !== ctx.tlog.origin)
      throw new HttpError('CHECKPOINT_UNKNOWN', `origin ${cp.origin} is not this log`);
    const ours = await ctx.tlog.publishedCheckpoint(cp.size);
    if (!ours || !bytesEqual(ours.root, cp.root) || !ours.note.startsWith(parsed.text)) {
      throw new HttpError('CHECKPOINT_UNKNOWN', `this log never signed that checkpoint of size ${cp.size}`);
    }
    const accepted: string[] = [];
    for (const w of await ctx.tlog.witnesses()) {
      let found: { line: string; timestamp: bigint };
      try {
        found = cosignatureLine(note, w.vkey);
      } catch (err) {
        if ((err as { code?: string }).code === 'COSIGNATURE_INVALID') throw err;
        continue;
      }
      await insertCosignature(ctx.tlog.db, { size: cp.size, witness: w.name, ...found });
      ctx.tlog.cosignatureAdded();
      accepted.push(w.name);
    }
    if (accepted.length === 0) {
      throw new HttpError('NO_KNOWN_SIGNATURE', 'no cosignature from a configured witness');
    }
    return { accepted, size: cp.size.toString() };
  });
}
