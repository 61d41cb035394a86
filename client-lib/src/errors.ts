/**
 * The closed set of error codes the transparency-log core throws. Services map these to HTTP
 * statuses in one place (their plugins/errors.ts); see STYLE.md section 5.
 */
export type TlogErrorCode =
  | 'PROOF_INVALID'
  | 'HASH_INVALID'
  | 'INDEX_OUT_OF_RANGE'
  | 'SIZE_INVALID'
  | 'NOTE_MALFORMED'
  | 'SIGNATURE_INVALID'
  | 'NO_KNOWN_SIGNATURE'
  | 'KEY_MALFORMED'
  | 'CHECKPOINT_MALFORMED'
  | 'COSIGNATURE_INVALID'
  | 'TILE_PATH_INVALID'
  | 'TILE_INVALID'
  | 'BUNDLE_MALFORMED'
  | 'RECEIPT_MALFORMED'
  | 'POLICY_MALFORMED'
  | 'QUORUM_NOT_MET'
  | 'ORIGIN_MISMATCH'
  | 'RECORD_INVALID'
  | 'ENCODING_INVALID'
  | 'RESPONSE_TOO_LARGE'
  | 'POLICY_DUPLICATE_KEY'
  // Evidence bundles (review/bundle.ts): another format, another policy than the reviewer's, a sealed
  // value the log serves that does not match its commitment.
  | 'BUNDLE_FORMAT_UNKNOWN'
  | 'POLICY_MISMATCH'
  | 'SEALED_MISMATCH';

/**
 * The one error class of the core. `code` is from the closed union above; the message is
 * lowercase and carries the numbers ("proof has 3 hashes, want 5"). STYLE.md section 5.
 */
export class TlogError extends Error {
  readonly code: TlogErrorCode;

  constructor(code: TlogErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'TlogError';
    this.code = code;
  }
}

/** Returns whether `err` is a TlogError, optionally with the given code. */
export function isTlogError(err: unknown, code?: TlogErrorCode): err is TlogError {
  return err instanceof TlogError && (code === undefined || err.code === code);
}
