// Strings that reach a Postgres text column: well-formed UTF-16 (a lone surrogate has no UTF-8 form)
// and no NUL (Postgres text cannot hold U+0000; it fails the whole statement).

/** True when `s` can be stored in, or compared against, a text column. */
export function isDbText(s: string): boolean {
  return !s.includes('\u0000') && (s as unknown as { isWellFormed(): boolean }).isWellFormed();
}
