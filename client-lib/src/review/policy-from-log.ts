/**
 * A tlog-policy for a log from what its `GET /v1/log` says (`vigil policy`): the log key, the configured
 * witnesses and the quorum as k of those witnesses. This is trust on first use: whoever answered
 * `/v1/log` chose every key in it, so the result must be compared with a copy obtained out of band
 * before it is pinned. c2sp.org/tlog-policy.
 */
import type { LogInfo } from '../client.js';
import { parseVerifierKey } from '../note/index.js';
import { formatPolicy, parsePolicy, type Policy } from '../policy/index.js';

const NAME = /^[\x21-\x22\x24-\x7e]+$/;

/**
 * The policy text for `info` (the log's own description of itself) at `url`. Requires the log key's
 * name to equal the origin, witness names without spaces or `#`, and 0 <= quorum <= witnesses; quorum 0
 * (or no witnesses) gives `quorum none`, k >= 1 a group `witnesses-k-of-n`. Throws RangeError otherwise;
 * the text is checked by parsePolicy before it is returned.
 */
export function policyFromLogInfo(info: LogInfo, url?: string): { text: string; policy: Policy } {
  const key = parseVerifierKey(info.vkey);
  if (key.name !== info.origin)
    throw new RangeError(
      `the log key is named ${JSON.stringify(key.name)}, the origin is ${JSON.stringify(info.origin)}`,
    );
  if (url !== undefined && !NAME.test(url)) throw new RangeError('the log URL has spaces or #');
  for (const w of info.witnesses) {
    if (!NAME.test(w.name) || w.name === 'none')
      throw new RangeError(`witness name ${JSON.stringify(w.name)} cannot appear in a policy`);
    if (w.url !== undefined && !NAME.test(w.url))
      throw new RangeError(`witness ${w.name} has a URL with spaces or #`);
  }
  const n = info.witnesses.length;
  if (!Number.isSafeInteger(info.quorum) || info.quorum < 0 || info.quorum > n)
    throw new RangeError(`quorum ${String(info.quorum)} is not between 0 and the ${n} witness(es)`);
  const lines = [`log ${info.vkey}${url === undefined ? '' : ` ${url}`}`];
  for (const w of info.witnesses)
    lines.push(`witness ${w.name} ${w.vkey}${w.url === undefined ? '' : ` ${w.url}`}`);
  if (info.quorum === 0) lines.push('quorum none');
  else {
    let group = `witnesses-${info.quorum}-of-${n}`;
    while (info.witnesses.some((w) => w.name === group)) group += '_';
    lines.push(
      `group ${group} ${info.quorum} ${info.witnesses.map((w) => w.name).join(' ')}`,
      `quorum ${group}`,
    );
  }
  const policy = parsePolicy(lines.join('\n') + '\n');
  return { text: formatPolicy(policy), policy };
}
