import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { MetricSampleSchema } from "../../sdk/src/gen/analytics/v1/analytics_service_pb.js";
import { expandCompactSamples } from "../../src/metrics/compact-samples.js";

const sample = (values: number[], metrics: Record<string, number> = {}) =>
  create(MetricSampleSchema, { occurredAt: timestampFromMs(1_700_000_000_000), values, metrics });

describe("expandCompactSamples", () => {
  it("fills metrics from values in name order and leaves map samples alone", () => {
    const samples = [sample([1.5, 20]), sample([], { cpu: 3 })];
    expect(expandCompactSamples(["cpu", "temp"], samples)).toEqual([]);
    expect({ ...samples[0]!.metrics }).toEqual({ cpu: 1.5, temp: 20 });
    expect(samples[1]!.metrics).toEqual({ cpu: 3 });
  });

  it("keeps a metric named __proto__ as a metric", () => {
    const samples = [sample([7])];
    expandCompactSamples(["__proto__"], samples);
    expect(Object.keys(samples[0]!.metrics)).toEqual(["__proto__"]);
    expect(samples[0]!.metrics["__proto__"]).toBe(7);
  });

  it("names every malformed sample", () => {
    expect(expandCompactSamples([], [sample([1])])).toEqual([{ field: "samples[0].values", description: "needs the request's metric_names" }]);
    expect(expandCompactSamples(["a", "b"], [sample([1, 2]), sample([1])])).toEqual([
      { field: "samples[1].values", description: "must hold one value per metric name (2, got 1)" },
    ]);
    expect(expandCompactSamples(["a"], [sample([1], { a: 1 })])).toEqual([{ field: "samples[0]", description: "must carry metrics or values, not both" }]);
    expect(expandCompactSamples(["a", "a"], [sample([1, 2])])).toEqual([{ field: "metric_names", description: 'names "a" more than once' }]);
  });
});
