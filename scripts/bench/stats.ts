/** Summary statistics for the bench's samples. */

export interface Stats {
  readonly n: number;
  readonly median: number;
  readonly p90: number;
  readonly p99: number;
  readonly max: number;
  readonly min: number;
}

/** Quantile with linear interpolation between closest ranks (sorted input). */
export function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return NaN;
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  const a = sorted[lo] as number;
  const b = sorted[hi] as number;
  return a + (b - a) * (pos - lo);
}

export function stats(xs: readonly number[]): Stats {
  const s = [...xs].sort((a, b) => a - b);
  return {
    n: s.length,
    median: quantile(s, 0.5),
    p90: quantile(s, 0.9),
    p99: quantile(s, 0.99),
    max: s[s.length - 1] ?? NaN,
    min: s[0] ?? NaN,
  };
}

export const r3 = (x: number): number => Math.round(x * 1000) / 1000;

export const roundStats = (s: Stats): Stats => ({
  n: s.n,
  median: r3(s.median),
  p90: r3(s.p90),
  p99: r3(s.p99),
  max: r3(s.max),
  min: r3(s.min),
});
