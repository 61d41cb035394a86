/**
 * The witness's error codes. The HTTP status of each lives in one place, `plugins/errors.ts`; domain
 * code only throws `WitnessError` with a code (STYLE.md section 5).
 */
export type WitnessErrorCode =
  | 'ORIGIN_UNKNOWN'
  | 'SIGNATURE_INVALID'
  | 'REQUEST_MALFORMED'
  | 'SIZE_CONFLICT'
  | 'PROOF_INVALID'
  | 'RATE_LIMITED'
  | 'NOT_FOUND'
  | 'LOG_EXISTS';

/** An error with a closed code. `size` is set for SIZE_CONFLICT: the size the witness holds. */
export class WitnessError extends Error {
  readonly code: WitnessErrorCode;
  readonly size: bigint | undefined;

  constructor(code: WitnessErrorCode, message: string, options?: { cause?: unknown; size?: bigint }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'WitnessError';
    this.code = code;
    this.size = options?.size;
  }
}

/** True when `err` is a WitnessError with the given code. */
export function isWitnessError(err: unknown, code?: WitnessErrorCode): err is WitnessError {
  return err instanceof WitnessError && (code === undefined || err.code === code);
}
