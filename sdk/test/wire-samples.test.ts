import { create, toBinary } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { MetricSampleSchema, StreamDeviceMetricsRequestSchema } from "../src/gen/analytics/v1/analytics_service_pb.js";
import { wireSamples } from "../src/device/metrics-streamer.js";

const T0 = 1_700_000_000_000;
const sample = (ms: number, metrics: Record<string, number>) => create(MetricSampleSchema, { occurredAt: timestampFromMs(ms), metrics });
/** The epoch ms the server stores a map-form sample under. */
const storedMs = (s: { occurredAt?: { seconds: bigint; nanos: number } }) => Number(s.occurredAt!.seconds) * 1000 + Math.floor(s.occurredAt!.nanos / 1e6);

describe("wireSamples", () => {
  it("sends samples with the same metrics in the columnar form: names once, earliest time as base, ms offsets, values row by row", () => {
    const wire = wireSamples([sample(T0 + 1500, { cpu: 1, temp: 20 }), sample(T0 + 999, { temp: 21, cpu: 2 }), sample(T0 + 2999, { cpu: 3, temp: 22 })]);
    expect(wire.samples).toEqual([]);
    const columns = wire.columns!;
    expect(columns.metricNames).toEqual(["cpu", "temp"]);
    expect(storedMs({ occurredAt: columns.baseTime! })).toBe(T0 + 999);
    expect(columns.offsetsMs).toEqual([501, 0, 2000]);
    expect(columns.values).toEqual([1, 20, 2, 21, 3, 22]);
  });

  it("gives every sample the millisecond the server would store it under in the map form", () => {
    const samples = [sample(T0, { cpu: 1 }), sample(T0 + 1, { cpu: 2 })];
    samples[0]!.occurredAt!.nanos += 999_999; // sub-millisecond: the server drops it in either form
    samples[1]!.occurredAt!.nanos += 123_456;
    const columns = wireSamples(samples).columns!;
    const base = storedMs({ occurredAt: columns.baseTime! });
    expect(columns.offsetsMs.map((o) => base + o)).toEqual(samples.map(storedMs));
    expect(columns.baseTime!.nanos % 1_000_000).toBe(0);
  });

  it("keeps a non-finite value as it is: the server rejects that sample, as in the map form", () => {
    expect(wireSamples([sample(T0, { cpu: Number.NaN })]).columns!.values).toEqual([Number.NaN]);
  });

  it("costs a fraction of the map form's bytes on the wire", () => {
    const names = ["cpu", "mem", "disk", "net_in", "net_out", "temperature", "error_rate", "queue_depth", "latency_p50", "latency_p99"];
    const samples = Array.from({ length: 100 }, (_, i) => sample(T0 + i * 1000, Object.fromEntries(names.map((n, j) => [n, i * 10 + j + 0.5]))));
    const bytes = (fields: object) => toBinary(StreamDeviceMetricsRequestSchema, create(StreamDeviceMetricsRequestSchema, { sequence: 1n, deviceId: "d", ...fields })).length;
    const columnar = bytes(wireSamples(samples));
    const map = bytes({ samples });
    // 1000 values of 8 bytes, 100 offsets of at most 3 bytes, the names once, and a few tags.
    expect(columnar).toBeLessThan(8000 + 300 + 200);
    expect(columnar / map).toBeLessThan(0.5);
  });

  it.each<[string, () => ReturnType<typeof sample>[]]>([
    ["the metric sets differ", () => [sample(T0, { cpu: 1 }), sample(T0 + 1, { cpu: 2, temp: 3 })]],
    ["a sample has no metrics", () => [sample(T0, {}), sample(T0 + 1, {})]],
    ["a time is missing", () => [sample(T0, { cpu: 1 }), create(MetricSampleSchema, { metrics: { cpu: 2 } })]],
    [
      "a time is malformed",
      () => {
        const bad = sample(T0, { cpu: 1 });
        bad.occurredAt!.nanos = -1;
        return [bad];
      },
    ],
    ["the samples span 2^32 ms or more", () => [sample(T0, { cpu: 1 }), sample(T0 + 2 ** 32, { cpu: 2 })]],
  ])("falls back to the map form when %s, so the server answers each sample as it is", (_label, make) => {
    const samples = make();
    const wire = wireSamples(samples);
    expect(wire.columns).toBeUndefined();
    expect(wire.samples).toEqual(samples);
  });

  it("still uses the columnar form at the largest span an offset holds", () => {
    const columns = wireSamples([sample(T0, { cpu: 1 }), sample(T0 + 2 ** 32 - 1, { cpu: 2 })]).columns!;
    expect(columns.offsetsMs).toEqual([0, 2 ** 32 - 1]);
    // and it survives the uint32 encoding
    const bytes = toBinary(StreamDeviceMetricsRequestSchema, create(StreamDeviceMetricsRequestSchema, { columns }));
    expect(bytes.length).toBeGreaterThan(0);
  });
});
