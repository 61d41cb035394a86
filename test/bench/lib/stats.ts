// Small statistics helpers for the benchmarks: percentiles over latency samples, rates.

/** The p-th percentile (0..100) of `samples` by nearest rank; NaN when empty. Sorts a copy. */
export function percentile(samples: readonly number[], p: number): number {
  if (samples.length === 0) return Number.NaN;
  const sorted = Float64Array.from(samples).sort();
  return sortedPercentile(sorted, p);
}

/** Nearest-rank percentile of an already sorted array. */
export function sortedPercentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank]!;
}

export interface LatencySummary {
  count: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

/** Summarises latency samples in milliseconds. */
export function summarise(samples: readonly number[]): LatencySummary {
  const sorted = Float64Array.from(samples).sort();
  return {
    count: sorted.length,
    p50: sortedPercentile(sorted, 50),
    p90: sortedPercentile(sorted, 90),
    p99: sortedPercentile(sorted, 99),
    max: sorted.length === 0 ? Number.NaN : sorted[sorted.length - 1]!,
  };
}

/** Formats a number for a table: thousands separators, at most `digits` decimals. */
export function fmt(n: number | undefined, digits = 0): string {
  if (n === undefined || Number.isNaN(n)) return '-';
  return n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: 0 });
}
