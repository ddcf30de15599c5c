import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { MetricSampleSchema } from "../src/gen/analytics/v1/analytics_service_pb.js";
import { wireSamples } from "../src/device/metrics-streamer.js";

const sample = (ms: number, metrics: Record<string, number>) => create(MetricSampleSchema, { occurredAt: timestampFromMs(ms), metrics });

describe("wireSamples", () => {
  it("sends samples with the same metrics in the compact form, values in name order", () => {
    const wire = wireSamples([sample(1, { cpu: 1, temp: 20 }), sample(2, { temp: 21, cpu: 2 })]);
    expect(wire.metricNames).toEqual(["cpu", "temp"]);
    expect(wire.samples.map((s) => [Number(s.occurredAt!.seconds) * 1000 + s.occurredAt!.nanos / 1e6, s.values, s.metrics])).toEqual([
      [1, [1, 20], {}],
      [2, [2, 21], {}],
    ]);
  });

  it("falls back to the map form when the metric sets differ", () => {
    const samples = [sample(1, { cpu: 1 }), sample(2, { cpu: 2, temp: 3 })];
    expect(wireSamples(samples)).toEqual({ metricNames: [], samples });
  });
});
