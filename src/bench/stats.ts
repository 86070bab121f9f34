/** Summaries of repeated measurements: median and range, never a mean of noisy runs alone. */

export interface Summary { median: number; min: number; max: number; n: number }

/**
 * Median, minimum and maximum of a list of finite numbers.
 * @throws Error when the list is empty or holds a non-finite value.
 */
export function summarize(values: number[]): Summary {
  if (values.length === 0) throw new Error('summarize: no values');
  for (const v of values) if (!Number.isFinite(v)) throw new Error(`summarize: non-finite value ${v}`);
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  const median = sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
  return { median, min: sorted[0], max: sorted[sorted.length - 1], n: sorted.length };
}

/**
 * The p-th percentile (0..100) by nearest rank of a list of numbers.
 * @throws Error when the list is empty or p is outside 0..100.
 */
export function percentile(values: number[], p: number): number {
  if (values.length === 0) throw new Error('percentile: no values');
  if (!(p >= 0 && p <= 100)) throw new Error(`percentile: p=${p} must be within 0..100`);
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[rank - 1];
}

/** a / b, or null when either is missing or b is 0 (a ratio that cannot be computed is not 0). */
export function ratio(a: number | null | undefined, b: number | null | undefined): number | null {
  if (a == null || b == null || b === 0 || !Number.isFinite(a) || !Number.isFinite(b)) return null;
  return a / b;
}
