import { base64Decode, base64Encode, parseDecimal } from '@vigil/client';
import { WitnessError } from '../errors.js';

/** A parsed tlog-witness add-checkpoint request. */
export interface AddCheckpointRequest {
  oldSize: bigint;
  proof: Uint8Array[];
  /** The signed checkpoint note, verbatim. */
  note: string;
}

/** c2sp.org/tlog-witness: "The consistency proof MUST be at most 63 hashes." */
export const MAX_PROOF_HASHES = 63;

/**
 * Parses an add-checkpoint body: `old <size>\n`, 0..63 base64 proof hashes one a line, an empty line,
 * then the checkpoint note. Every line ends in `\n`. c2sp.org/tlog-witness "add-checkpoint".
 * Throws WitnessError REQUEST_MALFORMED (400) on any deviation.
 */
export function parseAddCheckpointRequest(body: string): AddCheckpointRequest {
  const malformed = (message: string) => new WitnessError('REQUEST_MALFORMED', message);
  let pos = body.indexOf('\n');
  if (pos < 0) throw malformed('request has no old line');
  const oldLine = body.slice(0, pos);
  if (!oldLine.startsWith('old ')) throw malformed('request does not start with an old line');
  let oldSize: bigint;
  try {
    oldSize = parseDecimal(oldLine.slice(4));
  } catch (err) {
    throw new WitnessError('REQUEST_MALFORMED', 'old size is not a canonical decimal', { cause: err });
  }
  const proof: Uint8Array[] = [];
  for (;;) {
    const start = pos + 1;
    pos = body.indexOf('\n', start);
    if (pos < 0) throw malformed('request has no empty line before the checkpoint');
    const line = body.slice(start, pos);
    if (line === '') break;
    if (proof.length === MAX_PROOF_HASHES) throw malformed(`proof has more than ${MAX_PROOF_HASHES} hashes`);
    let hash: Uint8Array;
    try {
      hash = base64Decode(line);
    } catch (err) {
      throw new WitnessError('REQUEST_MALFORMED', `proof hash ${proof.length} is not base64`, { cause: err });
    }
    if (hash.length !== 32) throw malformed(`proof hash ${proof.length} has ${hash.length} bytes, want 32`);
    proof.push(hash);
  }
  const note = body.slice(pos + 1);
  if (note === '') throw malformed('request has no checkpoint');
  return { oldSize, proof, note };
}

/** Formats an add-checkpoint body (the inverse of parseAddCheckpointRequest; used by tests and tools). */
export function formatAddCheckpointRequest(request: AddCheckpointRequest): string {
  const proof = request.proof.map((hash) => `${base64Encode(hash)}\n`).join('');
  return `old ${request.oldSize}\n${proof}\n${request.note}`;
}
