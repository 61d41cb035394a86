// A slow, literal RFC 6962 section 2.1 reference (MTH, PATH, PROOF/SUBPROOF), written straight
// from SPECS.md section 1 to check the fast code against. Uses node:crypto directly on purpose:
// it must not share code with client-lib/src.
import { createHash } from 'node:crypto';

const sha = (...parts: Uint8Array[]): Uint8Array => {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return new Uint8Array(h.digest());
};

export const refLeafHash = (d: Uint8Array): Uint8Array => sha(Uint8Array.of(0), d);
const node = (l: Uint8Array, r: Uint8Array): Uint8Array => sha(Uint8Array.of(1), l, r);

function k(n: number): number {
  let p = 1;
  while (p * 2 < n) p *= 2;
  return p;
}

/** MTH(D[n]) over leaf data. */
export function refMTH(d: Uint8Array[]): Uint8Array {
  if (d.length === 0) return sha();
  if (d.length === 1) return refLeafHash(d[0]!);
  const s = k(d.length);
  return node(refMTH(d.slice(0, s)), refMTH(d.slice(s)));
}

/** PATH(m, D[n]). */
export function refPATH(m: number, d: Uint8Array[]): Uint8Array[] {
  if (d.length === 1) return [];
  const s = k(d.length);
  if (m < s) return [...refPATH(m, d.slice(0, s)), refMTH(d.slice(s))];
  return [...refPATH(m - s, d.slice(s)), refMTH(d.slice(0, s))];
}

function subproof(m: number, d: Uint8Array[], b: boolean): Uint8Array[] {
  if (m === d.length) return b ? [] : [refMTH(d)];
  const s = k(d.length);
  if (m <= s) return [...subproof(m, d.slice(0, s), b), refMTH(d.slice(s))];
  return [...subproof(m - s, d.slice(s), false), refMTH(d.slice(0, s))];
}

/** PROOF(m, D[n]) for 0 < m <= n. */
export function refPROOF(m: number, d: Uint8Array[]): Uint8Array[] {
  return subproof(m, d, true);
}
