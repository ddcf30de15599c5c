/**
 * The samples of one ingest message, whatever form they came in: a `metrics` map per sample, the
 * compact form (`metric_names` + `values` per sample, expanded into maps), or the columnar form
 * (`columns`, decided straight from its arrays). The ingest decides and stores every form through
 * the one {@link SampleBatch} interface, so the answer to a batch (counts, rejection codes and
 * indices) does not depend on the form a device chose. Pure: no I/O, no clock.
 *
 * @module
 */
import type { MetricSample as MetricSampleMessage, SampleColumns } from "../../sdk/src/gen/analytics/v1/analytics_service_pb.js";
import type { Violation } from "../validation/field-rules.js";
import { expandCompactSamples } from "./compact-samples.js";
import { ColumnarSampleBatch } from "./sample-columns.js";
import { sampleTimeMs } from "./sample-fields.js";
import type { FilterDecision, SmartDataFilter } from "./smart-data-filter.js";

/** The samples of one message, read by index (the index rejections name). */
export interface SampleBatch {
  /** Samples in the message. */
  readonly length: number;
  /** The proto field that holds the samples, named when their count is out of bounds. */
  readonly field: string;
  /**
   * Why the message is malformed as a whole (answered `InvalidArgument`); empty when it is not.
   * A malformed message must not be decided.
   */
  readonly violations: readonly Violation[];
  /**
   * Runs sample `index` through the filter (a missing or malformed time is rejected here, before
   * the filter), updating the filter's state as `SmartDataFilter.decide` does.
   */
  decide(filter: SmartDataFilter, deviceId: string, index: number, nowMs: number): FilterDecision;
  /** The time of sample `index` in epoch ms; valid once `decide` has stored it. */
  occurredAtMs(index: number): number;
  /** The metrics of sample `index`, as stored in the row's `metrics` column. */
  metrics(index: number): Readonly<Record<string, number>>;
}

/** The parts of `StreamDeviceMetricsRequest` and `IngestDeviceMetricsRequest` that carry samples. */
export interface SampleFields {
  readonly samples: readonly MetricSampleMessage[];
  readonly metricNames: readonly string[];
  readonly columns?: SampleColumns | undefined;
}

/** The map form: one `MetricSample` message with a `metrics` map per sample. */
export class MapSampleBatch implements SampleBatch {
  readonly field = "samples";
  readonly #samples: readonly MetricSampleMessage[];
  readonly #times: number[];

  constructor(samples: readonly MetricSampleMessage[], readonly violations: readonly Violation[] = []) {
    this.#samples = samples;
    this.#times = new Array<number>(samples.length);
  }

  get length(): number {
    return this.#samples.length;
  }

  decide(filter: SmartDataFilter, deviceId: string, index: number, nowMs: number): FilterDecision {
    const sample = this.#samples[index]!;
    const occurredAtMs = sampleTimeMs(sample.occurredAt, "occurred_at");
    if (typeof occurredAtMs !== "number") return occurredAtMs;
    this.#times[index] = occurredAtMs;
    return filter.decide({ deviceId, occurredAtMs, metrics: sample.metrics }, nowMs);
  }

  occurredAtMs(index: number): number {
    return this.#times[index]!;
  }

  metrics(index: number): Readonly<Record<string, number>> {
    return this.#samples[index]!.metrics;
  }
}

/**
 * The {@link SampleBatch} of a request, in the form it came in. Never throws: a malformed message
 * (both forms at once, a malformed compact or columnar form) is a batch with `violations`, so the
 * caller rejects it with the context it has (on a stream, the batch's sequence).
 */
export function sampleBatchOf(request: SampleFields): SampleBatch {
  const { columns, samples, metricNames } = request;
  if (columns !== undefined) {
    // Which form would the device mean? Guessing could store the wrong samples: refuse both.
    const both: Violation[] =
      samples.length === 0 && metricNames.length === 0
        ? []
        : [{ field: "columns", description: "must not be sent together with samples or metric_names (one form per message)" }];
    return new ColumnarSampleBatch(columns, both);
  }
  // Compact samples are expanded in place into maps (see compact-samples.ts), then read as maps.
  return new MapSampleBatch(samples, expandCompactSamples(metricNames, samples));
}
