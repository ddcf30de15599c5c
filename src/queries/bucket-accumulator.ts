/**
 * Sums latency bucket counts from many rollup rows and raw buckets, free of I/O.
 *
 * Rollup rows store a dense array of counts starting at `first_bucket`; the query reads it as
 * PostgreSQL array text (`{3,0,1}`), which is smaller on the wire than binary int8 arrays and
 * parses here without allocating a JavaScript array per row. A 168-hour query over 50 endpoints
 * adds ~500k counts, so the accumulator is a growable `Float64Array` over the range seen so far.
 */
import { MAX_BUCKET, ZERO_BUCKET, type BucketCount } from "../rollups/latency-histogram.js";
import { parseDenseCounts } from "./rollup-cache.js";

/** Sum of bucket counts; see the module documentation. */
export class BucketAccumulator {
  #offset = 0;
  #counts = new Float64Array(0);

  /** Adds `count` observations in `bucket`. */
  add(bucket: number, count: number): void {
    if (count === 0) return;
    this.#ensure(bucket, bucket);
    this.#counts[bucket - this.#offset]! += count;
  }

  /**
   * Adds a dense run read as PostgreSQL array text: `text` is `{c0,c1,...}` with non-negative
   * integers, `c0` counting bucket `firstBucket`.
   *
   * @throws RangeError when the text is not such an array or the run leaves the bucket range.
   */
  addDenseText(firstBucket: number, text: string): void {
    this.addDense(firstBucket, parseDenseCounts(text));
  }

  /** Adds dense counts, `counts[0]` counting bucket `firstBucket`. */
  addDense(firstBucket: number, counts: Float64Array): void {
    if (counts.length === 0) return;
    this.#ensure(firstBucket, firstBucket + counts.length - 1);
    const target = this.#counts;
    const offset = firstBucket - this.#offset;
    for (let i = 0; i < counts.length; i++) target[offset + i]! += counts[i]!;
  }

  /**
   * Adds sparse buckets read as two PostgreSQL array texts of equal length: bucket numbers and
   * their counts (`{398,401}` and `{2,7}`).
   *
   * @throws RangeError when either text is not such an array or their lengths differ.
   */
  addSparseText(bucketsText: string, countsText: string): void {
    const buckets = parseDenseCounts(bucketsText);
    const counts = parseDenseCounts(countsText);
    if (buckets.length !== counts.length) throw new RangeError(`${buckets.length} buckets but ${counts.length} counts`);
    for (let i = 0; i < buckets.length; i++) this.add(buckets[i]!, counts[i]!);
  }

  /** Adds every count of `other`. */
  merge(other: BucketAccumulator): void {
    for (const [bucket, count] of other.entries()) this.add(bucket, count);
  }

  /** Total number of observations. */
  get total(): number {
    let sum = 0;
    for (const c of this.#counts) sum += c;
    return sum;
  }

  /** Non-empty buckets in ascending order, as `quantilesFromBuckets` takes them. */
  entries(): BucketCount[] {
    const out: BucketCount[] = [];
    const counts = this.#counts;
    for (let i = 0; i < counts.length; i++) if (counts[i]! > 0) out.push([i + this.#offset, counts[i]!]);
    return out;
  }

  #ensure(lo: number, hi: number): void {
    if (!Number.isInteger(lo) || !Number.isInteger(hi) || lo < ZERO_BUCKET || hi > MAX_BUCKET) {
      throw new RangeError(`buckets ${lo}..${hi} are outside [${ZERO_BUCKET}, ${MAX_BUCKET}]`);
    }
    const len = this.#counts.length;
    if (len > 0 && lo >= this.#offset && hi < this.#offset + len) return;
    const newLo = len === 0 ? lo : Math.min(lo, this.#offset);
    const newHi = len === 0 ? hi : Math.max(hi, this.#offset + len - 1);
    // Some slack on both sides saves re-allocations as neighbouring rows widen the range a little.
    const slack = 16;
    const from = Math.max(ZERO_BUCKET, newLo - slack);
    const to = Math.min(MAX_BUCKET, newHi + slack);
    const grown = new Float64Array(to - from + 1);
    if (len > 0) grown.set(this.#counts, this.#offset - from);
    this.#counts = grown;
    this.#offset = from;
  }
}

