import { describe, expect, it } from "vitest";
import { getHeapStatistics } from "node:v8";
import { ConfigError, loadConfig } from "../../src/config.js";
import { deviceMetricsOptionsFromConfig } from "../../src/metrics/device-metrics-ingest.js";

describe("device metrics settings", () => {
  it("have the documented defaults", () => {
    expect(loadConfig({})).toMatchObject({
      metricsSnapshotIntervalMs: 300_000,
      metricsChangeThreshold: 0.05,
      metricsZeroBaselineThreshold: 1.0,
      metricsRateMetrics: ["error_rate"],
      metricsRateThreshold: 0.01,
      metricsThresholds: {},
      metricsMaxFutureSkewMs: 300_000,
      metricsMaxDevices: 100_000,
      metricsIdleEvictionMs: 3_600_000,
      metricsMaxSamplesPerMessage: 1000,
      metricsMaxMessageBytes: 1_048_576,
      metricsMaxStreamsPerDevice: 4,
      metricsMaxInFlightBatches: 128,
      metricsMaxStateBytes: Math.floor(getHeapStatistics().heap_size_limit / 8),
    });
  });

  it("cap the filter's state in MiB, passed on to the filter", () => {
    const config = loadConfig({ ANALYTICS_METRICS_MAX_STATE_MB: "64" });
    expect(config.metricsMaxStateBytes).toBe(64 * 1024 * 1024);
    expect(deviceMetricsOptionsFromConfig(config).filter.maxStateBytes).toBe(64 * 1024 * 1024);
    expect(() => loadConfig({ ANALYTICS_METRICS_MAX_STATE_MB: "0" })).toThrowError(/ANALYTICS_METRICS_MAX_STATE_MB="0" must be an integer from 1/);
  });

  it("read decimals, metric lists and per-metric rules", () => {
    expect(
      loadConfig({
        ANALYTICS_METRICS_CHANGE_THRESHOLD: "0.1",
        ANALYTICS_METRICS_ZERO_BASELINE_THRESHOLD: "0",
        ANALYTICS_METRICS_RATE_METRICS: "error_rate, packet_loss,,",
        ANALYTICS_METRICS_RATE_THRESHOLD: "2.5e-2",
        ANALYTICS_METRICS_THRESHOLDS: "temperature=relative:0.1, battery=absolute:2",
      }),
    ).toMatchObject({
      metricsChangeThreshold: 0.1,
      metricsZeroBaselineThreshold: 0,
      metricsRateMetrics: ["error_rate", "packet_loss"],
      metricsRateThreshold: 0.025,
      metricsThresholds: { temperature: { kind: "relative", threshold: 0.1 }, battery: { kind: "absolute", threshold: 2 } },
    });
  });

  it.each([
    ["ANALYTICS_METRICS_CHANGE_THRESHOLD", "0", /ANALYTICS_METRICS_CHANGE_THRESHOLD="0" must be a number above 0/],
    ["ANALYTICS_METRICS_CHANGE_THRESHOLD", "5%", /must be a number above 0/],
    ["ANALYTICS_METRICS_RATE_THRESHOLD", "-1", /ANALYTICS_METRICS_RATE_THRESHOLD="-1" must be a number from 0/],
    ["ANALYTICS_METRICS_RATE_METRICS", "error rate", /has an invalid metric name "error rate"/],
    ["ANALYTICS_METRICS_THRESHOLDS", "temperature=0.1", /has a bad entry "temperature=0.1": write name=relative:RATIO/],
    ["ANALYTICS_METRICS_THRESHOLDS", "t=relative:0", /has a bad entry "t=relative:0"/],
    ["ANALYTICS_METRICS_MAX_SAMPLES_PER_MESSAGE", "1001", /must be an integer from 1 to 1000/],
    ["ANALYTICS_METRICS_MAX_MESSAGE_BYTES", "100", /must be an integer from 1024/],
  ])("reject %s=%s with a message naming it", (name, value, message) => {
    expect(() => loadConfig({ [name]: value })).toThrowError(ConfigError);
    expect(() => loadConfig({ [name]: value })).toThrowError(message);
  });
});
