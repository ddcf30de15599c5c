import { describe, expect, it } from "vitest";
import { BucketAccumulator } from "../../src/queries/bucket-accumulator.js";
import { parseDenseCounts } from "../../src/queries/rollup-cache.js";
import { MAX_BUCKET } from "../../src/rollups/latency-histogram.js";

describe("BucketAccumulator", () => {
  it("adds dense array text at an offset and single buckets", () => {
    const acc = new BucketAccumulator();
    acc.addDenseText(400, "{3,0,12}");
    acc.addDenseText(401, "{1,1}");
    acc.add(399, 2);
    acc.add(402, 5);
    expect(acc.entries()).toEqual([
      [399, 2],
      [400, 3],
      [401, 1],
      [402, 18],
    ]);
    expect(acc.total).toBe(24);
  });

  it("grows in both directions across far-apart runs", () => {
    const acc = new BucketAccumulator();
    acc.addDenseText(1000, "{1}");
    acc.addDenseText(0, "{7,0,1}");
    acc.add(MAX_BUCKET, 4);
    expect(acc.entries()).toEqual([
      [0, 7],
      [2, 1],
      [1000, 1],
      [MAX_BUCKET, 4],
    ]);
  });

  it("handles large counts and an empty array", () => {
    const acc = new BucketAccumulator();
    acc.addDenseText(5, "{9007199254740991}");
    acc.addDenseText(5, "{}");
    expect(acc.entries()).toEqual([[5, 9007199254740991]]);
  });

  it("adds sparse bucket and count lists", () => {
    const acc = new BucketAccumulator();
    acc.addSparseText("{398,401,0}", "{2,7,1}");
    acc.addSparseText("{}", "{}");
    expect(acc.entries()).toEqual([
      [0, 1],
      [398, 2],
      [401, 7],
    ]);
    expect(() => acc.addSparseText("{1,2}", "{1}")).toThrow(RangeError);
    expect(Array.from(parseDenseCounts("{12,0,345}"))).toEqual([12, 0, 345]);
    expect(() => parseDenseCounts("{1,,2}")).toThrow(RangeError);
  });

  it("merges another accumulator", () => {
    const a = new BucketAccumulator();
    const b = new BucketAccumulator();
    a.add(10, 1);
    b.add(10, 2);
    b.add(12, 3);
    a.merge(b);
    expect(a.entries()).toEqual([
      [10, 3],
      [12, 3],
    ]);
  });

  it.each(["", "{", "1,2", "{1,,2}", "{1,-2}", "{1.5}", "{NULL}", "{1,2,}"])("rejects %j", (text) => {
    expect(() => new BucketAccumulator().addDenseText(10, text)).toThrow(RangeError);
  });

  it("rejects runs outside the bucket range", () => {
    expect(() => new BucketAccumulator().addDenseText(MAX_BUCKET, "{1,1}")).toThrow(RangeError);
    expect(() => new BucketAccumulator().add(-1, 1)).toThrow(RangeError);
  });
});
