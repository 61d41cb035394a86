// POST /v1/entries: validate, verify, sequence, answer with receipts. DESIGN.md "Log server".
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import {
  MAX_ENTRY_SIZE,
  canonicalBytes,
  canonicalJson,
  hashLeaf,
  hexEncode,
  isSealedRef,
  openSealed,
  sha256,
  utf8,
} from '@vigil/client';
import { HttpError } from '../plugins/errors.js';
import { base64DecodeStrict, base64EncodeFast } from '../tlog/base64.js';
import type { Submission } from '../tlog/sequencer.js';
import { getEntry } from '../db/repository.js';
import type { RouteContext } from './context.js';
import { isDbText } from './text.js';

const MAX_ENTRIES = 1000;

/**
 * A JSON string with a lone UTF-16 surrogate (`"\ud800"`) or a NUL cannot reach a database text
 * column (Postgres rejects the bytes): refused here, before a lookup or a signature check.
 */
const text = () => z.string().refine(isDbText, 'has a NUL or a lone utf-16 surrogate');

const bodySchema = z.object({
  entries: z
    .array(
      z.object({
        emitter: text().min(1).max(256),
        record: z.record(z.string(), z.unknown()),
        sig: text().min(1).max(200),
        blobs: z.record(text(), text()).optional(),
      }),
    )
    .min(1),
});

/** A received time of the log clock's shape (RFC 3339 with ms, always 24 characters). */
const RECEIVED_SHAPE = '2026-01-01T00:00:00.000Z';

/** Requests with at most this many records verify on the event loop (no threadpool round trip). */
const INLINE_VERIFY_MAX = 2;

const UUIDISH = /^[0-9a-fA-F-]{8,64}$/;

/** A `$blob` reference or a `$sealed` commitment found in a record. */
interface BlobRef {
  type: '$blob' | '$sealed';
  sha256: string;
  size: number;
}

/** The error code for a problem with a reference of this type (DESIGN.md "Readers and sealed payloads"). */
function refCode(type: BlobRef['type']): 'BLOB_INVALID' | 'SEALED_INVALID' {
  return type === '$sealed' ? 'SEALED_INVALID' : 'BLOB_INVALID';
}

/**
 * Every `{"$blob":{"sha256","size"}}` reference in a record, and every `{"$sealed":{"sha256","size"}}`
 * commitment: the sealed bytes S travel beside the record in `blobs` as well (DESIGN.md "Readers and
 * sealed payloads"), checked the same way; the type decides where they are stored.
 */
function blobRefs(value: unknown, out: BlobRef[]): void {
  if (Array.isArray(value)) {
    for (const v of value) blobRefs(v, out);
    return;
  }
  if (value === null || typeof value !== 'object') return;
  const obj = value as Record<string, unknown>;
  const keys = Object.keys(obj);
  if (keys.length === 1 && keys[0] === '$sealed') {
    if (!isSealedRef(obj))
      throw new HttpError(
        'SEALED_INVALID',
        'a $sealed commitment is exactly {"sha256": <64 lowercase hex>, "size": <n>}',
      );
    out.push({ type: '$sealed', sha256: obj.$sealed.sha256, size: obj.$sealed.size });
    return;
  }
  if (keys.length === 1 && keys[0] === '$blob') {
    const ref = obj.$blob as Record<string, unknown> | null;
    if (
      ref === null ||
      typeof ref !== 'object' ||
      typeof ref.sha256 !== 'string' ||
      !/^[0-9a-f]{64}$/.test(ref.sha256) ||
      typeof ref.size !== 'number' ||
      !Number.isSafeInteger(ref.size) ||
      ref.size < 0
    ) {
      throw new HttpError(
        'BLOB_INVALID',
        'a $blob reference needs {"sha256": <64 lowercase hex>, "size": <n>}',
      );
    }
    out.push({ type: '$blob', sha256: ref.sha256, size: ref.size });
    return;
  }
  for (const v of Object.values(obj)) blobRefs(v, out);
}

/**
 * The base64 of `{"salt":"`, the canonical start of every sealed value S (9 bytes, 12 characters):
 * bytes that arrive without a reference are named a sealed value by it.
 */
const SEALED_PREFIX_BASE64 = base64EncodeFast(utf8('{"salt":"'));

/** A search column value; a string a text column cannot hold is left out (the entry keeps it). */
function optionalString(v: unknown): string | null {
  return typeof v === 'string' && v.length > 0 && v.length <= 512 && isDbText(v) ? v : null;
}

/** Search columns extracted from an MCP record (best effort; search is a convenience). */
export function searchColumns(record: Record<string, unknown>): Submission['search'] {
  const message = (record.message ?? record.msg) as Record<string, unknown> | undefined;
  // MCP capture records carry OpenTelemetry attribute names (`mcp.method.name`, `gen_ai.tool.name`,
  // `mcp.session.id`), set on responses too; plain records may use short names.
  const method =
    optionalString(record['mcp.method.name']) ??
    optionalString(record.method) ??
    optionalString(message?.method);
  const params = message?.params as Record<string, unknown> | undefined;
  const tool =
    optionalString(record['gen_ai.tool.name']) ??
    optionalString(record.tool) ??
    (method === 'tools/call' ? optionalString(params?.name) : null);
  const time = typeof record.time === 'string' ? new Date(record.time) : null;
  return {
    kind: optionalString(record.kind),
    session:
      optionalString(record.session) ??
      optionalString(record['mcp.session.id']) ??
      optionalString(record.sessionId),
    method,
    tool,
    recordTime: time && !Number.isNaN(time.getTime()) ? time : null,
  };
}

export async function entriesRoutes(app: FastifyInstance, ctx: RouteContext): Promise<void> {
  app.post<{ Querystring: { wait?: string } }>(
    '/v1/entries',
    { bodyLimit: ctx.config.maxBodyBytes },
    async (request, reply) => {
      const contentType = request.headers['content-type'] ?? '';
      if (!/^application\/json\s*(;|$)/i.test(contentType)) {
        throw new HttpError('CONTENT_TYPE_UNSUPPORTED', 'POST /v1/entries takes application/json');
      }
      const raw = request.body as { entries?: unknown } | null;
      if (raw && Array.isArray(raw.entries) && raw.entries.length > MAX_ENTRIES) {
        throw new HttpError(
          'TOO_MANY_ENTRIES',
          `${raw.entries.length} entries, at most ${MAX_ENTRIES} a request`,
        );
      }
      const parsed = bodySchema.safeParse(raw);
      if (!parsed.success) {
        const issue = parsed.error.issues[0]!;
        throw new HttpError(
          'REQUEST_MALFORMED',
          `body ${issue.path.join('.') || '(root)'}: ${issue.message}`,
        );
      }
      const peer = request.ip;
      const subs: Submission[] = [];
      const perEmitter = new Map<string, number>();
      // Signatures are checked on the threadpool while the loop validates the rest; each promise
      // settles to undefined or its error, so an early refusal leaves no unhandled rejection.
      const signatures: Promise<Error | undefined>[] = [];
      const inline = parsed.data.entries.length <= INLINE_VERIFY_MAX;
      for (const [i, e] of parsed.data.entries.entries()) {
        const where = `entries[${i}]`;
        if (e.emitter === ctx.tlog.operator.name)
          throw new HttpError(
            'EMITTER_RESERVED',
            `${where}: the operator emitter writes only through the log`,
          );
        const emitter = await ctx.tlog.emitter(e.emitter);
        if (!emitter)
          throw new HttpError('EMITTER_UNKNOWN', `${where}: emitter ${e.emitter} is not registered`);
        if (emitter.revoked)
          throw new HttpError('EMITTER_REVOKED', `${where}: emitter ${e.emitter} is revoked`);
        // The tree's registration is what counts: a key the table holds but the tree never registered
        // (a changed row) is refused before any signature is checked. The sequencer checks it again.
        const registered = ctx.sequencer.registration(e.emitter);
        if (registered?.revokedAt !== undefined)
          throw new HttpError(
            'EMITTER_REVOKED',
            `${where}: emitter ${e.emitter} was revoked at entry ${registered.revokedAt}`,
          );
        if (registered !== undefined && registered.vkey !== emitter.vkey)
          throw new HttpError(
            'EMITTER_KEY_MISMATCH',
            `${where}: emitter ${e.emitter} has another key in the log's registry (entry ${registered.index})`,
          );
        const record = e.record;
        let canonical: string;
        try {
          canonical = canonicalJson(record);
        } catch (err) {
          throw new HttpError('RECORD_INVALID', `${where}: ${(err as Error).message}`);
        }
        if (record.v !== 1) throw new HttpError('RECORD_INVALID', `${where}: record.v must be 1`);
        if (typeof record.stream !== 'string' || !UUIDISH.test(record.stream))
          throw new HttpError('RECORD_INVALID', `${where}: record.stream must be a uuid`);
        if (typeof record.seq !== 'number' || !Number.isSafeInteger(record.seq) || record.seq < 0)
          throw new HttpError('RECORD_INVALID', `${where}: record.seq must be an integer >= 0`);
        if (record.prev !== undefined && typeof record.prev !== 'string')
          throw new HttpError('RECORD_INVALID', `${where}: record.prev must be a string`);
        if (typeof record.kind !== 'string' || record.kind.length === 0)
          throw new HttpError('RECORD_INVALID', `${where}: record.kind must be a string`);
        if (typeof record.time !== 'string')
          throw new HttpError('RECORD_INVALID', `${where}: record.time must be a string`);
        const bytes = utf8(canonical);
        signatures.push(
          ctx.verifier.verify(bytes, e.sig, emitter.vkey, inline).then(
            () => undefined,
            (err: Error) => new HttpError('SIGNATURE_INVALID', `${where}: ${err.message}`),
          ),
        );
        // Blobs and sealed values: every reference supplied with matching hash and size, nothing
        // extra. Bytes for a $sealed commitment go to the reader-only sealed table, never to blobs.
        const refs: BlobRef[] = [];
        blobRefs(record, refs);
        const supplied = e.blobs ?? {};
        const blobs: Submission['blobs'] = [];
        const sealed: Submission['sealed'] = [];
        const typeOf = new Map<string, BlobRef['type']>();
        for (const ref of refs) {
          const code = refCode(ref.type);
          const what = ref.type === '$sealed' ? 'sealed value' : 'blob';
          const seen = typeOf.get(ref.sha256);
          if (seen !== undefined && seen !== ref.type)
            throw new HttpError(
              'SEALED_INVALID',
              `${where}: ${ref.sha256} is referenced as $blob and $sealed`,
            );
          const b64 = supplied[ref.sha256];
          if (b64 === undefined) throw new HttpError(code, `${where}: ${what} ${ref.sha256} not supplied`);
          let blob: Uint8Array;
          try {
            blob = base64DecodeStrict(b64);
          } catch {
            throw new HttpError(code, `${where}: ${what} ${ref.sha256} is not canonical base64`);
          }
          if (blob.length !== ref.size)
            throw new HttpError(
              code,
              `${where}: ${what} ${ref.sha256} has ${blob.length} bytes, record says ${ref.size}`,
            );
          const got = hexEncode(sha256(blob));
          if (got !== ref.sha256)
            throw new HttpError(code, `${where}: ${what} hash is ${got}, record says ${ref.sha256}`);
          if (seen !== undefined) continue;
          typeOf.set(ref.sha256, ref.type);
          if (ref.type === '$sealed') {
            try {
              openSealed({ $sealed: { sha256: ref.sha256, size: ref.size } }, blob);
            } catch (err) {
              throw new HttpError(
                'SEALED_INVALID',
                `${where}: sealed value ${ref.sha256} is not a sealed value: ${(err as Error).message}`,
              );
            }
            sealed.push({ sha256: ref.sha256, bytes: blob });
          } else {
            blobs.push({ sha256: ref.sha256, bytes: blob });
          }
        }
        for (const [h, b64] of Object.entries(supplied)) {
          if (!typeOf.has(h))
            throw new HttpError(
              b64.startsWith(SEALED_PREFIX_BASE64) ? 'SEALED_INVALID' : 'BLOB_INVALID',
              `${where}: ${h} is supplied but not referenced`,
            );
        }
        // The entry's exact size: its canonical form with an empty record, plus the record's canonical
        // bytes in place of `{}` (the received text is always 24 characters).
        const size =
          canonicalBytes({ v: 1, received: RECEIVED_SHAPE, emitter: e.emitter, peer, record: {}, sig: e.sig })
            .length -
          2 +
          bytes.length;
        if (size > MAX_ENTRY_SIZE)
          throw new HttpError(
            'ENTRY_TOO_LARGE',
            `${where}: entry has ${size} bytes, at most ${MAX_ENTRY_SIZE}; use $blob`,
          );
        perEmitter.set(e.emitter, (perEmitter.get(e.emitter) ?? 0) + 1);
        subs.push({
          emitter: e.emitter,
          record,
          sig: e.sig,
          vkey: emitter.vkey,
          peer,
          stream: record.stream,
          seq: BigInt(record.seq),
          prev: record.prev as string | undefined,
          // recordHash(record): base64 SHA-256 of the canonical bytes.
          recordHash: base64EncodeFast(sha256(bytes)),
          canonical,
          blobs,
          sealed,
          search: searchColumns(record),
        });
      }
      for (const err of await Promise.all(signatures)) if (err) throw err;
      for (const [name, n] of perEmitter) {
        if (!ctx.emitterLimiter.take(name, n))
          throw new HttpError('RATE_LIMITED', `emitter ${name} is over its rate limit`);
      }
      const result = await ctx.sequencer.submit(subs);
      if (request.query.wait === 'false') {
        return reply.code(202).send({ entries: result.items.map((it) => ({ index: it.index.toString() })) });
      }
      const head = { size: result.size, root: new Uint8Array(32), note: result.note };
      // Receipts of the batch's entries come from the sequencer's memory (no read of the store).
      const getNode = result.getNode;
      const entries = [];
      for (const it of result.items) {
        let { leafHash, entry } = it;
        if (it.duplicate) {
          entry = (await getEntry(ctx.tlog.db, it.index))!.entry;
          leafHash = hashLeaf(entry);
        }
        entries.push({
          index: it.index.toString(),
          leafHash: base64EncodeFast(leafHash),
          entry: base64EncodeFast(entry),
          ...(it.duplicate ? { duplicate: true } : {}),
          receipt: await ctx.tlog.receipt(it.index, head, result.note, getNode),
        });
      }
      return reply.send({ entries, checkpoint: result.note });
    },
  );
}
