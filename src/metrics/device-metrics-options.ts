/**
 * Settings of the device metrics ingest: its limits, their defaults, and how the service's
 * configuration maps onto them and onto the smart data filter's options.
 *
 * @module
 */
import type { Config } from "../config.js";
import {
  DEFAULT_SMART_DATA_FILTER_OPTIONS,
  type MetricThreshold,
  type SmartDataFilterOptions,
} from "./smart-data-filter.js";

/** Limits of the ingest RPCs; defaults in {@link DEFAULT_INGEST_LIMITS}. */
export interface DeviceMetricsLimits {
  /** Samples in one message (the proto documents 1000). */
  readonly maxSamplesPerMessage: number;
  /** Encoded size of one message, enforced by Connect per message (`readMaxBytes`). */
  readonly maxMessageBytes: number;
  /** Streams open at once for one device. */
  readonly maxStreamsPerDevice: number;
  /**
   * Batches of one stream decided and being written, not yet acknowledged. A deep pipeline is
   * cheap (an in-flight batch holds only its kept rows; the message is released once decided)
   * and needed: an ack waits for a commit, so a stream moves at most this many batches per
   * commit; with every sample stored, a deep one also lets the next batches be decoded while a
   * flush commits. The depth is measured: docs/BENCHMARKS.md#measured-choices-in-the-code.
   */
  readonly maxInFlightBatches: number;
}

/** The documented defaults of {@link DeviceMetricsLimits}. */
export const DEFAULT_INGEST_LIMITS: DeviceMetricsLimits = Object.freeze({
  maxSamplesPerMessage: 1000,
  maxMessageBytes: 1024 * 1024,
  maxStreamsPerDevice: 4,
  maxInFlightBatches: 128,
});

/**
 * The filter and limit settings of the configuration. Rate metrics get an absolute rule; explicit
 * per-metric rules win over that; a metric the filter's defaults judge absolutely (`error_rate`)
 * but the configuration leaves out of the rate list is judged relatively, like any other.
 */
export function deviceMetricsOptionsFromConfig(
  config: Pick<
    Config,
    | "metricsSnapshotIntervalMs"
    | "metricsChangeThreshold"
    | "metricsZeroBaselineThreshold"
    | "metricsRateMetrics"
    | "metricsRateThreshold"
    | "metricsThresholds"
    | "metricsMaxFutureSkewMs"
    | "metricsMaxDevices"
    | "metricsIdleEvictionMs"
    | "metricsMaxSamplesPerMessage"
    | "metricsMaxMessageBytes"
    | "metricsMaxStreamsPerDevice"
    | "metricsMaxInFlightBatches"
    | "metricsMaxStateBytes"
  >,
): { filter: Partial<SmartDataFilterOptions>; limits: DeviceMetricsLimits } {
  const rules: Record<string, MetricThreshold> = {};
  for (const name of Object.keys(DEFAULT_SMART_DATA_FILTER_OPTIONS.metricThresholds)) {
    rules[name] = { kind: "relative", threshold: config.metricsChangeThreshold };
  }
  for (const name of config.metricsRateMetrics) rules[name] = { kind: "absolute", threshold: config.metricsRateThreshold };
  Object.assign(rules, config.metricsThresholds);
  return {
    filter: {
      snapshotIntervalMs: config.metricsSnapshotIntervalMs,
      changeThreshold: config.metricsChangeThreshold,
      zeroBaselineThreshold: config.metricsZeroBaselineThreshold,
      metricThresholds: rules,
      maxFutureSkewMs: config.metricsMaxFutureSkewMs,
      maxDevices: config.metricsMaxDevices,
      maxStateBytes: config.metricsMaxStateBytes,
      idleEvictionMs: config.metricsIdleEvictionMs,
    },
    limits: {
      maxSamplesPerMessage: config.metricsMaxSamplesPerMessage,
      maxMessageBytes: config.metricsMaxMessageBytes,
      maxStreamsPerDevice: config.metricsMaxStreamsPerDevice,
      maxInFlightBatches: config.metricsMaxInFlightBatches,
    },
  };
}
