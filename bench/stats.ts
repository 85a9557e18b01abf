/** Order statistics for the benchmark's figures. */

export interface Summary {
  /** Trials that produced the figure. */
  n: number;
  median: number | null;
  p95: number | null;
  max: number | null;
}

/** Median (mean of the middle two for even counts), nearest-rank p95, and max; nulls are skipped. */
export function summarize(values: ReadonlyArray<number | null | undefined>): Summary {
  const sorted = values.filter((value): value is number => typeof value === 'number' && Number.isFinite(value)).sort((a, b) => a - b);
  const n = sorted.length;
  if (n === 0) return { n, median: null, p95: null, max: null };
  const middle = Math.floor(n / 2);
  const median = n % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
  const p95 = sorted[Math.max(0, Math.ceil(0.95 * n) - 1)]!;
  return { n, median: round(median), p95: round(p95), max: round(sorted[n - 1]!) };
}

export function round(value: number, digits = 1): number {
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
}

/** a / b, or null when either is missing or b is 0. */
export function ratio(a: number | null, b: number | null): number | null {
  if (a === null || b === null || b === 0) return null;
  return Math.round((a / b) * 100) / 100;
}
