/**
 * `vigil mcp proxy`: a Streamable HTTP reverse proxy in front of an MCP server that records every
 * JSON-RPC message in both directions (DESIGN.md "MCP capture"; MCP.md 1.3, 1.4, 3.3). Every request
 * is read to its end and forwarded with its own framing: a body only on POST, decoded (content coding,
 * charset) and recorded before it is forwarded as the recorded text (sync mode: anything the server
 * could act on only after the log acknowledged); a request without a message is recorded as such.
 * SSE responses are forwarded chunk by chunk as they arrive and parsed on the side; replayed events
 * (GET with Last-Event-ID) are recognised by their event id and not recorded twice; an answer past the
 * body limit is forwarded unchanged and recorded by its size. Node only.
 */
import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import http, { type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import https from 'node:https';
import { type AddressInfo, isIP } from 'node:net';
import { type McpCapture, MCP_KINDS, type MessageContext, refusalOf } from './capture.js';
import { BodyRefusedError, type DecodedBody, decodeBody } from './http-body.js';
import { DpopProofError, DpopVerifier } from './dpop.js';
import { headerMismatches, MIRRORED_HEADERS_SINCE } from './header-check.js';
import { bearerToken, InvalidTokenError, PrincipalResolver } from './jwt.js';
import { type ClassifiedMessage, parseMessage, sha256Hex } from './message.js';
import { isUtf8 } from '../encoding.js';
import { SseParser } from './sse.js';
import type { OversizeHasher } from './wire.js';
import type { HttpFacts, JsonObject, Principal } from './types.js';

/** Options of `startProxy`. */
export interface ProxyOptions {
  /** The MCP endpoint upstream, e.g. `http://127.0.0.1:3001/mcp`; paths are forwarded unchanged. */
  upstream: string;
  host?: string;
  /** 0 for an ephemeral port. */
  port?: number;
  capture: McpCapture;
  tlsCertFile?: string;
  tlsKeyFile?: string;
  jwtPublicKeyFile?: string;
  jwksUrl?: string;
  /** OpenID issuer whose discovered `jwks_uri` holds the token keys (jwt.ts). */
  oidcIssuer?: string;
  jwtIssuer?: string;
  jwtAudience?: string;
  /**
   * The proxy sits behind a reverse proxy the operator runs: the client's address is the first
   * address of `X-Forwarded-For`. Off (default): that header is never trusted for the address.
   */
  trustProxy?: boolean;
  /**
   * Answer requests without a bearer token 401 with `WWW-Authenticate`, and requests presenting a
   * sender-constrained token (`cnf.jkt`) without a valid DPoP proof for that key (RFC 9449).
   */
  requireAuth?: boolean;
  /**
   * The URL clients use to reach the proxy (scheme, host and port), e.g. `https://mcp.example.com`.
   * DPoP proofs must name it (`htu`); without it the request's own `Host` (and, with `trustProxy`,
   * `X-Forwarded-Proto`/`-Host`) is taken, which a client chooses: a proof made for another server
   * with the same key and token could then be replayed here. Set it in production.
   */
  publicUrl?: string;
  /** RFC 9728 protected resource metadata URL for the `WWW-Authenticate` challenge. */
  resourceMetadataUrl?: string;
  /**
   * Largest POST body accepted, before and after decompression (default 16 MiB; the SDK's stdio cap
   * is 10 MiB); also the most the proxy holds of one answer (an SSE event, a JSON body) to record it.
   */
  maxBodyBytes?: number;
  onWarning?: (message: string) => void;
}

/** A running proxy. */
export interface RunningProxy {
  /** Base URL clients use (same path as upstream). */
  url: string;
  port: number;
  close(): Promise<void>;
}

const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'host',
  'content-length',
]);

/**
 * Request headers the proxy sets itself: the body goes upstream decoded (no content coding) with its
 * own length; `Expect` would ask the upstream to wait for a body the proxy already holds; answers are
 * asked for without a content coding (`identity`) so that what is recorded is what the server said.
 */
const REWRITTEN = new Set(['content-encoding', 'expect', 'accept-encoding']);

/** Answers `status` with a JSON body and closes the connection (its framing is not trusted again). */
function refuse(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json', connection: 'close' });
  res.end(JSON.stringify(body));
}

/** Replayed-event memory per proxy (session + event id); oldest forgotten first. */
const SEEN_EVENTS_LIMIT = 100_000;

const header = (h: IncomingHttpHeaders, name: string): string | undefined => {
  const v = h[name];
  return Array.isArray(v) ? v.join(', ') : v;
};

/** Starts the proxy; resolves once it listens. */
export async function startProxy(options: ProxyOptions): Promise<RunningProxy> {
  const upstream = new URL(options.upstream);
  const client = upstream.protocol === 'https:' ? https : http;
  const warn = options.onWarning ?? (() => {});
  const capture = options.capture;
  const maxBody = options.maxBodyBytes ?? 16 * 1024 * 1024;
  const jwtOptions: ConstructorParameters<typeof PrincipalResolver>[0] = {};
  if (options.jwtPublicKeyFile !== undefined) jwtOptions.publicKeyFile = options.jwtPublicKeyFile;
  if (options.jwksUrl !== undefined) jwtOptions.jwksUrl = options.jwksUrl;
  if (options.oidcIssuer !== undefined) jwtOptions.oidcIssuer = options.oidcIssuer;
  if (options.jwtIssuer !== undefined) jwtOptions.issuer = options.jwtIssuer;
  if (options.jwtAudience !== undefined) jwtOptions.audience = options.jwtAudience;
  const principals = new PrincipalResolver(jwtOptions);
  const proofs = new DpopVerifier();
  const scheme = options.tlsCertFile !== undefined ? 'https' : 'http';
  const seenEvents = new Set<string>();
  const remember = (key: string): boolean => {
    if (seenEvents.has(key)) return false;
    seenEvents.add(key);
    if (seenEvents.size > SEEN_EVENTS_LIMIT) seenEvents.delete(seenEvents.values().next().value as string);
    return true;
  };

  const challenge = (error?: string, authScheme = 'Bearer'): string => {
    const parts: string[] = [];
    if (error !== undefined) parts.push(`error="${error}"`);
    if (options.resourceMetadataUrl !== undefined)
      parts.push(`resource_metadata="${options.resourceMetadataUrl}"`);
    return parts.length === 0 ? authScheme : `${authScheme} ${parts.join(', ')}`;
  };
  /**
   * The URI the client sent a request to, as the client sees the proxy (a DPoP proof's `htu`):
   * behind a trusted reverse proxy, its `X-Forwarded-Proto` and `X-Forwarded-Host` (first values).
   */
  const publicOrigin = options.publicUrl === undefined ? undefined : new URL(options.publicUrl).origin;
  const requestUri = (req: IncomingMessage, path: string): string => {
    if (publicOrigin !== undefined) return `${publicOrigin}${path}`;
    const first = (name: string): string | undefined =>
      options.trustProxy === true ? header(req.headers, name)?.split(',')[0]?.trim() : undefined;
    const proto = first('x-forwarded-proto') ?? scheme;
    const host = first('x-forwarded-host') ?? header(req.headers, 'host') ?? 'proxy.invalid';
    return `${proto}://${host}${path}`;
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const exchange = randomUUID();
    const method = req.method ?? 'GET';
    const url = new URL(req.url ?? '/', 'http://proxy.invalid');
    const authorization = header(req.headers, 'authorization');
    const requestFacts: HttpFacts = { method: req.method ?? 'GET', path: url.pathname };
    const put = (k: keyof HttpFacts, name: string): void => {
      const v = header(req.headers, name);
      if (v !== undefined) (requestFacts as unknown as Record<string, string>)[k] = v;
    };
    put('contentType', 'content-type');
    put('contentEncoding', 'content-encoding');
    put('mcpMethod', 'mcp-method');
    put('mcpName', 'mcp-name');
    put('mcpProtocolVersion', 'mcp-protocol-version');
    put('mcpSessionId', 'mcp-session-id');
    put('lastEventId', 'last-event-id');
    put('origin', 'origin');
    put('traceparent', 'traceparent');
    if (authorization !== undefined) requestFacts.authorizationSha256 = sha256Hex(authorization);
    Object.assign(requestFacts, clientAddressOf(req, options.trustProxy === true));
    // The session: Mcp-Session-Id, or the legacy HTTP+SSE ?sessionId=, else this exchange alone.
    const mcpSessionId = requestFacts.mcpSessionId ?? url.searchParams.get('sessionId') ?? undefined;
    const requestSession = mcpSessionId ?? `exchange:${exchange}`;

    // Who calls: refused requests are answered 401 and recorded (who tried, from where, why), never
    // forwarded. The body is left unread and the connection closed.
    const unauthorized = async (
      who: Principal,
      code: string,
      message: string,
      wwwAuthenticate: string,
    ): Promise<void> => {
      await capture
        .event({
          kind: MCP_KINDS.httpRefused,
          session: requestSession,
          principal: who as unknown as JsonObject,
          http: { ...requestFacts, status: 401 } as unknown as JsonObject,
          code,
          message,
        })
        .catch((err: unknown) => warn(`could not record a refused request: ${String(err)}`));
      res.writeHead(401, {
        'www-authenticate': wwwAuthenticate,
        'content-type': 'application/json',
        connection: 'close',
      });
      res.end(JSON.stringify({ code, message }));
    };
    let principal: Principal;
    try {
      principal = await principals.resolve(authorization);
    } catch (err) {
      if (!(err instanceof InvalidTokenError)) throw err;
      const token = bearerToken(authorization);
      const who: Principal =
        authorization === undefined
          ? { type: 'anonymous' }
          : { type: 'token', tokenSha256: sha256Hex(token ?? authorization) };
      await unauthorized(who, 'TOKEN_INVALID', err.message, challenge('invalid_token'));
      return;
    }
    if (options.requireAuth === true && principal.type === 'anonymous') {
      await unauthorized(principal, 'AUTH_REQUIRED', 'a bearer token is required', challenge());
      return;
    }
    if (principal.type === 'jwt' && principal.cnfJkt !== undefined) {
      // A sender-constrained token: only the holder of its key may present it (RFC 9449).
      try {
        await proofs.verify(header(req.headers, 'dpop'), {
          method,
          url: requestUri(req, url.pathname),
          accessToken: bearerToken(authorization) ?? '',
          jkt: principal.cnfJkt,
        });
        principal.dpop = 'verified';
      } catch (err) {
        if (!(err instanceof DpopProofError)) throw err;
        principal.dpop = err.code === 'DPOP_PROOF_MISSING' ? 'missing' : 'invalid';
        if (options.requireAuth === true) {
          await unauthorized(principal, err.code, err.message, challenge('invalid_dpop_proof', 'DPoP'));
          return;
        }
      }
    }
    const context = (session: string, http: HttpFacts, sid: string | undefined): MessageContext => {
      const c: MessageContext = { session, principal, http };
      if (sid !== undefined) c.mcpSessionId = sid;
      if (requestFacts.mcpProtocolVersion !== undefined) c.protocolVersion = requestFacts.mcpProtocolVersion;
      return c;
    };

    /**
     * A server message past the bound: forwarded unchanged, recorded by its size and its `$oversize`
     * marker (`wire`: size in bytes and salted digest, hashed as it streamed, mcp/wire.ts).
     */
    const recordOversized = (c: MessageContext, size: number, wire: JsonObject | undefined): void => {
      const fields: JsonObject = {
        kind: MCP_KINDS.oversized,
        direction: 'server_to_client',
        session: c.session,
        size,
        limit: maxBody,
      };
      if (wire !== undefined) fields['wire'] = wire;
      if (c.mcpSessionId !== undefined) fields['mcp.session.id'] = c.mcpSessionId;
      if (c.http !== undefined) fields['http'] = c.http as unknown as JsonObject;
      capture
        .event(fields)
        .catch((err: unknown) => warn(`could not record an oversized message: ${String(err)}`));
    };
    const httpRequestRecord = (): JsonObject => ({
      kind: MCP_KINDS.httpRequest,
      session: requestSession,
      principal: principal as unknown as JsonObject,
      http: requestFacts as unknown as JsonObject,
    });

    // Every request is read to its end here, so the proxy knows its framing: a body is forwarded
    // only on POST, decoded, recorded and with its own Content-Length; any other method with a body
    // is refused (forwarded raw it would be a second request on the upstream's connection).
    const raw = await readBody(req, maxBody);
    if (raw === undefined) {
      // The rest of the body is unread: this connection's framing is lost, so it is closed.
      refuse(res, 413, { code: 'BODY_TOO_LARGE', message: `body larger than ${maxBody} bytes` });
      return;
    }
    if (method !== 'POST' && raw.length > 0) {
      refuse(res, 400, { code: 'BODY_NOT_ALLOWED', message: `a ${method} request carries no body` });
      return;
    }
    let body: Buffer | undefined;
    let forwardContentType: string | undefined;
    /**
     * An `initialize` outside a session: the server names the session in its answer's headers, so the
     * request is recorded once that name is known, under it, and the answer is held until then.
     */
    let initialize: DecodedBody | undefined;
    let decoded: DecodedBody | undefined;
    if (method === 'POST') {
      try {
        decoded = await decodeBody(
          raw,
          header(req.headers, 'content-encoding'),
          header(req.headers, 'content-type'),
          maxBody,
        );
      } catch (err) {
        if (!(err instanceof BodyRefusedError)) throw err;
        // The client speaks JSON-RPC: the refusal is a JSON-RPC error (no id could be read).
        const error = { code: -32600, message: err.message, data: { vigil: err.code } };
        refuse(res, err.status, { jsonrpc: '2.0', id: null, error });
        return;
      }
      body = decoded.bytes;
      forwardContentType = decoded.contentType;
      // Mirrored headers checked against the body (2026-07-28): a disagreement is recorded, and the
      // server, which must refuse it, answers. Bodies of older revisions without the headers are
      // not parsed twice.
      if (
        requestFacts.mcpMethod !== undefined ||
        requestFacts.mcpName !== undefined ||
        (requestFacts.mcpProtocolVersion ?? '') >= MIRRORED_HEADERS_SINCE
      ) {
        const mismatches = headerMismatches(requestFacts, parseMessage(decoded.text));
        if (mismatches.length > 0) requestFacts.mcpHeaderMismatch = mismatches;
      }
      if (mcpSessionId === undefined && isInitializeRequest(decoded.text)) initialize = decoded;
    }
    if (method === 'POST' && initialize === undefined && decoded !== undefined) {
      const messageContext = context(requestSession, requestFacts, mcpSessionId);
      // `wire` commits to the bytes forwarded upstream (the decoded text as UTF-8), which is what the
      // server acts on; the coding the client sent them in is recorded beside it
      // (http.contentEncoding, and the content type's charset in http.contentType).
      const observation =
        decoded.text.length > 0
          ? capture.observeText('client_to_server', decoded.text, messageContext, decoded.bytes)
          : undefined;
      const recorded = observation?.gate ?? capture.event(httpRequestRecord());
      try {
        await recorded;
      } catch (err) {
        const refusal = observation && refusalOf(observation.classified, (err as Error).message);
        if (refusal !== undefined) {
          const text = JSON.stringify(refusal);
          capture.observeText('server_to_client', text, {
            ...context(requestSession, { ...requestFacts, status: 200 }, mcpSessionId),
            synthesized: true,
          });
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(text);
          return;
        }
        warn(`forwarding a message whose record failed: ${(err as Error).message}`);
      }
    } else if (initialize === undefined) {
      // No message in it, but the server acts on it (opens a stream, ends a session): recorded too.
      await capture
        .event(httpRequestRecord())
        .catch((err: unknown) => warn(`forwarding a request whose record failed: ${String(err)}`));
    }

    const headers: Record<string, string | string[]> = {};
    for (const [k, v] of Object.entries(req.headers)) {
      if (v !== undefined && !HOP_BY_HOP.has(k) && !REWRITTEN.has(k)) headers[k] = v;
    }
    headers['host'] = upstream.host;
    headers['accept-encoding'] = 'identity';
    if (body !== undefined) {
      headers['content-length'] = String(body.length);
      if (forwardContentType !== undefined) headers['content-type'] = forwardContentType;
    }
    const forwardedFor = req.socket.remoteAddress;
    if (forwardedFor !== undefined) {
      const prior = header(req.headers, 'x-forwarded-for');
      headers['x-forwarded-for'] = prior === undefined ? forwardedFor : `${prior}, ${forwardedFor}`;
    }
    const target = new URL(url.pathname + url.search, upstream);
    const upstreamReq = client.request(target, { method, headers });
    // A client disconnect is seen on the response, not the request (MCP.md 3.3 "proxy gotcha").
    res.on('close', () => {
      if (!res.writableFinished) upstreamReq.destroy();
    });
    const upstreamRes = await new Promise<IncomingMessage | Error>((resolve) => {
      upstreamReq.once('response', resolve);
      upstreamReq.once('error', resolve);
      upstreamReq.end(body);
    });
    if (upstreamRes instanceof Error && initialize !== undefined) {
      // Never reached the server: recorded under its exchange, with the 502 that answers it.
      await capture
        .observeText(
          'client_to_server',
          initialize.text,
          context(requestSession, requestFacts, undefined),
          initialize.bytes,
        )
        .gate.catch((err: unknown) => warn(`could not record an initialize request: ${String(err)}`));
    }
    if (upstreamRes instanceof Error) {
      if (!res.headersSent && !res.destroyed) {
        res.writeHead(502, { 'content-type': 'application/json' });
        res.end(
          JSON.stringify({ code: 'UPSTREAM_UNAVAILABLE', message: `upstream: ${upstreamRes.message}` }),
        );
      }
      return;
    }
    const status = upstreamRes.statusCode ?? 502;
    const newSessionId = header(upstreamRes.headers, 'mcp-session-id');
    const sid = mcpSessionId ?? newSessionId;
    const session = sid ?? requestSession;
    if (initialize !== undefined) {
      // Recorded under the session the answer creates (so a search by session finds the clientInfo),
      // before the answer reaches the client. When the log refuses it (sync mode), the client gets the
      // refusal, never the session, and the proxy ends the session the server opened.
      const observation = capture.observeText(
        'client_to_server',
        initialize.text,
        context(session, requestFacts, newSessionId),
        initialize.bytes,
      );
      try {
        await observation.gate;
      } catch (err) {
        const refusal = refusalOf(observation.classified, (err as Error).message);
        if (refusal === undefined) throw err;
        upstreamRes.resume();
        const text = JSON.stringify(refusal);
        capture.observeText('server_to_client', text, {
          ...context(session, { ...requestFacts, status: 200 }, newSessionId),
          synthesized: true,
        });
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(text);
        if (newSessionId !== undefined) endUpstreamSession(target, headers, newSessionId);
        return;
      }
    }
    if (mcpSessionId === undefined && newSessionId !== undefined)
      capture.moveSession(requestSession, newSessionId);
    const contentType = header(upstreamRes.headers, 'content-type') ?? '';
    const responseFacts: HttpFacts = { ...requestFacts, status, contentType };
    if (sid !== undefined) responseFacts.mcpSessionId = sid;
    const outHeaders: Record<string, string | string[]> = {};
    for (const [k, v] of Object.entries(upstreamRes.headers)) {
      if (v !== undefined && !HOP_BY_HOP.has(k)) outHeaders[k] = v;
    }
    upstreamRes.on('error', () => res.destroy());
    /** Messages (or oversized markers) recorded from the answer; none: its status is recorded alone. */
    let answers = 0;

    if (contentType.startsWith('text/event-stream')) {
      res.writeHead(status, outHeaders);
      res.flushHeaders();
      let legacySession = session;
      const parser = new SseParser({
        maxEventChars: maxBody,
        oversizeHasher: () => capture.oversizeHasher(),
      });
      // What the server sends never waits for the log or the spool (capture.ts, audit modes): each
      // chunk is forwarded as it arrives and its events recorded right after.
      /** Records the events; returns the session and classification of the last message recorded. */
      const record = (
        chunkEvents: ReturnType<SseParser['push']>,
      ): { session: string; classified: ClassifiedMessage } | undefined => {
        let last: { session: string; classified: ClassifiedMessage } | undefined;
        for (const event of chunkEvents) {
          if (event.event === 'endpoint') {
            // Legacy HTTP+SSE: the POST URL names the session the stream belongs to.
            const id = new URL(event.data, 'http://proxy.invalid').searchParams.get('sessionId');
            if (id !== null) legacySession = id;
            continue;
          }
          // Priming events (an id, empty data) and keep-alive comments carry no message.
          if (event.data === '' && event.oversized === undefined) continue;
          if (event.id !== undefined && !remember(`${legacySession}\u0000${event.id}`)) continue;
          const facts: HttpFacts = { ...responseFacts };
          if (event.id !== undefined) facts.eventId = event.id;
          const sessionId = sid ?? (legacySession !== session ? legacySession : undefined);
          answers++;
          if (event.oversized !== undefined) {
            recordOversized(
              context(legacySession, facts, sessionId),
              event.oversized.size,
              event.oversized.wire,
            );
            continue;
          }
          const { classified } = capture.observeText(
            'server_to_client',
            event.data,
            context(legacySession, facts, sessionId),
          );
          last = { session: legacySession, classified };
        }
        return last;
      };
      // `--receipts`: events are forwarded whole, each once recorded, with the receipts in the
      // message's `_meta` (the rest of the event's bytes unchanged).
      const events = capture.receipts ? new SseBlocks(maxBody) : undefined;
      const forwardBlock = (block: Buffer): boolean => {
        const chunkEvents = parser.push(block);
        const seen = record(chunkEvents);
        const data = chunkEvents.length === 1 ? chunkEvents[0]?.data : undefined;
        if (seen === undefined || data === undefined || data === '') return res.write(block);
        const decorated = capture.decorate(seen.session, seen.classified, data);
        return res.write(decorated === data ? block : replaceOnce(block, data, decorated));
      };
      // Backpressure: a slow client pauses the upstream instead of growing the proxy's buffers.
      res.on('drain', () => upstreamRes.resume());
      upstreamRes.on('data', (chunk: Buffer) => {
        if (events === undefined) {
          if (!res.write(chunk)) upstreamRes.pause();
          record(parser.push(chunk));
          return;
        }
        let ok = true;
        for (const block of events.push(chunk)) ok = forwardBlock(block) && ok;
        if (!ok) upstreamRes.pause();
      });
      await new Promise<void>((resolve) => {
        upstreamRes.once('end', resolve);
        upstreamRes.once('close', resolve);
      });
      if (events !== undefined) {
        const rest = events.end();
        if (rest.length > 0) forwardBlock(rest);
      }
      record(parser.end());
      if (!res.destroyed) res.end();
    } else if (contentType.startsWith('application/json')) {
      const chunks: Buffer[] = [];
      let size = 0;
      let streaming: OversizeHasher | undefined;
      for await (const chunk of upstreamRes) {
        size += (chunk as Buffer).length;
        if (streaming === undefined && size > maxBody) {
          // Too large to hold: forwarded as it comes, recorded as its size and salted digest.
          streaming = capture.oversizeHasher();
          res.writeHead(status, outHeaders);
          for (const c of chunks) {
            streaming.update(c);
            res.write(c);
          }
          chunks.length = 0;
        }
        if (streaming === undefined) chunks.push(chunk as Buffer);
        else {
          streaming.update(chunk as Buffer);
          if (!res.write(chunk)) await writable(res);
        }
      }
      if (streaming !== undefined) {
        res.end();
        answers++;
        recordOversized(context(session, responseFacts, sid), size, streaming.digest());
      } else {
        const payload = Buffer.concat(chunks);
        if (capture.receipts && payload.length > 0) {
          // `--receipts`: recorded as the server sent it, forwarded with the receipts in `_meta`.
          answers++;
          const text = payload.toString('utf8');
          const { classified } = capture.observeText(
            'server_to_client',
            text,
            context(session, responseFacts, sid),
            payload,
          );
          const decorated = capture.decorate(session, classified, text);
          const out = decorated === text || !isUtf8(payload) ? payload : Buffer.from(decorated);
          outHeaders['content-length'] = String(out.length);
          res.writeHead(status, outHeaders);
          res.end(out);
        } else {
          outHeaders['content-length'] = String(payload.length);
          res.writeHead(status, outHeaders);
          res.end(payload);
        }
        // Forwarded first, recorded right after: answers never wait for the log or the spool.
        if (payload.length > 0 && !capture.receipts) {
          answers++;
          capture.observeText(
            'server_to_client',
            payload.toString('utf8'),
            context(session, responseFacts, sid),
            payload,
          );
        }
      }
    } else {
      res.writeHead(status, outHeaders);
      upstreamRes.pipe(res);
      await new Promise<void>((resolve) => res.once('close', resolve));
    }

    if (answers === 0 && !(method === 'POST' && status === 202)) {
      // An answer without a message (a DELETE's, a refused GET's, an error page): its status is the
      // evidence, filed under the same session as the request. A POST's 202 is the normal acceptance
      // of a notification or an answer, already recorded as the message it accepted.
      await capture
        .event({
          kind: MCP_KINDS.httpResponse,
          session,
          principal: principal as unknown as JsonObject,
          http: responseFacts as unknown as JsonObject,
        })
        .catch((err: unknown) => warn(`could not record an answer: ${String(err)}`));
    }

    // Session ends: DELETE accepted, or the server no longer knows it; a stateless exchange ends here.
    if (req.method === 'DELETE' && status >= 200 && status < 300 && sid !== undefined) {
      await capture.endSession(sid, 'session_deleted').catch((err: unknown) => warn(String(err)));
    } else if (status === 404 && mcpSessionId !== undefined) {
      await capture.endSession(mcpSessionId, 'session_not_found').catch((err: unknown) => warn(String(err)));
    } else if (sid === undefined && !url.searchParams.has('sessionId')) {
      await capture.endSession(requestSession, 'stream_closed').catch((err: unknown) => warn(String(err)));
    }
  };

  const listener = (req: IncomingMessage, res: ServerResponse): void => {
    handle(req, res).catch((err: unknown) => {
      warn(`proxy error: ${(err as Error).message}`);
      if (!res.headersSent) {
        res.writeHead(500, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ code: 'INTERNAL', message: 'internal error' }));
      } else {
        res.destroy();
      }
    });
  };
  const server =
    options.tlsCertFile !== undefined && options.tlsKeyFile !== undefined
      ? https.createServer(
          { cert: await readFile(options.tlsCertFile), key: await readFile(options.tlsKeyFile) },
          listener,
        )
      : http.createServer(listener);
  // Long-lived SSE streams must not be cut by the server's request timeout.
  server.requestTimeout = 0;
  server.headersTimeout = 60_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => resolve());
  });
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return {
    url: `${scheme}://${host}:${address.port}${upstream.pathname}`,
    port: address.port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/**
 * The client's address facts of a request (OTel `client.address`/`client.port`). The TCP peer is the
 * client unless `trustProxy`: then the first `X-Forwarded-For` address, when it is an IP address
 * (anything else there is ignored), with the peer kept as `network.peer.*`. Without `trustProxy` the
 * header is ignored: any client can write one.
 */
export function clientAddressOf(req: IncomingMessage, trustProxy: boolean): Partial<HttpFacts> {
  const peer: Partial<HttpFacts> = {};
  if (req.socket.remoteAddress !== undefined) peer['client.address'] = req.socket.remoteAddress;
  if (req.socket.remotePort !== undefined) peer['client.port'] = req.socket.remotePort;
  if (!trustProxy) return peer;
  const first = header(req.headers, 'x-forwarded-for')?.split(',')[0]?.trim();
  if (first === undefined || isIP(first) === 0) return peer;
  const facts: Partial<HttpFacts> = { 'client.address': first };
  if (peer['client.address'] !== undefined) facts['network.peer.address'] = peer['client.address'];
  if (peer['client.port'] !== undefined) facts['network.peer.port'] = peer['client.port'];
  return facts;
}

/**
 * Whether a POST body is a single `initialize` request (a cheap text test first: most bodies are not).
 */
function isInitializeRequest(text: string): boolean {
  if (!text.includes('"initialize"')) return false;
  const classified = parseMessage(text);
  return classified.type === 'request' && classified.method === 'initialize';
}

/**
 * Ends a session the upstream opened for an `initialize` the proxy then refused to answer (its record
 * was not acknowledged): the client never learns the session id, so nobody else would end it.
 * Best effort: the upstream forgets unused sessions in its own time anyway.
 */
function endUpstreamSession(
  target: URL,
  forwarded: Record<string, string | string[]>,
  sessionId: string,
): void {
  const headers: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(forwarded)) if (!k.startsWith('content-')) headers[k] = v;
  headers['mcp-session-id'] = sessionId;
  const client = target.protocol === 'https:' ? https : http;
  const req = client.request(target, { method: 'DELETE', headers });
  req.on('response', (r: IncomingMessage) => r.resume());
  req.on('error', () => {});
  req.end();
}

/** Resolves when `res` takes more bytes again, or is closed (a client that left). */
function writable(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.once('drain', done);
    res.once('close', done);
  });
}

/** Reads a request body up to `max` bytes; undefined when larger. */
async function readBody(req: IncomingMessage, max: number): Promise<Buffer | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > max) return undefined;
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

/**
 * Splits an SSE byte stream into whole events, each with the blank line that ends it (LF or CRLF
 * lines). Holds at most `max` bytes: past that, what it holds is given out as it is (forwarded
 * without receipts) rather than kept.
 */
class SseBlocks {
  private held: Buffer = Buffer.alloc(0);
  private readonly max: number;
  constructor(max: number) {
    this.max = max;
  }

  push(chunk: Buffer): Buffer[] {
    this.held = this.held.length === 0 ? chunk : Buffer.concat([this.held, chunk]);
    const out: Buffer[] = [];
    let start = 0;
    for (let i = 0; i < this.held.length; i++) {
      if (this.held[i] !== 10) continue;
      // A line ends at i; the event ends when the next line is empty (LF or CRLF).
      const next = this.held[i + 1] === 13 ? i + 2 : i + 1;
      if (this.held[next] === 10) {
        out.push(this.held.subarray(start, next + 1));
        start = next + 1;
        i = next;
      }
    }
    this.held = this.held.subarray(start);
    if (this.held.length > this.max) {
      out.push(this.held);
      this.held = Buffer.alloc(0);
    }
    return out;
  }

  end(): Buffer {
    const rest = this.held;
    this.held = Buffer.alloc(0);
    return rest;
  }
}

/** `block` with the one occurrence of `from` replaced by `to`; unchanged when not exactly one. */
function replaceOnce(block: Buffer, from: string, to: string): Buffer {
  const text = block.toString('utf8');
  const at = text.indexOf(from);
  if (at < 0 || text.indexOf(from, at + 1) >= 0 || !isUtf8(block)) return block;
  return Buffer.from(text.slice(0, at) + to + text.slice(at + from.length));
}
