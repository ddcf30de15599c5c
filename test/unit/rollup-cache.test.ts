import { describe, expect, it } from "vitest";
import { bucketOf, MAX_BUCKET } from "../../src/queries/latency-histogram.js";
import { FIVE_MINUTES_MS } from "../../src/queries/rollup-plan.js";
import { parseDenseCounts, RollupHistogramCache } from "../../src/queries/rollup-cache.js";
import { aggregateApiRows, denseBucketText } from "../../src/queries/rollups.js";

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

  it("writes dense array text from sparse buckets", () => {
    expect(denseBucketText(new Map([[12, 2], [10, 1]]))).toEqual({ firstBucket: 10, text: "{1,0,2}" });
  });
});
