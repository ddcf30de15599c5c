import { describe, expect, it } from "vitest";
import {
  BUCKET_OFFSET,
  GAMMA,
  LN_GAMMA,
  LatencyHistogram,
  MAX_BUCKET,
  MAX_TRACKED_MS,
  MIN_VALUE_MS,
  RELATIVE_ACCURACY,
  ZERO_BUCKET,
  bucketLowerBound,
  bucketOf,
  bucketRepresentative,
  bucketSqlExpression,
  bucketUpperBound,
  quantilesFromBuckets,
} from "../../src/rollups/latency-histogram.js";
import { seededRandom as rng } from "../support/seeded-random.js";

/** PostgreSQL percentile_cont: linear interpolation at position q * (n - 1) of the sorted values. */
function percentileCont(sorted: readonly number[], q: number): number {
  const position = q * (sorted.length - 1);
  const first = Math.floor(position);
  const second = Math.ceil(position);
  const low = sorted[first] as number;
  const high = sorted[second] as number;
  return low + (high - low) * (position - first);
}


function normal(random: () => number): number {
  const u = 1 - random();
  const v = random();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
}

const distributions: Record<string, (random: () => number) => number> = {
  "log-normal": (r) => Math.exp(Math.log(40) + 0.9 * normal(r)),
  bimodal: (r) => (r() < 0.7 ? 5 + normal(r) * 0.5 : 800 + normal(r) * 60),
  constant: () => 123.456,
  "two values": (r) => (r() < 0.5 ? 3 : 3000),
  uniform: (r) => r() * 1000,
  "heavy-tailed (Pareto a=1.1)": (r) => 2 / Math.pow(1 - r(), 1 / 1.1),
  "integer ms with zeros": (r) => Math.floor(r() * r() * 20),
  "spanning 1 µs to 1 h": (r) => Math.exp(Math.log(MIN_VALUE_MS) + r() * Math.log(3.6e9)),
};

const sizes = [1, 2, 3, 4, 5, 10, 37, 100, 1_000, 10_000, 100_000];
const qs = [0, 0.01, 0.25, 0.5, 0.9, 0.95, 0.99, 0.999, 1];

function relativeError(estimate: number, exact: number): number {
  if (exact === 0) return estimate === 0 ? 0 : Infinity;
  return Math.abs(estimate - exact) / Math.abs(exact);
}

describe("constants", () => {
  it("keep the relative accuracy under 1% and the SQL constants identical to the JS ones", () => {
    expect(RELATIVE_ACCURACY).toBeCloseTo(1 / 101, 15);
    expect(RELATIVE_ACCURACY).toBeLessThan(0.01);
    expect(Math.log(GAMMA)).toBe(LN_GAMMA);
    expect(BUCKET_OFFSET).toBe(1 - Math.ceil(Math.log(MIN_VALUE_MS) / LN_GAMMA));
    // Far from an integer, so PostgreSQL cannot round the offset differently.
    const key = Math.log(MIN_VALUE_MS) / LN_GAMMA;
    expect(Math.abs(key - Math.round(key))).toBeGreaterThan(0.1);
    expect(MAX_BUCKET).toBe(32767);
    expect(bucketOf(MAX_TRACKED_MS * 1.5)).toBe(MAX_BUCKET);
  });

  it("are what the SQL expression uses, written as round-tripping double literals", () => {
    const sql = bucketSqlExpression("r.response_time_ms");
    expect(sql).toBe(
      "(CASE WHEN (r.response_time_ms)::double precision >= 0.001::double precision " +
        "THEN least(32767, greatest(1, ceil(ln((r.response_time_ms)::double precision) / " +
        "0.01980262729617973::double precision) + 349)) ELSE 0 END)::smallint",
    );
    expect(Number("0.01980262729617973")).toBe(LN_GAMMA);
    expect(Number("0.001")).toBe(MIN_VALUE_MS);
  });
});

describe("bucketOf", () => {
  it("files zero, negatives and values below MIN_VALUE_MS in the zero bucket", () => {
    for (const v of [0, -0, -1, -Infinity, 1e-300, 0.000999999]) expect(bucketOf(v)).toBe(ZERO_BUCKET);
    expect(bucketOf(MIN_VALUE_MS)).toBe(1);
    expect(bucketLowerBound(0)).toBe(0);
    expect(bucketUpperBound(0)).toBe(MIN_VALUE_MS);
    expect(bucketRepresentative(0)).toBe(0);
  });

  it("caps huge values at the smallint maximum and rejects NaN", () => {
    expect(bucketOf(Infinity)).toBe(MAX_BUCKET);
    expect(bucketOf(Number.MAX_VALUE)).toBe(MAX_BUCKET);
    expect(bucketUpperBound(MAX_BUCKET)).toBe(Infinity);
    expect(bucketLowerBound(MAX_BUCKET)).toBe(MAX_TRACKED_MS);
    expect(() => bucketOf(NaN)).toThrow(RangeError);
  });

  it("rejects bucket indexes outside [0, MAX_BUCKET]", () => {
    for (const b of [-1, MAX_BUCKET + 1, 1.5, NaN]) {
      expect(() => bucketLowerBound(b)).toThrow(RangeError);
      expect(() => bucketUpperBound(b)).toThrow(RangeError);
      expect(() => bucketRepresentative(b)).toThrow(RangeError);
    }
  });

  it("is monotone and its bucket bounds contain the value", () => {
    const random = rng(1);
    const values = Array.from({ length: 200_000 }, () =>
      Math.exp(Math.log(1e-4) + random() * (Math.log(1e12) - Math.log(1e-4))),
    ).sort((a, b) => a - b);
    // Plain comparisons: 200k expect() calls would dominate the run time.
    const failures: string[] = [];
    let previous = -1;
    for (const v of values) {
      const b = bucketOf(v);
      if (b < previous) failures.push(`not monotone at ${v}`);
      previous = b;
      const lower = bucketLowerBound(b);
      const upper = bucketUpperBound(b);
      const inside =
        b === ZERO_BUCKET ? v < MIN_VALUE_MS : b === 1 ? v >= lower && v <= upper : v > lower && v <= upper;
      if (!inside) failures.push(`${v} outside bucket ${b} (${lower}, ${upper}]`);
    }
    expect(failures).toEqual([]);
  });

  it("gives consecutive buckets adjoining bounds and a representative within RELATIVE_ACCURACY of both ends", () => {
    for (let b = 1; b < 2000; b++) {
      const lower = bucketLowerBound(b);
      const upper = bucketUpperBound(b);
      const rep = bucketRepresentative(b);
      expect(bucketUpperBound(b)).toBe(bucketLowerBound(b + 1));
      expect(rep).toBeGreaterThan(lower);
      expect(rep).toBeLessThan(upper);
      expect((rep - lower) / lower).toBeLessThanOrEqual(RELATIVE_ACCURACY * (1 + 1e-12));
      expect((upper - rep) / upper).toBeLessThanOrEqual(RELATIVE_ACCURACY * (1 + 1e-12));
    }
  });

  it("stays within bound at bucket boundaries whichever neighbour a rounding difference picks", () => {
    for (let b = 2; b < 3000; b += 7) {
      const edge = bucketUpperBound(b);
      for (const v of [edge * (1 - 4e-16), edge, edge * (1 + 4e-16)]) {
        for (const candidate of [b, b + 1]) {
          expect(relativeError(bucketRepresentative(candidate), v)).toBeLessThan(0.01);
        }
        expect(relativeError(bucketRepresentative(bucketOf(v)), v)).toBeLessThanOrEqual(
          RELATIVE_ACCURACY * (1 + 1e-12),
        );
      }
    }
  });
});

describe("quantile estimates vs exact percentile_cont", () => {
  for (const [name, draw] of Object.entries(distributions)) {
    it(`${name}: relative error <= RELATIVE_ACCURACY (< 1%) for n = 1..100k`, () => {
      const random = rng(name.length * 7919);
      let worst = 0;
      for (const n of sizes) {
        const values = Array.from({ length: n }, () => draw(random));
        const histogram = new LatencyHistogram();
        for (const v of values) histogram.add(v);
        const sorted = [...values].sort((a, b) => a - b);
        const estimates = histogram.quantiles(qs);
        expect(estimates).toHaveLength(qs.length);
        qs.forEach((q, i) => {
          const exact = percentileCont(sorted, q);
          const estimate = estimates?.[i] as number;
          const error = relativeError(estimate, exact);
          worst = Math.max(worst, error);
          if (!(error <= RELATIVE_ACCURACY * (1 + 1e-12))) {
            throw new Error(`n=${n} q=${q}: estimate ${estimate} vs exact ${exact} (error ${error})`);
          }
        });
        // The ends use the exact extremes.
        expect(estimates?.[0]).toBe(sorted[0]);
        expect(estimates?.[qs.length - 1]).toBe(sorted[n - 1]);
      }
      expect(worst).toBeLessThan(0.01);
    });
  }

  it("returns the exact value for constant and single-value data", () => {
    for (const n of [1, 2, 1000]) {
      const histogram = new LatencyHistogram();
      histogram.add(57.3, n);
      expect(histogram.quantiles([0, 0.5, 0.95, 0.99, 1])).toEqual([57.3, 57.3, 57.3, 57.3, 57.3]);
    }
  });

  it("interpolates two values exactly like percentile_cont", () => {
    const histogram = new LatencyHistogram();
    histogram.add(10);
    histogram.add(20);
    // Both ranks are the exact min/max, so the interpolation is exact: 10 + 0.5 * 10.
    expect(histogram.quantile(0.5)).toBe(15);
    expect(histogram.quantile(0.95)).toBeCloseTo(19.5, 12);
  });

  it("keeps zeros exact and bounds sub-microsecond values by MIN_VALUE_MS absolutely", () => {
    const zeros = new LatencyHistogram();
    zeros.add(0, 10);
    expect(zeros.quantiles([0.5, 0.99])).toEqual([0, 0]);

    const tiny = [0, 0.0002, 0.0005, 0.0009, 0.0009, 2, 4];
    const histogram = new LatencyHistogram();
    for (const v of tiny) histogram.add(v);
    const sorted = [...tiny].sort((a, b) => a - b);
    for (const q of [0.1, 0.3, 0.5, 0.6, 0.75, 0.9]) {
      const exact = percentileCont(sorted, q);
      const estimate = histogram.quantile(q) as number;
      expect(Math.abs(estimate - exact)).toBeLessThanOrEqual(RELATIVE_ACCURACY * exact + MIN_VALUE_MS);
    }
  });

  it("returns undefined when empty and validates q", () => {
    const histogram = new LatencyHistogram();
    expect(histogram.quantile(0.5)).toBeUndefined();
    expect(histogram.count).toBe(0);
    expect(quantilesFromBuckets([], [0.5])).toBeUndefined();
    expect(quantilesFromBuckets([[100, 0]], [0.5])).toBeUndefined();
    histogram.add(1);
    for (const q of [-0.01, 1.01, NaN]) expect(() => histogram.quantile(q)).toThrow(RangeError);
  });
});

describe("quantilesFromBuckets", () => {
  const random = rng(42);
  const values = Array.from({ length: 5000 }, () => Math.exp(3 + normal(random)));
  const sorted = [...values].sort((a, b) => a - b);
  const exactMin = sorted[0] as number;
  const exactMax = sorted[sorted.length - 1] as number;

  it("sums repeated buckets (several hours) and stays within bound with the exact extremes", () => {
    // Split into "hours" and list every hour's buckets, as a GROUP BY-less read of the table would.
    const rows: [number, number][] = [];
    for (let hour = 0; hour < 5; hour++) {
      const h = new LatencyHistogram();
      for (const v of values.slice(hour * 1000, (hour + 1) * 1000)) h.add(v);
      rows.push(...h.buckets().map(([b, c]): [number, number] => [b, c]));
    }
    const estimates = quantilesFromBuckets(rows, [0, 0.5, 0.95, 0.99, 1], exactMin, exactMax);
    expect(estimates?.[0]).toBe(exactMin);
    expect(estimates?.[4]).toBe(exactMax);
    [0.5, 0.95, 0.99].forEach((q, i) => {
      expect(relativeError(estimates?.[i + 1] as number, percentileCont(sorted, q))).toBeLessThanOrEqual(
        RELATIVE_ACCURACY * (1 + 1e-12),
      );
    });
  });

  it("stays within bound without the extremes, and clamps to them when given", () => {
    const h = new LatencyHistogram();
    for (const v of values) h.add(v);
    const withoutExtremes = quantilesFromBuckets(h.buckets(), [0, 0.5, 1]) as number[];
    [0, 0.5, 1].forEach((q, i) => {
      expect(relativeError(withoutExtremes[i] as number, percentileCont(sorted, q))).toBeLessThanOrEqual(
        RELATIVE_ACCURACY * (1 + 1e-12),
      );
    });
    const constant = quantilesFromBuckets([[bucketOf(7.25), 3]], [0.01, 0.5, 0.99], 7.25, 7.25);
    expect(constant).toEqual([7.25, 7.25, 7.25]);
  });

  it("rejects invalid buckets, counts and extremes", () => {
    expect(() => quantilesFromBuckets([[-1, 1]], [0.5])).toThrow(RangeError);
    expect(() => quantilesFromBuckets([[MAX_BUCKET + 1, 1]], [0.5])).toThrow(RangeError);
    expect(() => quantilesFromBuckets([[10, -1]], [0.5])).toThrow(RangeError);
    expect(() => quantilesFromBuckets([[10, 1.5]], [0.5])).toThrow(RangeError);
    expect(() => quantilesFromBuckets([[10, 1]], [0.5], 5, 4)).toThrow(RangeError);
  });
});

describe("LatencyHistogram", () => {
  it("merge gives the same buckets, extremes and quantiles as adding everything to one histogram", () => {
    const random = rng(7);
    const all = new LatencyHistogram();
    const parts = [new LatencyHistogram(), new LatencyHistogram(), new LatencyHistogram()];
    for (let i = 0; i < 30_000; i++) {
      const v = distributions["log-normal"]!(random);
      all.add(v);
      parts[i % 3]!.add(v);
    }
    const merged = new LatencyHistogram();
    for (const p of parts) merged.merge(p);
    merged.merge(new LatencyHistogram());
    expect(merged.count).toBe(all.count);
    expect(merged.buckets()).toEqual(all.buckets());
    expect(merged.min).toBe(all.min);
    expect(merged.max).toBe(all.max);
    expect(merged.quantiles(qs)).toEqual(all.quantiles(qs));
  });

  it("add with a count equals repeated adds, and merging with itself doubles", () => {
    const a = new LatencyHistogram();
    a.add(12, 3);
    const b = new LatencyHistogram();
    for (let i = 0; i < 3; i++) b.add(12);
    expect(a.buckets()).toEqual(b.buckets());
    a.merge(a);
    expect(a.count).toBe(6);
    expect(a.buckets()).toEqual([[bucketOf(12), 6]]);
    a.add(5, 0);
    expect(a.count).toBe(6);
    expect(a.min).toBe(12);
    expect(() => a.add(5, -1)).toThrow(RangeError);
  });

  it("forgets the exact extremes once counts arrive by bucket, and still stays within bound", () => {
    const h = new LatencyHistogram();
    h.add(10);
    h.addBucket(bucketOf(30), 2);
    expect(h.count).toBe(3);
    expect(h.min).toBeUndefined();
    expect(h.max).toBeUndefined();
    expect(relativeError(h.quantile(0) as number, 10)).toBeLessThanOrEqual(RELATIVE_ACCURACY);
    expect(relativeError(h.quantile(1) as number, 30)).toBeLessThanOrEqual(RELATIVE_ACCURACY);

    const exact = new LatencyHistogram();
    exact.add(1);
    exact.merge(h);
    expect(exact.min).toBeUndefined();
    const fresh = new LatencyHistogram();
    fresh.merge(h);
    expect(fresh.max).toBeUndefined();
  });
});
