/**
 * What the smart data filter (`smart-data-filter.ts`) takes and gives: a sample, its decision
 * with the reason or rejection code, and the running totals.
 *
 * Why apart from the rules: the sample forms and storage (`sample-batch.ts`, `sample-columns.ts`,
 * `sample-fields.ts`) speak these types without needing the filter itself.
 *
 * @module
 */

/** One telemetry sample as received from a device. */
export interface MetricSample {
  /** Device that produced the sample. */
  readonly deviceId: string;
  /** When the device took the sample, in Unix epoch milliseconds (device clock). */
  readonly occurredAtMs: number;
  /** Metric name to value. A plain object, as protobuf-es decodes `map<string, double>`. */
  readonly metrics: Readonly<Record<string, number>>;
}

/** Why a sample was stored. */
export type StoreReason = "first_contact" | "heartbeat" | "significant_change";

/** Stable, machine-readable reason a sample was rejected. */
export type FilterRejectCode =
  | "missing_device_id"
  | "device_id_too_long"
  | "invalid_timestamp"
  | "future_timestamp"
  | "empty_metrics"
  | "too_many_metrics"
  | "invalid_metric_name"
  | "metric_name_too_long"
  | "non_finite_value";

/** The outcome of {@link SmartDataFilter.decide}. */
export type FilterDecision =
  | { readonly action: "store"; readonly reason: "first_contact" | "heartbeat" }
  | {
      readonly action: "store";
      readonly reason: "significant_change";
      /** First metric found to have changed, appeared or disappeared. */
      readonly changedMetric: string;
    }
  | { readonly action: "filter" }
  | { readonly action: "reject"; readonly code: FilterRejectCode; readonly message: string };

/** Running totals since the filter was created. */
export interface SmartDataFilterCounters {
  readonly stored: number;
  readonly filtered: number;
  readonly rejected: number;
  /**
   * Devices dropped by the `maxDevices` or `maxStateBytes` cap or by {@link SmartDataFilter.evictIdle};
   * `forget` is not counted.
   */
  readonly evicted: number;
}
