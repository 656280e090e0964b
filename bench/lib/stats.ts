/** Figures over samples: the median, a percentile of sorted values, rounding and formatting. */

export const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length === 0
    ? Number.NaN
    : sorted.length % 2
      ? sorted[mid]!
      : (sorted[mid - 1]! + sorted[mid]!) / 2;
};

/** The value at quantile `q` (0–1) of values sorted ascending; NaN for none. */
export const percentile = (sorted: Float64Array | number[], q: number): number =>
  sorted.length === 0 ? Number.NaN : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;

export const round = (value: number, digits = 2): number => Number(value.toFixed(digits));

/** A figure for a table: `digits` decimals, "–" when there is none (NaN, infinite). */
export const fmt = (n: number, digits = 2): string => (Number.isFinite(n) ? n.toFixed(digits) : "–");
