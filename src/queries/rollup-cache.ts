/**
 * A bounded, exact cache of rollup histograms, free of I/O.
 *
 * Reading a rollup row's bucket array costs far more than its scalars (a 168-hour query over 50
 * endpoints moves ~500k counts), and almost every row a query reads is the same as last time: only
 * the current periods change, and late rows now and then. So the query first reads each row's
 * scalars with its version, and fetches arrays only for rows whose version it has not cached.
 *
 * The version is PostgreSQL's `xmin:ctid` of the row: every insert or update writes a new tuple,
 * at a new ctid, stamped with the writing transaction's id, so a row whose version matches is
 * byte-for-byte the row that was cached (a rebuild, an upsert, a delete and re-insert all change
 * it). A stale entry can only be missed, never served.
 *
 * Entries are evicted least-recently-used once the cached counts exceed `maxCounts`.
 */

/** A cached histogram: dense counts starting at `firstBucket`. */
export interface CachedHistogram {
  readonly version: string;
  readonly firstBucket: number;
  readonly counts: Float64Array;
}

/** Default capacity: 4M counts (32 MB), about 14k rows of 300 buckets. */
export const DEFAULT_CACHE_MAX_COUNTS = 4_000_000;

/** See the module documentation. */
export class RollupHistogramCache {
  readonly #maxCounts: number;
  readonly #entries = new Map<string, CachedHistogram>();
  #counts = 0;

  constructor(maxCounts = DEFAULT_CACHE_MAX_COUNTS) {
    if (!(maxCounts >= 0)) throw new RangeError("maxCounts must be >= 0");
    this.#maxCounts = maxCounts;
  }

  /** The entry for `key` if it is cached at exactly `version`. */
  get(key: string, version: string): CachedHistogram | undefined {
    const entry = this.#entries.get(key);
    if (entry === undefined) return undefined;
    if (entry.version !== version) {
      this.#delete(key, entry);
      return undefined;
    }
    // Most recently used last.
    this.#entries.delete(key);
    this.#entries.set(key, entry);
    return entry;
  }

  /** Caches `entry` under `key` (replacing any other version), evicting the oldest as needed. */
  set(key: string, entry: CachedHistogram): void {
    const old = this.#entries.get(key);
    if (old !== undefined) this.#delete(key, old);
    if (entry.counts.length > this.#maxCounts) return;
    this.#entries.set(key, entry);
    this.#counts += entry.counts.length;
    for (const [k, e] of this.#entries) {
      if (this.#counts <= this.#maxCounts) break;
      this.#delete(k, e);
    }
  }

  /** Number of cached rows. */
  get size(): number {
    return this.#entries.size;
  }

  /** Number of cached counts (the capacity measure). */
  get countsCached(): number {
    return this.#counts;
  }

  #delete(key: string, entry: CachedHistogram): void {
    this.#entries.delete(key);
    this.#counts -= entry.counts.length;
  }
}

/** Parses PostgreSQL array text of non-negative integers (`{1,0,3}`) into a Float64Array. */
export function parseDenseCounts(text: string): Float64Array {
  const n = text.length;
  if (n < 2 || text.charCodeAt(0) !== 123 /* { */ || text.charCodeAt(n - 1) !== 125 /* } */) {
    throw new RangeError(`not an integer array: ${text.slice(0, 40)}`);
  }
  if (n === 2) return new Float64Array(0);
  let elements = 1;
  for (let i = 1; i < n - 1; i++) if (text.charCodeAt(i) === 44 /* , */) elements++;
  const out = new Float64Array(elements);
  let index = 0;
  let value = 0;
  let digits = 0;
  for (let i = 1; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c >= 48 && c <= 57) {
      value = value * 10 + (c - 48);
      digits++;
    } else if ((c === 44 || c === 125) && digits > 0) {
      out[index++] = value;
      value = 0;
      digits = 0;
    } else {
      throw new RangeError(`not an integer array: ${text.slice(0, 40)}`);
    }
  }
  return out;
}
