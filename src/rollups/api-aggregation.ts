/**
 * The flush hook's aggregation of request-log rows, in JavaScript and free of I/O: one pass for
 * all API levels (`bucketOf`, the same bucket function the rebuild's SQL uses), so a 1000-row
 * flush sends ~50 rollup rows per level rather than making PostgreSQL aggregate 1000 rows three
 * times. Apart so it can be unit-tested without a database.
 */
import type { Row } from "../storage/batch-writer.js";
import { bucketOf, MAX_BUCKET } from "./latency-histogram.js";
import { floorTo } from "./rollup-plan.js";

/** One rollup row computed from flushed request logs. */
export interface ApiAggregate {
  readonly periodMs: number;
  readonly endpoint: string;
  count: number;
  errors: number;
  sumMs: number;
  minMs: number;
  maxMs: number;
  readonly buckets: Map<number, number>;
}

/** PostgreSQL orders NaN above every number; `min`/`max` here follow it, like the rebuild's SQL. */
const pgMin = (a: number, b: number) => (Number.isNaN(a) ? b : Number.isNaN(b) ? a : Math.min(a, b));
const pgMax = (a: number, b: number) => (Number.isNaN(a) || Number.isNaN(b) ? NaN : Math.max(a, b));

/**
 * Aggregates request-log rows per period of `periodMs` and endpoint, sorted by (period, endpoint):
 * the primary-key order of the rollup tables, so concurrent flushes lock keys in the same order.
 */
export function aggregateApiRows(rows: readonly Row[], periodMs: number): ApiAggregate[] {
  return aggregateApiRowsByPeriod(rows, [periodMs])[0]!;
}

/**
 * {@link aggregateApiRows} for several period lengths at once: each row's fields are read and its
 * bucket found once for all of them, and keys are looked up by endpoint, then period, without
 * building a key string per row and level (the flush hook runs this on every request-log flush).
 */
export function aggregateApiRowsByPeriod(rows: readonly Row[], periodsMs: readonly number[]): ApiAggregate[][] {
  const levels = periodsMs.map(() => new Map<string, Map<number, ApiAggregate>>());
  for (const row of rows) {
    const at = timeMs(row.occurred_at);
    const endpoint = String(row.endpoint);
    const ms = Number(row.response_time_ms);
    const failed = Number(row.status_code) !== 0;
    // NaN goes where PostgreSQL's bucket expression puts it (the top bucket) rather than failing the flush.
    const bucket = Number.isNaN(ms) ? MAX_BUCKET : bucketOf(ms);
    for (let l = 0; l < levels.length; l++) {
      const period = floorTo(at, periodsMs[l]!);
      let byPeriod = levels[l]!.get(endpoint);
      if (!byPeriod) levels[l]!.set(endpoint, (byPeriod = new Map()));
      let agg = byPeriod.get(period);
      if (!agg) {
        agg = { periodMs: period, endpoint, count: 0, errors: 0, sumMs: 0, minMs: ms, maxMs: ms, buckets: new Map() };
        byPeriod.set(period, agg);
      }
      agg.count++;
      if (failed) agg.errors++;
      agg.sumMs += ms;
      agg.minMs = pgMin(agg.minMs, ms);
      agg.maxMs = pgMax(agg.maxMs, ms);
      agg.buckets.set(bucket, (agg.buckets.get(bucket) ?? 0) + 1);
    }
  }
  return levels.map((byEndpoint) =>
    [...byEndpoint.values()]
      .flatMap((byPeriod) => [...byPeriod.values()])
      .sort((a, b) => a.periodMs - b.periodMs || (a.endpoint < b.endpoint ? -1 : a.endpoint > b.endpoint ? 1 : 0)),
  );
}

/** The dense array text (`{3,0,1}`) and first bucket of a sparse bucket map. */
export function denseBucketText(buckets: ReadonlyMap<number, number>): { firstBucket: number; text: string } {
  let lo = Infinity;
  let hi = -Infinity;
  for (const b of buckets.keys()) {
    if (b < lo) lo = b;
    if (b > hi) hi = b;
  }
  const parts = new Array<string>(hi - lo + 1);
  for (let b = lo; b <= hi; b++) parts[b - lo] = String(buckets.get(b) ?? 0);
  return { firstBucket: lo, text: `{${parts.join(",")}}` };
}

/** A timestamp column value in epoch ms (a `Date`, epoch ms or ISO text, as drivers return them). */
export function timeMs(value: unknown): number {
  if (value instanceof Date) return value.getTime();
  if (typeof value === "number") return value;
  if (typeof value === "string") return Date.parse(value);
  throw new TypeError(`expected a timestamp, got ${typeof value}`);
}
