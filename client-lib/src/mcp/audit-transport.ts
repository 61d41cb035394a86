/**
 * `auditTransport(transport, options)`: wraps an MCP TypeScript SDK transport (v1
 * `@modelcontextprotocol/sdk` or v2 `@modelcontextprotocol/client`/`server`; both share the
 * `Transport` contract) so an application records its own view of every message, client or server
 * side, including the server side's `authInfo` (MCP.md 3.6). Typed structurally: client-lib does not
 * depend on the SDK. Browser-safe.
 */
import { type McpCapture, type MessageContext, refusalFor } from './capture.js';
import { claimsPrincipal } from './claims.js';
import { sha256Hex } from './message.js';
import { isSealLevel, type SealLevel } from './seal.js';
import type { Direction, JsonValue, Principal } from './types.js';

/** What the SDK hands `onmessage` beside the message (v1 `MessageExtraInfo`, v2 the same shape). */
export interface MessageExtraLike {
  /** v1 `AuthInfo` / v2 the same: `resource` is a URL, `extra` the validated token's other claims. */
  authInfo?: {
    token?: string;
    clientId?: string;
    scopes?: string[];
    expiresAt?: number;
    resource?: URL | string;
    extra?: Record<string, unknown>;
  };
  requestInfo?: { headers?: Record<string, string | string[] | undefined> };
}

/** The SDK `Transport` contract, structurally. */
export interface TransportLike {
  start(): Promise<void>;
  send(message: unknown, options?: unknown): Promise<void>;
  close(): Promise<void>;
  onclose?: (() => void) | undefined;
  onerror?: ((error: Error) => void) | undefined;
  onmessage?: ((message: never, extra?: never) => void) | undefined;
  sessionId?: string | undefined;
  setProtocolVersion?: ((version: string) => void) | undefined;
}

/** Options of `auditTransport`. */
export interface AuditTransportOptions {
  capture: McpCapture;
  /** Which end this transport is: `client` (sends client-to-server) or `server`. */
  side: 'client' | 'server';
  /** Correlation scope when the transport has no session id (stdio): default a random id per transport. */
  session?: string;
  /**
   * What this transport's records seal (mcp/seal.ts): default the capture's level (`payload` unless
   * the capture was created with another).
   */
  seal?: SealLevel;
}

const randomId = (): string => {
  const bytes = new Uint8Array(16);
  globalThis.crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
};

/**
 * Returns a transport that behaves like `transport` and records every message sent and received.
 * Sync mode: on the client side a request is sent only after the log acknowledged it (else `send`
 * rejects with the audit error, which the SDK turns into a failed request); on the server side an
 * incoming request is handed to the server only after the acknowledgement (else the client gets a
 * JSON-RPC error with the same id). Deliveries keep their order.
 */
export function auditTransport<T extends TransportLike>(transport: T, options: AuditTransportOptions): T {
  const { capture, side, seal } = options;
  if (seal !== undefined && !isSealLevel(seal))
    throw new TypeError(`seal must be none, payload or all, not ${String(seal)}`);
  const fallbackSession = options.session ?? `transport:${randomId()}`;
  const outgoing: Direction = side === 'client' ? 'client_to_server' : 'server_to_client';
  const incoming: Direction = side === 'client' ? 'server_to_client' : 'client_to_server';
  /** Whether a session id was seen: before it, messages are filed under `fallbackSession`. */
  let sessionSeen = false;
  const context = (principal?: Principal): MessageContext => {
    const sessionId = transport.sessionId;
    if (sessionId !== undefined && !sessionSeen) {
      // Streamable HTTP: the `initialize` went out before the server assigned the session; its
      // answer (and everything after) belongs to the session, so its open request moves there.
      sessionSeen = true;
      capture.moveSession(fallbackSession, sessionId);
    }
    const c: MessageContext = { session: sessionId ?? fallbackSession };
    if (sessionId !== undefined) c.mcpSessionId = sessionId;
    if (principal !== undefined) c.principal = principal;
    if (seal !== undefined) c.seal = seal;
    return c;
  };
  let delivery: Promise<void> = Promise.resolve();
  let userOnMessage: ((message: unknown, extra?: unknown) => void) | undefined;
  let userOnClose: (() => void) | undefined;

  const setOnClose = (fn: (() => void) | undefined): void => {
    userOnClose = fn;
    transport.onclose = () => {
      const session = transport.sessionId ?? fallbackSession;
      void delivery
        .then(() => capture.endSession(session, 'transport_closed', seal))
        .catch(() => {})
        .finally(() => userOnClose?.());
    };
  };
  const setOnMessage = (fn: ((message: unknown, extra?: unknown) => void) | undefined): void => {
    userOnMessage = fn;
    transport.onmessage = ((message: unknown, extra?: MessageExtraLike) => {
      const observation = capture.observeValue(incoming, message as JsonValue, context(principalOf(extra)));
      delivery = delivery.then(async () => {
        try {
          await observation.gate;
        } catch (err) {
          const { classified } = observation;
          if (side === 'server' && classified.type === 'request' && classified.id != null) {
            const refusal = refusalFor(classified.id, (err as Error).message);
            capture.observeValue('server_to_client', refusal, { ...context(), synthesized: true });
            await transport.send(refusal).catch(() => {});
            return;
          }
        }
        userOnMessage?.(message, extra);
      });
    }) as never;
  };
  const send = async (message: unknown, sendOptions?: unknown): Promise<void> => {
    const observation = capture.observeValue(outgoing, message as JsonValue, context());
    await observation.gate;
    await transport.send(message, sendOptions);
  };
  // A Proxy rather than a copy: every other member (sessionId, terminateSession, protocolVersion, ...)
  // stays the transport's own, with `this` bound to it, so its internal state is never split.
  const wrapper = new Proxy(transport, {
    get(target, prop) {
      if (prop === 'send') return send;
      if (prop === 'onmessage') return userOnMessage;
      if (prop === 'onclose') return userOnClose;
      const value: unknown = Reflect.get(target, prop, target);
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
    set(target, prop, value) {
      if (prop === 'onmessage') setOnMessage(value as typeof userOnMessage);
      else if (prop === 'onclose') setOnClose(value as typeof userOnClose);
      else return Reflect.set(target, prop, value, target);
      return true;
    },
  });
  return wrapper;
}

/**
 * The principal the SDK authenticated (`authInfo`, set by its bearer-auth middleware or an HTTP
 * transport's caller), with the fields the proxy's JWT principal uses (mcp/claims.ts): type `jwt` when
 * its `extra` claims hold a `sub` (iss, aud, client_id, resource, act, cnf.jkt read from them), else
 * `token`; both with the SDK's clientId, scopes, expiresAt and resource, and the token's SHA-256.
 */
export function principalOf(extra: MessageExtraLike | undefined): Principal | undefined {
  const auth = extra?.authInfo;
  if (auth === undefined || auth === null) return undefined;
  const tokenSha256 = typeof auth.token === 'string' ? sha256Hex(auth.token) : undefined;
  const claims = typeof auth.extra === 'object' && auth.extra !== null ? auth.extra : {};
  const jwt = tokenSha256 === undefined ? undefined : claimsPrincipal(claims, tokenSha256);
  const p: Principal = jwt ?? { type: 'token' };
  if (p.type === 'token' && tokenSha256 !== undefined) p.tokenSha256 = tokenSha256;
  if (p.type !== 'jwt' && p.type !== 'token') return p;
  if (typeof auth.clientId === 'string') p.clientId = auth.clientId;
  if (Array.isArray(auth.scopes)) p.scopes = auth.scopes.filter((x) => typeof x === 'string');
  if (typeof auth.expiresAt === 'number' && Number.isFinite(auth.expiresAt)) p.expiresAt = auth.expiresAt;
  if (auth.resource !== undefined && auth.resource !== null) p.resource = String(auth.resource);
  return p;
}
