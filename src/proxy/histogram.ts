// Log-linear latency histogram: fixed buckets 5 % wide, so quantiles are within 5 % of the truth.

const MIN_MS = 0.05;
const GROWTH = 1.05;
const LOG_GROWTH = Math.log(GROWTH);
/** Buckets from 0.05 ms to about 10 minutes. */
const BUCKETS = Math.ceil(Math.log(600_000 / MIN_MS) / LOG_GROWTH) + 1;

/** A histogram as plain data (see `Histogram.toRaw`). */
export interface RawHistogram {
  buckets: [number, number][];
  count: number;
  max: number;
}

/** Counts observations into buckets; `record` is O(1) with no allocation (safe on the hot path). */
export class Histogram {
  readonly #counts = new Float64Array(BUCKETS);
  #count = 0;
  #max = 0;

  record(ms: number): void {
    let i = ms <= MIN_MS ? 0 : Math.ceil(Math.log(ms / MIN_MS) / LOG_GROWTH);
    if (i >= BUCKETS) i = BUCKETS - 1;
    this.#counts[i]!++;
    this.#count++;
    if (ms > this.#max) this.#max = ms;
  }

  get count(): number {
    return this.#count;
  }

  get max(): number {
    return this.#max;
  }

  /** Upper bound (ms) of bucket `i`. */
  static bound(i: number): number {
    return MIN_MS * GROWTH ** i;
  }

  /** The q-quantile (0..1), reported as the upper bound of its bucket (never more than 5 % above the truth). */
  quantile(q: number): number {
    if (this.#count === 0) return 0;
    const rank = Math.max(1, Math.ceil(q * this.#count));
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.#counts[i]!;
      if (seen >= rank) return Math.min(Histogram.bound(i), this.#max);
    }
    return this.#max;
  }

  /** Non-empty buckets as cumulative counts with their upper bounds (Prometheus style). */
  cumulative(): { le: number; count: number }[] {
    const out: { le: number; count: number }[] = [];
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      const c = this.#counts[i]!;
      if (c === 0) continue;
      seen += c;
      out.push({ le: Number(Histogram.bound(i).toPrecision(4)), count: seen });
    }
    return out;
  }

  /** The counts as plain data (non-empty buckets as `[index, count]`), to cross a process boundary. */
  toRaw(): RawHistogram {
    const buckets: [number, number][] = [];
    for (let i = 0; i < BUCKETS; i++) if (this.#counts[i] !== 0) buckets.push([i, this.#counts[i]!]);
    return { buckets, count: this.#count, max: this.#max };
  }

  /** Adds counts made by `toRaw` (another worker's) into this one. */
  addRaw(raw: RawHistogram): void {
    for (const [i, c] of raw.buckets) if (i >= 0 && i < BUCKETS) this.#counts[i]! += c;
    this.#count += raw.count;
    if (raw.max > this.#max) this.#max = raw.max;
  }

  /** Adds another histogram's counts into this one (for group and total views). */
  merge(other: Histogram): void {
    for (let i = 0; i < BUCKETS; i++) this.#counts[i]! += other.#counts[i]!;
    this.#count += other.#count;
    if (other.#max > this.#max) this.#max = other.#max;
  }
}
