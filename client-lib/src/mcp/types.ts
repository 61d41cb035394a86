/**
 * Shared types of the MCP capture layer. Browser-safe: no `node:` imports.
 */

/** Which way a message travelled. */
export type Direction = 'client_to_server' | 'server_to_client';

/** Which side of an MCP conversation issued a request (its id lives in that side's id space). */
export type Side = 'client' | 'server';

/** The transport a message was captured on. */
export type McpTransportName = 'stdio' | 'streamable-http' | 'http+sse' | 'sdk';

/** A JSON value as `JSON.parse` produces it. */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/** A JSON object. */
export type JsonObject = { [key: string]: JsonValue };

/**
 * Who sent a message, as far as the capturing side can tell. `jwt`: a bearer token that validated
 * against a key the operator trusts (sub and client_id are its claims); `token`: a bearer token we could
 * not or did not validate, identified only by the SHA-256 of the token; `process`: the local OS user
 * (stdio); `sdk`: what the SDK handed over as `authInfo`; `anonymous`: no credential at all.
 */
export type Principal =
  | {
      type: 'jwt';
      sub: string;
      /** `client_id` (RFC 9068), else `azp`. */
      clientId?: string;
      iss?: string;
      aud?: string | string[];
      /** RFC 8707 resource indicator(s), when the token carries them. */
      resource?: string | string[];
      /**
       * RFC 8693 delegation chain from the nested `act` claims, the current actor first: each actor's
       * string claims (`sub`, `iss`, `client_id`, ...), without its own nested `act`.
       */
      act?: Record<string, string>[];
      /** RFC 9449 `cnf.jkt`: the thumbprint of the key the token is bound to (DPoP). */
      cnfJkt?: string;
      /** With `cnfJkt`: whether the request carried a valid DPoP proof made with that key. */
      dpop?: 'verified' | 'missing' | 'invalid';
      tokenSha256: string;
      /** From the SDK's `authInfo` (server side of `auditTransport`): granted scopes, expiry (s). */
      scopes?: string[];
      expiresAt?: number;
    }
  | {
      /** A token whose claims were not read (no `sub`): its SHA-256, and what the SDK's `authInfo` says. */
      type: 'token';
      /** Absent only when the SDK's `authInfo` carried no token. */
      tokenSha256?: string;
      clientId?: string;
      scopes?: string[];
      expiresAt?: number;
      resource?: string | string[];
    }
  | {
      type: 'process';
      user: string;
      uid?: number;
      /** The capturing process (the stdio wrapper). */
      pid?: number;
      /**
       * The process that spawned the wrapper: the MCP client (or the launcher it used, such as npx).
       * `command` is its argv from /proc/<pid>/cmdline when readable (Linux), cut at 8 KiB
       * (`commandTruncated`); `uid` its real uid from /proc/<pid>/status.
       */
      parent?: { pid: number; uid?: number; command?: string[]; commandTruncated?: boolean };
    }
  | { type: 'sdk'; clientId?: string; scopes?: string[]; tokenSha256?: string }
  | { type: 'anonymous' };

/** Selected HTTP facts of the exchange that carried a message (header values verbatim). */
export interface HttpFacts {
  method: string;
  path: string;
  status?: number;
  contentType?: string;
  /** The request's `Content-Encoding`: the recorded body is the decoded one (proxy). */
  contentEncoding?: string;
  mcpMethod?: string;
  mcpName?: string;
  mcpProtocolVersion?: string;
  mcpSessionId?: string;
  lastEventId?: string;
  eventId?: string;
  origin?: string;
  traceparent?: string;
  /**
   * SHA-256 hex of the whole Authorization header value; never the value itself. An unsalted digest
   * of a secret: records carry it sealed (salted) unless capture runs with `seal: 'none'`.
   */
  authorizationSha256?: string;
  /**
   * The client's network address (OTel `client.address`): the TCP peer, or behind a trusted reverse
   * proxy (`--trust-proxy`) the first address of `X-Forwarded-For`. `client.port` is the peer's port
   * when the address is the peer's (a forwarded address carries no port).
   */
  'client.address'?: string;
  'client.port'?: number;
  /** The TCP peer (the reverse proxy), when `client.address` came from `X-Forwarded-For`. */
  'network.peer.address'?: string;
  'network.peer.port'?: number;
  /**
   * The mirrored headers (`Mcp-Method`, `Mcp-Name`) that disagree with the body, each as
   * `<Header>: missing|differs|undecodable` (mcp/header-check.ts); absent when they agree.
   */
  mcpHeaderMismatch?: string[];
}

/** Options of one record handed to a sink. */
export interface RecordOptions {
  /** Content-addressed payloads referenced from the fields by `{"$blob":{sha256,size}}`. */
  blobs?: Record<string, Uint8Array>;
  /**
   * true: resolve only once the log acknowledged the record (sync mode, client-to-server requests).
   * false: resolve once the record is durable locally (spool) or queued.
   */
  acknowledged?: boolean;
  /** With `acknowledged`: how long the log may take (ms), when longer than the sink's default. */
  timeoutMs?: number;
}

/**
 * Where capture sends records. `createEmitter` from the emitter module fits through
 * `sinkFromEmitter`; tests use `MemorySink`. `record` must keep call order: records of one sink form
 * one stream.
 */
export interface RecordSink {
  /**
   * Writes one record. An acknowledged record may resolve with the log's answer (its index and
   * tlog-proof@v1 receipt), which `--receipts` hands back to the MCP client.
   */
  record(fields: JsonObject, options?: RecordOptions): Promise<RecordAck | void>;
  close(): Promise<void>;
}

/** The log's answer for an acknowledged record: where it is, and the receipt proving it. */
export interface RecordAck {
  /** The entry's index in the log, as decimal text. */
  index: string;
  /** The tlog-proof@v1 text, verifiable offline with `verifyReceipt`. */
  receipt: string;
}

/** Audit mode, DESIGN.md "MCP capture". */
export type AuditMode = 'sync' | 'spool';
