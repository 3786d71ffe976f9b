// Sparse latency histograms keyed by the proxy's bucket index, so series merge exactly (percentiles are never averaged).

/** The proxy's bucket layout (src/proxy/histogram.ts): upper bound of bucket i is 0.05 ms × 1.05^i. */
const MIN_MS = 0.05;
const GROWTH = 1.05;
const LOG_GROWTH = Math.log(GROWTH);

/** Bucket index → count (only non-empty buckets). */
export type SparseHistogram = Record<number, number>;

export function bucketBound(index: number): number {
  return MIN_MS * GROWTH ** index;
}

/** The index of the bucket whose (rounded) upper bound the proxy reported as `le`. */
export function bucketIndex(le: number): number {
  return le <= MIN_MS ? 0 : Math.round(Math.log(le / MIN_MS) / LOG_GROWTH);
}

/** The proxy's cumulative `{le, count}` list → per-bucket counts. */
export function fromCumulative(cumulative: readonly { le: number; count: number }[]): SparseHistogram {
  const out: SparseHistogram = {};
  let previous = 0;
  for (const { le, count } of cumulative) {
    const n = count - previous;
    previous = count;
    if (n > 0) out[bucketIndex(le)] = (out[bucketIndex(le)] ?? 0) + n;
  }
  return out;
}

/** `now - before`, bucket by bucket; a bucket that shrank means the counters were reset, so `now` is the delta. */
export function subtract(now: SparseHistogram, before: SparseHistogram): SparseHistogram {
  const out: SparseHistogram = {};
  for (const [key, count] of Object.entries(now)) {
    const previous = before[Number(key)] ?? 0;
    if (count < previous) return { ...now };
    if (count > previous) out[Number(key)] = count - previous;
  }
  return out;
}

/** Adds `other` into `into` and returns it. */
export function mergeInto(into: SparseHistogram, other: SparseHistogram): SparseHistogram {
  for (const [key, count] of Object.entries(other)) into[Number(key)] = (into[Number(key)] ?? 0) + count;
  return into;
}

export function countOf(histogram: SparseHistogram): number {
  let total = 0;
  for (const count of Object.values(histogram)) total += count;
  return total;
}

/**
 * The q-quantile (0..1) as the upper bound of its bucket, capped at `max`: the same rule as the proxy's own
 * histogram, so a merged series reports what one big histogram would.
 */
export function quantile(
  histogram: SparseHistogram,
  q: number,
  max = Number.POSITIVE_INFINITY,
): number | null {
  const entries = sortedEntries(histogram);
  const total = entries.reduce((sum, [, count]) => sum + count, 0);
  if (total === 0) return null;
  const rank = Math.max(1, Math.ceil(q * total));
  let seen = 0;
  for (const [index, count] of entries) {
    seen += count;
    if (seen >= rank) return Math.min(bucketBound(index), max);
  }
  return max;
}

/** Mean latency, taking each bucket at its geometric middle (within 2.5 % of the truth). */
export function mean(histogram: SparseHistogram): number | null {
  let total = 0;
  let weighted = 0;
  for (const [index, count] of sortedEntries(histogram)) {
    total += count;
    weighted += count * (index === 0 ? MIN_MS / 2 : bucketBound(index) / Math.sqrt(GROWTH));
  }
  return total === 0 ? null : weighted / total;
}

/** Count of observations at or below `boundMs` (buckets whose upper bound is within it), for fixed exports. */
export function countAtOrBelow(histogram: SparseHistogram, boundMs: number): number {
  let total = 0;
  for (const [index, count] of Object.entries(histogram)) {
    if (bucketBound(Number(index)) <= boundMs * (1 + 1e-9)) total += count;
  }
  return total;
}

function sortedEntries(histogram: SparseHistogram): [number, number][] {
  return Object.entries(histogram)
    .map(([key, count]): [number, number] => [Number(key), count])
    .sort((a, b) => a[0] - b[0]);
}
