import { describe, expect, it } from "vitest";
import { bucketOf, MAX_BUCKET } from "../../src/rollups/latency-histogram.js";
import { DAY_MS, FIVE_MINUTES_MS } from "../../src/rollups/rollup-plan.js";
import { parseDenseCounts, RollupHistogramCache } from "../../src/queries/rollup-cache.js";
import { aggregateApiRows, aggregateApiRowsByPeriod, denseBucketText } from "../../src/rollups/api-aggregation.js";

const entry = (version: string, n: number) => ({ version, firstBucket: 10, counts: new Float64Array(n).fill(1) });

describe("RollupHistogramCache", () => {
  it("serves an entry only at the version it was cached at", () => {
    const cache = new RollupHistogramCache(100);
    cache.set("k", entry("5:(0,1)", 3));
    expect(cache.get("k", "5:(0,1)")?.counts).toEqual(new Float64Array([1, 1, 1]));
    expect(cache.get("k", "6:(0,2)")).toBeUndefined();
    // A mismatch drops the stale entry.
    expect(cache.get("k", "5:(0,1)")).toBeUndefined();
    expect(cache.size).toBe(0);
  });

  it("evicts the least recently used entries beyond its capacity in counts", () => {
    const cache = new RollupHistogramCache(10);
    cache.set("a", entry("1", 4));
    cache.set("b", entry("1", 4));
    expect(cache.get("a", "1")).toBeDefined(); // a is now the most recent
    cache.set("c", entry("1", 4)); // 12 > 10: b goes
    expect(cache.get("b", "1")).toBeUndefined();
    expect(cache.get("a", "1")).toBeDefined();
    expect(cache.get("c", "1")).toBeDefined();
    expect(cache.countsCached).toBe(8);
    cache.set("huge", entry("1", 11)); // larger than the whole cache: not kept
    expect(cache.size).toBe(2);
    cache.set("a", entry("2", 2)); // replacing frees the old entry's counts
    expect(cache.countsCached).toBe(6);
  });

  it("parses dense array text", () => {
    expect(parseDenseCounts("{3,0,12}")).toEqual(new Float64Array([3, 0, 12]));
    expect(parseDenseCounts("{}")).toEqual(new Float64Array(0));
    expect(() => parseDenseCounts("{1,,2}")).toThrow(RangeError);
  });
});

describe("flush-hook aggregation", () => {
  const t0 = Date.UTC(2026, 10, 20, 10, 4, 59, 999);
  const row = (at: number, endpoint: string, ms: number, code = 0) => ({ occurred_at: new Date(at), endpoint, status_code: code, response_time_ms: ms });

  it("aggregates per period and endpoint, sorted by (period, endpoint)", () => {
    const rows = [row(t0 + 1, "/b", 5), row(t0, "/b", 2, 13), row(t0, "/a", 1), row(t0, "/b", 2)];
    const aggs = aggregateApiRows(rows, FIVE_MINUTES_MS);
    expect(aggs.map((a) => [a.periodMs, a.endpoint, a.count, a.errors, a.sumMs, a.minMs, a.maxMs])).toEqual([
      [Date.UTC(2026, 10, 20, 10, 0), "/a", 1, 0, 1, 1, 1],
      [Date.UTC(2026, 10, 20, 10, 0), "/b", 2, 1, 4, 2, 2],
      [Date.UTC(2026, 10, 20, 10, 5), "/b", 1, 0, 5, 5, 5],
    ]);
    expect([...aggs[1]!.buckets]).toEqual([[bucketOf(2), 2]]);
  });

  it("files NaN where PostgreSQL does instead of failing the flush", () => {
    const [agg] = aggregateApiRows([row(t0, "/n", 3), row(t0, "/n", NaN)], FIVE_MINUTES_MS);
    expect(agg!.buckets.get(MAX_BUCKET)).toBe(1);
    expect(agg!.minMs).toBe(3);
    expect(agg!.maxMs).toBeNaN();
  });

  it("aggregates several period lengths in one pass exactly as one at a time", () => {
    // Rows across period edges, endpoints, failures and NaN, in no order.
    let seed = 7;
    const next = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    const rows = Array.from({ length: 500 }, () =>
      row(t0 + Math.floor((next() - 0.5) * 3 * 3_600_000), `/e${Math.floor(next() * 4)}`, next() < 0.02 ? NaN : next() * 900, next() < 0.1 ? 13 : 0),
    );
    const periods = [FIVE_MINUTES_MS, 3_600_000, DAY_MS];
    const together = aggregateApiRowsByPeriod(rows, periods);
    expect(together).toHaveLength(3);
    periods.forEach((p, l) => expect(together[l]).toEqual(aggregateApiRowsOneAtATime(rows, p)));
  });

  it("writes dense array text from sparse buckets", () => {
    expect(denseBucketText(new Map([[12, 2], [10, 1]]))).toEqual({ firstBucket: 10, text: "{1,0,2}" });
  });
});

/** The aggregation written the plain way (a string key per row), to hold the one-pass one to. */
function aggregateApiRowsOneAtATime(rows: readonly Record<string, unknown>[], periodMs: number) {
  const byKey = new Map<string, { periodMs: number; endpoint: string; count: number; errors: number; sumMs: number; minMs: number; maxMs: number; buckets: Map<number, number> }>();
  for (const r of rows) {
    const at = (r.occurred_at as Date).getTime();
    const period = Math.floor(at / periodMs) * periodMs;
    const ms = r.response_time_ms as number;
    const key = `${period} ${String(r.endpoint)}`;
    let agg = byKey.get(key);
    if (!agg) byKey.set(key, (agg = { periodMs: period, endpoint: String(r.endpoint), count: 0, errors: 0, sumMs: 0, minMs: ms, maxMs: ms, buckets: new Map() }));
    agg.count++;
    if (r.status_code !== 0) agg.errors++;
    agg.sumMs += ms;
    agg.minMs = Number.isNaN(agg.minMs) ? ms : Number.isNaN(ms) ? agg.minMs : Math.min(agg.minMs, ms);
    agg.maxMs = Number.isNaN(agg.maxMs) || Number.isNaN(ms) ? NaN : Math.max(agg.maxMs, ms);
    const bucket = Number.isNaN(ms) ? MAX_BUCKET : bucketOf(ms);
    agg.buckets.set(bucket, (agg.buckets.get(bucket) ?? 0) + 1);
  }
  return [...byKey.values()].sort((a, b) => a.periodMs - b.periodMs || (a.endpoint < b.endpoint ? -1 : a.endpoint > b.endpoint ? 1 : 0));
}
