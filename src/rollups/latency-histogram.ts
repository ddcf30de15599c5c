/**
 * Log-bucketed latency histogram (DDSketch-style) behind the hourly latency rollups.
 *
 * A response time `x` (ms, double) is stored as a bucket index. For `x >= MIN_VALUE_MS` the index is
 * `ceil(ln(x) / LN_GAMMA) + BUCKET_OFFSET`, clamped to `[1, MAX_BUCKET]`; anything smaller (0,
 * sub-microsecond values, negative clock-skew artefacts) goes to {@link ZERO_BUCKET}. The same index
 * is computed in PostgreSQL by {@link bucketSqlExpression}, so the rollup is a plain
 * `count = count + excluded.count` upsert on `api_latency_buckets(hour, endpoint, bucket, count)`.
 *
 * The constants below are a storage format: rows already written use them, so changing any of them
 * requires rebuilding the bucket tables.
 *
 * ## Error bound
 *
 * Let `P = percentile_cont(q)` over the rows and `E` the estimate from their buckets (merged over any
 * number of hours) with the exact min and max passed in. If every value is `0` or lies in
 * `[MIN_VALUE_MS, MAX_TRACKED_MS]`, then
 *
 *     |E - P| <= RELATIVE_ACCURACY * P      (RELATIVE_ACCURACY = 1/101 ≈ 0.990 %)
 *
 * and in general `|E - P| <= RELATIVE_ACCURACY * P + MIN_VALUE_MS` (values in `(0, MIN_VALUE_MS)` are
 * reported as 0). Why: `percentile_cont` is `P = (1 - f) * x[lo] + f * x[hi]` with `lo = floor(q(n-1))`,
 * `hi = ceil(q(n-1))`, `f = q(n-1) - lo`. The estimate uses the same positions and the same
 * interpolation, replacing each order statistic by its bucket's representative, which is within
 * `RELATIVE_ACCURACY * x` of `x` (the harmonic mean of the bucket bounds equalises the worst error
 * at both ends to `(gamma - 1) / (gamma + 1)`). Replacing rank 0 / rank n-1 by the exact min / max,
 * and clamping representatives into `[min, max]`, only moves them closer to the true order
 * statistic. Since the weights `1 - f` and `f` are non-negative and values are non-negative, the
 * per-term bounds add up to `RELATIVE_ACCURACY * P`. Constant data therefore comes out exact, as do
 * `q = 0` and `q = 1`.
 *
 * `RELATIVE_ACCURACY` is deliberately a little under 1 %: floating-point noise (the bucket boundary
 * computations, the interpolation, and JS `Math.log` vs PostgreSQL `ln` disagreeing on a value
 * within an ulp or so of a boundary `e^(k * LN_GAMMA)`) is around 1e-15 relative, far inside the
 * ~1e-4 margin. A boundary disagreement in particular cannot matter: a value `x ≈ e^(k * LN_GAMMA)`
 * is within `RELATIVE_ACCURACY` of the representatives of BOTH neighbouring buckets
 * (`2x / (gamma + 1)` and `2 gamma x / (gamma + 1)`), so whichever bucket either side picks, the
 * per-value bound holds. The `MIN_VALUE_MS` threshold itself is an exact double comparison on both
 * sides, so it never disagrees.
 */

/**
 * Ratio between consecutive bucket bounds. 1.02 makes `RELATIVE_ACCURACY = 1/101`, just under 1 %,
 * with a short literal that PostgreSQL and JavaScript parse to the same double.
 */
export const GAMMA = 1.02;

/** Worst-case relative error of a bucket representative: `(GAMMA - 1) / (GAMMA + 1)` = 1/101. */
export const RELATIVE_ACCURACY = (GAMMA - 1) / (GAMMA + 1);

/**
 * `ln(GAMMA)` as the exact double the SQL expression divides by. Written out (not `Math.log(GAMMA)`)
 * because it is part of the storage format; it equals the correctly rounded natural log of the
 * double `1.02`, which is what `Math.log(GAMMA)` returns.
 */
export const LN_GAMMA = 0.01980262729617973;

/** Values below this (ms), including 0 and negatives, land in {@link ZERO_BUCKET}. */
export const MIN_VALUE_MS = 0.001;

/** Bucket for `[0, MIN_VALUE_MS)` and negative values; its representative is 0, so zeros are exact. */
export const ZERO_BUCKET = 0;

/**
 * Added to `ceil(ln(x) / LN_GAMMA)` so that `MIN_VALUE_MS` lands in bucket 1:
 * `1 - ceil(ln(0.001) / LN_GAMMA) = 1 - (-348)`. `ln(0.001) / LN_GAMMA ≈ -348.83`, far from an integer,
 * so no implementation can round it differently.
 */
export const BUCKET_OFFSET = 349;

/** Largest bucket index: the smallint maximum. It absorbs every value above {@link MAX_TRACKED_MS}. */
export const MAX_BUCKET = 32767;

/** Largest value (ms) with the relative-error guarantee: the lower bound of {@link MAX_BUCKET} (~6e278). */
export const MAX_TRACKED_MS = Math.exp((MAX_BUCKET - 1 - BUCKET_OFFSET) * LN_GAMMA);

/**
 * Bucket index of a response time in ms. Matches {@link bucketSqlExpression} for every non-NaN
 * input (up to the boundary rounding discussed in the module doc, which does not affect the bound).
 *
 * @throws RangeError for NaN (PostgreSQL would file it in {@link MAX_BUCKET}; reject it at ingest).
 */
export function bucketOf(ms: number): number {
  if (Number.isNaN(ms)) throw new RangeError("latency must be a number, got NaN");
  if (!(ms >= MIN_VALUE_MS)) return ZERO_BUCKET;
  const bucket = Math.ceil(Math.log(ms) / LN_GAMMA) + BUCKET_OFFSET;
  // greatest(1, ...) keeps a value >= MIN_VALUE_MS out of the zero bucket even if log rounding at
  // MIN_VALUE_MS ever produced one index too few.
  return Math.min(MAX_BUCKET, Math.max(1, bucket));
}

function checkBucket(bucket: number): void {
  if (!Number.isInteger(bucket) || bucket < ZERO_BUCKET || bucket > MAX_BUCKET) {
    throw new RangeError(`bucket must be an integer in [${ZERO_BUCKET}, ${MAX_BUCKET}], got ${bucket}`);
  }
}

/** `e^(k * LN_GAMMA)` rather than `GAMMA ** k`, so bounds use exactly the ratio the index divides by. */
function boundary(key: number): number {
  return Math.exp(key * LN_GAMMA);
}

/**
 * Lower bound (ms) of a bucket. Bucket 0 is `[0, MIN_VALUE_MS)`, bucket 1 is
 * `[MIN_VALUE_MS, upper]`, every other bucket is `(lower, upper]`.
 */
export function bucketLowerBound(bucket: number): number {
  checkBucket(bucket);
  if (bucket === ZERO_BUCKET) return 0;
  if (bucket === 1) return MIN_VALUE_MS;
  return boundary(bucket - BUCKET_OFFSET - 1);
}

/** Upper bound (ms) of a bucket; see {@link bucketLowerBound}. `Infinity` for {@link MAX_BUCKET}. */
export function bucketUpperBound(bucket: number): number {
  checkBucket(bucket);
  if (bucket === ZERO_BUCKET) return MIN_VALUE_MS;
  if (bucket === MAX_BUCKET) return Infinity;
  return boundary(bucket - BUCKET_OFFSET);
}

/**
 * The value reported for a bucket: the harmonic mean `2 * lo * hi / (lo + hi)` of its bounds, which
 * makes the worst relative error equal at both ends (`RELATIVE_ACCURACY` for a full bucket, less for
 * the partial bucket 1). 0 for the zero bucket; for the open-ended top bucket, the value a full
 * bucket there would report.
 */
export function bucketRepresentative(bucket: number): number {
  checkBucket(bucket);
  if (bucket === ZERO_BUCKET) return 0;
  const lower = bucketLowerBound(bucket);
  if (bucket === MAX_BUCKET) return (2 * GAMMA * lower) / (GAMMA + 1);
  const upper = bucketUpperBound(bucket);
  return (2 * lower * upper) / (lower + upper);
}

/**
 * A PostgreSQL expression of type smallint computing {@link bucketOf} of `column`.
 *
 * `column` is interpolated verbatim: pass a trusted SQL fragment (a column or expression written in
 * code), never user input. The CASE guards `ln` against 0 and negatives, which PostgreSQL rejects
 * with an error. NULL yields NULL, which the bucket primary key rejects, so filter
 * `column IS NOT NULL` (as `percentile_cont` ignores NULLs too). The constants are written as
 * double-precision literals so PostgreSQL uses bit-identical values to this module.
 */
export function bucketSqlExpression(column: string): string {
  const x = `(${column})::double precision`;
  return (
    `(CASE WHEN ${x} >= ${sqlDouble(MIN_VALUE_MS)} ` +
    `THEN least(${MAX_BUCKET}, greatest(1, ceil(ln(${x}) / ${sqlDouble(LN_GAMMA)}) + ${BUCKET_OFFSET})) ` +
    `ELSE ${ZERO_BUCKET} END)::smallint`
  );
}

/** `String(n)` is the shortest round-tripping decimal, so PostgreSQL's float8 parser yields the same double. */
function sqlDouble(n: number): string {
  return `${String(n)}::double precision`;
}

/** A `[bucket, count]` pair as stored in `api_latency_buckets`. */
export type BucketCount = readonly [bucket: number, count: number];

function checkCount(count: number): void {
  if (!Number.isSafeInteger(count) || count < 0) {
    throw new RangeError(`count must be a non-negative safe integer, got ${count}`);
  }
}

function checkQuantile(q: number): void {
  if (!(q >= 0 && q <= 1)) throw new RangeError(`quantile must be in [0, 1], got ${q}`);
}

/**
 * Estimates `percentile_cont(q)` for each `q` in `qs` from bucket counts (repeated buckets, e.g. from
 * several hours, are summed). Pass the exact min and max of the same rows when known (the rollup
 * keeps them): rank 0 and rank n-1 then use them verbatim and every representative is clamped into
 * `[exactMin, exactMax]`, which makes constant data, `q = 0` and `q = 1` exact. The error bound is
 * in the module documentation.
 *
 * @returns one estimate per `q`, in order, or `undefined` when the counts sum to 0.
 * @throws RangeError for a bucket or count out of range, `q` outside `[0, 1]`, or `exactMin > exactMax`.
 */
export function quantilesFromBuckets(
  buckets: Iterable<BucketCount>,
  qs: readonly number[],
  exactMin?: number,
  exactMax?: number,
): number[] | undefined {
  for (const q of qs) checkQuantile(q);
  if (exactMin !== undefined && exactMax !== undefined && exactMin > exactMax) {
    throw new RangeError(`exactMin (${exactMin}) must not exceed exactMax (${exactMax})`);
  }
  const summed = new Map<number, number>();
  for (const [bucket, count] of buckets) {
    checkBucket(bucket);
    checkCount(count);
    if (count > 0) summed.set(bucket, (summed.get(bucket) ?? 0) + count);
  }
  const sorted = [...summed].sort((a, b) => a[0] - b[0]);
  // cumulative[i] = number of values in sorted[0..i], for a binary search by rank.
  const cumulative: number[] = [];
  let total = 0;
  for (const [, count] of sorted) {
    total += count;
    cumulative.push(total);
  }
  if (total === 0) return undefined;

  const orderStatistic = (rank: number): number => {
    if (rank === 0 && exactMin !== undefined) return exactMin;
    if (rank === total - 1 && exactMax !== undefined) return exactMax;
    let lo = 0;
    let hi = cumulative.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((cumulative[mid] as number) > rank) hi = mid;
      else lo = mid + 1;
    }
    let value = bucketRepresentative((sorted[lo] as BucketCount)[0]);
    if (exactMin !== undefined && value < exactMin) value = exactMin;
    if (exactMax !== undefined && value > exactMax) value = exactMax;
    return value;
  };

  return qs.map((q) => {
    // Same positions and interpolation as PostgreSQL's percentile_cont_final_common.
    const position = q * (total - 1);
    const first = Math.floor(position);
    const second = Math.ceil(position);
    const low = orderStatistic(first);
    if (second === first) return low;
    const high = orderStatistic(second);
    return low + (high - low) * (position - first);
  });
}

/**
 * In-memory histogram with the same buckets as the rollup tables. It tracks the exact min and max of
 * values passed to {@link LatencyHistogram.add}; once counts arrive through
 * {@link LatencyHistogram.addBucket} (no raw value) the extremes are unknown and quantiles fall back
 * to representatives at the ends, which is still within the bound.
 */
export class LatencyHistogram {
  #counts = new Map<number, number>();
  #count = 0;
  #min: number | undefined;
  #max: number | undefined;
  #extremesKnown = true;

  /** Records `count` observations of `ms`. */
  add(ms: number, count = 1): void {
    checkCount(count);
    const bucket = bucketOf(ms);
    if (count === 0) return;
    this.#increment(bucket, count);
    this.#min = this.#min === undefined ? ms : Math.min(this.#min, ms);
    this.#max = this.#max === undefined ? ms : Math.max(this.#max, ms);
  }

  /** Records `count` observations known only by bucket (e.g. read back from the rollup table). */
  addBucket(bucket: number, count: number): void {
    checkBucket(bucket);
    checkCount(count);
    if (count === 0) return;
    this.#increment(bucket, count);
    this.#extremesKnown = false;
  }

  /** Adds every observation of `other`; the result is the same as adding all its values here. */
  merge(other: LatencyHistogram): void {
    if (other.#count === 0) return;
    const wasEmpty = this.#count === 0;
    for (const [bucket, count] of [...other.#counts]) this.#increment(bucket, count);
    if (wasEmpty) {
      this.#extremesKnown = other.#extremesKnown;
      this.#min = other.#min;
      this.#max = other.#max;
      return;
    }
    this.#extremesKnown &&= other.#extremesKnown;
    if (other.#min !== undefined) this.#min = this.#min === undefined ? other.#min : Math.min(this.#min, other.#min);
    if (other.#max !== undefined) this.#max = this.#max === undefined ? other.#max : Math.max(this.#max, other.#max);
  }

  /** Estimated `percentile_cont(q)`, or `undefined` when empty. */
  quantile(q: number): number | undefined {
    return this.quantiles([q])?.[0];
  }

  /** Estimates for several quantiles in one pass; `undefined` when empty. */
  quantiles(qs: readonly number[]): number[] | undefined {
    return quantilesFromBuckets(this.#counts, qs, this.min, this.max);
  }

  /** Number of observations. */
  get count(): number {
    return this.#count;
  }

  /** Exact smallest observation, or `undefined` when empty or unknown (after `addBucket`). */
  get min(): number | undefined {
    return this.#extremesKnown ? this.#min : undefined;
  }

  /** Exact largest observation, or `undefined` when empty or unknown (after `addBucket`). */
  get max(): number | undefined {
    return this.#extremesKnown ? this.#max : undefined;
  }

  /** Non-empty buckets in ascending order, e.g. to write rollup rows. */
  buckets(): BucketCount[] {
    return [...this.#counts].sort((a, b) => a[0] - b[0]);
  }

  #increment(bucket: number, count: number): void {
    this.#counts.set(bucket, (this.#counts.get(bucket) ?? 0) + count);
    this.#count += count;
  }
}
