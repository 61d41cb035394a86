/**
 * What the reviewer enters once per log: the tlog-policy (localStorage: it is public key material the
 * reviewer pinned, worth keeping) and the reader token (sessionStorage: a bearer secret must not outlive
 * the tab). Both are keyed by the log's origin line, so two logs never share them. The token is never
 * rendered back, never logged.
 */
import { parsePolicy, type Policy } from '@vigil/client';

const POLICY_KEY = (origin: string) => `vigil.policy:${origin}`;
const TOKEN_KEY = (origin: string) => `vigil.reader-token:${origin}`;

export interface LoadedPolicy {
  text: string;
  policy: Policy;
}

/** The stored policy of `origin`, parsed; undefined when none (or when it no longer parses). */
export function storedPolicy(origin: string): LoadedPolicy | undefined {
  const text = localStorage.getItem(POLICY_KEY(origin));
  if (text === null) return undefined;
  try {
    return { text, policy: parsePolicy(text) };
  } catch {
    return undefined;
  }
}

/** Parses `text` (throws the parser's TlogError) and keeps it for `origin`. */
export function savePolicy(origin: string, text: string): LoadedPolicy {
  const policy = parsePolicy(text);
  localStorage.setItem(POLICY_KEY(origin), text);
  return { text, policy };
}

export function forgetPolicy(origin: string): void {
  localStorage.removeItem(POLICY_KEY(origin));
}

export function storedToken(origin: string): string | undefined {
  return sessionStorage.getItem(TOKEN_KEY(origin)) ?? undefined;
}

export function saveToken(origin: string, token: string): void {
  sessionStorage.setItem(TOKEN_KEY(origin), token);
}

export function forgetToken(origin: string): void {
  sessionStorage.removeItem(TOKEN_KEY(origin));
}
