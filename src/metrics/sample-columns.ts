/**
 * The columnar sample form (`SampleColumns`: names once, a base time, packed millisecond offsets
 * and row-major values) read as a {@link SampleBatch} straight from its arrays: no message, map
 * or object per sample, except the `metrics` object of a sample that is stored. Pure.
 *
 * What is malformed as a whole (answered `InvalidArgument`): names repeated, or a value count that
 * is not samples x names; the map form cannot express either, so there is no per-sample answer to
 * keep. Everything the map form can express is answered per sample exactly as the map form
 * answers it (a non-finite value, a bad or missing name, a missing time), so a device gets the
 * same counts and rejection indices whichever form it sends.
 *
 * @module
 */
import type { SampleColumns } from "../../sdk/src/gen/analytics/v1/analytics_service_pb.js";
import type { Violation } from "../validation/field-rules.js";
import type { SampleBatch } from "./sample-batch.js";
import { repeatedName, sampleTimeMs } from "./sample-fields.js";
import type { FilterDecision, MetricNames, SmartDataFilter } from "./smart-data-filter.js";

/** The fields of a `SampleColumns` message. */
export type SampleColumnsFields = Pick<SampleColumns, "metricNames" | "baseTime" | "offsetsMs" | "values">;

/**
 * Why a columnar message is malformed as a whole, with proto field paths under `columns`; empty
 * when it is well-formed. The sample count is the ingest's to check (`columns.offsets_ms`).
 */
export function checkSampleColumns(columns: SampleColumnsFields): Violation[] {
  const violations: Violation[] = [];
  const names = columns.metricNames;
  const repeated = repeatedName(names);
  if (repeated !== undefined) violations.push({ field: "columns.metric_names", description: `names "${repeated}" more than once` });
  const want = columns.offsetsMs.length * names.length;
  if (columns.values.length !== want) {
    violations.push({
      field: "columns.values",
      description:
        `must hold one value per sample and metric name, ${columns.offsetsMs.length} x ${names.length} = ${want} ` +
        `(got ${columns.values.length})`,
    });
  }
  return violations;
}

/** A `SampleColumns` message as a {@link SampleBatch}; see the module documentation. */
export class ColumnarSampleBatch implements SampleBatch {
  readonly field = "columns.offsets_ms";
  readonly violations: readonly Violation[];
  readonly #columns: SampleColumnsFields;
  readonly #width: number;
  readonly #base: number | FilterDecision;
  /** The names as checked by the filter that decides this batch (there is one per process). */
  #names: MetricNames | undefined;
  #namesOf: SmartDataFilter | undefined;
  /** Whether a metric is called "__proto__" (decided on the first stored sample). */
  #protoName: boolean | undefined;

  /** @param violations problems found by the caller (e.g. a second form in the message), listed first. */
  constructor(columns: SampleColumnsFields, violations: readonly Violation[] = []) {
    this.#columns = columns;
    this.#width = columns.metricNames.length;
    // Epoch ms of `base_time`, or the rejection every sample then gets.
    this.#base = sampleTimeMs(columns.baseTime, "columns.base_time");
    this.violations = [...violations, ...checkSampleColumns(columns)];
  }

  get length(): number {
    return this.#columns.offsetsMs.length;
  }

  decide(filter: SmartDataFilter, deviceId: string, index: number, nowMs: number): FilterDecision {
    const base = this.#base;
    if (typeof base !== "number") return base;
    if (this.#namesOf !== filter) {
      this.#names = filter.metricNames(this.#columns.metricNames);
      this.#namesOf = filter;
    }
    const { offsetsMs, values } = this.#columns;
    return filter.decideValues(deviceId, base + offsetsMs[index]!, this.#names!, values, index * this.#width, nowMs);
  }

  occurredAtMs(index: number): number {
    return (this.#base as number) + this.#columns.offsetsMs[index]!;
  }

  metrics(index: number): Readonly<Record<string, number>> {
    const { metricNames, values } = this.#columns;
    // A plain object, built in the same key order for every row of the message, stays in V8's
    // fast mode, which JSON.stringify (the writer's next step) serializes faster than the
    // dictionary a null-prototype object is (docs/BENCHMARKS.md#measured-choices-in-the-code). Only a metric called "__proto__" needs the
    // null prototype (on a plain object it would set the prototype, not a metric).
    this.#protoName ??= metricNames.includes("__proto__");
    const metrics: Record<string, number> = this.#protoName ? Object.create(null) : {};
    const offset = index * this.#width;
    for (let j = 0; j < metricNames.length; j++) metrics[metricNames[j]!] = values[offset + j]!;
    return metrics;
  }
}
