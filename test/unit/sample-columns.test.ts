import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { MetricSampleSchema, SampleColumnsSchema } from "../../sdk/src/gen/analytics/v1/analytics_service_pb.js";
import { MapSampleBatch, sampleBatchOf } from "../../src/metrics/sample-batch.js";
import { checkSampleColumns, ColumnarSampleBatch } from "../../src/metrics/sample-columns.js";
import { SmartDataFilter } from "../../src/metrics/smart-data-filter.js";

const T0 = 1_700_000_000_000;

const columns = (names: string[], offsetsMs: number[], values: number[], baseMs: number | null = T0) =>
  create(SampleColumnsSchema, {
    metricNames: names,
    offsetsMs,
    values,
    ...(baseMs === null ? {} : { baseTime: timestampFromMs(baseMs) }),
  });

/** Every sample's decision, time (when stored) and stored metrics, in order. */
function decideAll(batch: ColumnarSampleBatch | MapSampleBatch, filter = new SmartDataFilter()) {
  return Array.from({ length: batch.length }, (_, i) => {
    const decision = batch.decide(filter, "dev-1", i, T0 + 60_000);
    return decision.action === "store"
      ? { decision, atMs: batch.occurredAtMs(i), metrics: { ...batch.metrics(i) } }
      : { decision };
  });
}

describe("checkSampleColumns", () => {
  it("accepts samples x names values, and no names with no values", () => {
    expect(checkSampleColumns(columns(["cpu", "mem"], [0, 1000], [1, 2, 3, 4]))).toEqual([]);
    expect(checkSampleColumns(columns([], [0, 1000], []))).toEqual([]);
  });

  it("names a repeated metric name and a value count that is not samples x names", () => {
    expect(checkSampleColumns(columns(["cpu", "mem", "cpu"], [0], [1, 2]))).toEqual([
      { field: "columns.metric_names", description: 'names "cpu" more than once' },
      { field: "columns.values", description: "must hold one value per sample and metric name, 1 x 3 = 3 (got 2)" },
    ]);
    expect(checkSampleColumns(columns([], [0], [1]))).toEqual([
      { field: "columns.values", description: "must hold one value per sample and metric name, 1 x 0 = 0 (got 1)" },
    ]);
  });
});

describe("ColumnarSampleBatch", () => {
  it("decides each row at base_time + its offset, and stores the row's values under the names", () => {
    const batch = new ColumnarSampleBatch(columns(["cpu", "temp"], [0, 1000, 2000], [50, 20, 50.5, 20, 70, 20]));
    expect(batch.length).toBe(3);
    expect(batch.field).toBe("columns.offsets_ms");
    expect(batch.violations).toEqual([]);
    expect(decideAll(batch)).toEqual([
      { decision: { action: "store", reason: "first_contact" }, atMs: T0, metrics: { cpu: 50, temp: 20 } },
      { decision: { action: "filter" } },
      { decision: { action: "store", reason: "significant_change", changedMetric: "cpu" }, atMs: T0 + 2000, metrics: { cpu: 70, temp: 20 } },
    ]);
  });

  it("keeps times to the millisecond: sub-millisecond nanos of base_time are dropped", () => {
    const message = columns(["cpu"], [0, 7], [1, 9]);
    message.baseTime = { ...message.baseTime!, nanos: 123_999_999 };
    const batch = new ColumnarSampleBatch(message);
    expect(decideAll(batch).map((d) => d.atMs)).toEqual([T0 + 123, T0 + 130]);
  });

  it("answers the same samples as the map form does: decisions, codes and messages, per index", () => {
    const names = ["cpu", "error_rate"];
    const rows = [
      [40, 0.01],
      [40.5, 0.015],
      [Number.NaN, 0.01],
      [60, 0.015],
      [61, Number.POSITIVE_INFINITY],
    ];
    const offsets = [0, 1000, 2000, 3000, 4000];
    const asColumns = new ColumnarSampleBatch(columns(names, offsets, rows.flat()));
    const asMaps = new MapSampleBatch(
      rows.map((row, i) =>
        create(MetricSampleSchema, { occurredAt: timestampFromMs(T0 + offsets[i]!), metrics: { cpu: row[0]!, error_rate: row[1]! } }),
      ),
    );
    const fromColumns = decideAll(asColumns);
    expect(fromColumns).toEqual(decideAll(asMaps));
    expect(fromColumns.map((d) => (d.decision.action === "reject" ? d.decision.code : d.decision.action))).toEqual([
      "store",
      "filter",
      "non_finite_value",
      "store",
      "non_finite_value",
    ]);
  });

  it("rejects every sample when base_time is missing, and every sample when it has no names", () => {
    expect(decideAll(new ColumnarSampleBatch(columns(["cpu"], [0, 1], [1, 2], null))).map((d) => d.decision)).toEqual([
      { action: "reject", code: "invalid_timestamp", message: "columns.base_time is missing" },
      { action: "reject", code: "invalid_timestamp", message: "columns.base_time is missing" },
    ]);
    expect(decideAll(new ColumnarSampleBatch(columns([], [0, 1], []))).map((d) => d.decision)).toEqual([
      { action: "reject", code: "empty_metrics", message: "the sample has no metrics" },
      { action: "reject", code: "empty_metrics", message: "the sample has no metrics" },
    ]);
  });

  it("keeps a metric named __proto__ as a metric in the stored row", () => {
    const batch = new ColumnarSampleBatch(columns(["__proto__"], [0], [7]));
    batch.decide(new SmartDataFilter(), "dev-1", 0, T0);
    const metrics = batch.metrics(0);
    expect(Object.keys(metrics)).toEqual(["__proto__"]);
    expect(JSON.stringify(metrics)).toBe('{"__proto__":7}');
  });
});

describe("sampleBatchOf", () => {
  const mapSample = create(MetricSampleSchema, { occurredAt: timestampFromMs(T0), metrics: { cpu: 1 } });

  it("reads the columnar form from columns, the map form from samples", () => {
    const fromColumns = sampleBatchOf({ samples: [], metricNames: [], columns: columns(["cpu"], [0], [1]) });
    expect(fromColumns).toBeInstanceOf(ColumnarSampleBatch);
    expect(fromColumns.violations).toEqual([]);
    const fromSamples = sampleBatchOf({ samples: [mapSample], metricNames: [] });
    expect(fromSamples).toBeInstanceOf(MapSampleBatch);
    expect([fromSamples.length, fromSamples.field, fromSamples.violations]).toEqual([1, "samples", []]);
  });

  it("expands the compact form into maps, and carries its violations rather than throwing", () => {
    const compact = create(MetricSampleSchema, { occurredAt: timestampFromMs(T0), values: [1, 2] });
    const batch = sampleBatchOf({ samples: [compact], metricNames: ["cpu", "mem"] });
    expect({ ...batch.metrics(0) }).toEqual({ cpu: 1, mem: 2 });
    const bad = sampleBatchOf({ samples: [create(MetricSampleSchema, { values: [1] })], metricNames: ["cpu", "mem"] });
    expect(bad.violations).toEqual([{ field: "samples[0].values", description: "must hold one value per metric name (2, got 1)" }]);
  });

  it("refuses a message carrying columns and samples (or metric_names), listing that first", () => {
    const both = "must not be sent together with samples or metric_names (one form per message)";
    expect(sampleBatchOf({ samples: [mapSample], metricNames: [], columns: columns(["cpu"], [0], [1]) }).violations).toEqual([
      { field: "columns", description: both },
    ]);
    expect(sampleBatchOf({ samples: [], metricNames: ["cpu"], columns: columns(["cpu", "cpu"], [0], [1, 2]) }).violations).toEqual([
      { field: "columns", description: both },
      { field: "columns.metric_names", description: 'names "cpu" more than once' },
    ]);
  });
});
