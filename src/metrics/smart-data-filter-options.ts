/**
 * Options of the smart data filter (`smart-data-filter.ts`): what they mean, their defaults, and
 * the check that refuses a bad configuration at start-up.
 *
 * @module
 */

/**
 * How one metric is judged to have changed.
 * - `relative`: changed when `|new - old| / |old| >= threshold` (inclusive). When `old` is 0 the
 *   ratio is undefined, so `zeroBaselineThreshold` applies instead.
 * - `absolute`: changed when `|new - old| > threshold` (strict). Suits rates and ratios, where
 *   a move from 0.001 to 0.002 is noise even though it doubles.
 */
export interface MetricThreshold {
  readonly kind: "relative" | "absolute";
  readonly threshold: number;
}

/** Configuration of the `SmartDataFilter`. Defaults: {@link DEFAULT_SMART_DATA_FILTER_OPTIONS}. */
export interface SmartDataFilterOptions {
  /**
   * A sample at least this long after the last stored one is stored regardless (heartbeat).
   * Default 300 000 (5 min).
   */
  readonly snapshotIntervalMs: number;
  /** Relative change, inclusive, that makes a metric significant. Default 0.05 (5 %). */
  readonly changeThreshold: number;
  /** For relative metrics whose stored value is 0: store when `|new|` exceeds this (strict). Default 1.0. */
  readonly zeroBaselineThreshold: number;
  /**
   * Per-metric rules, merged over the defaults metric by metric (so passing `temperature` keeps
   * the `error_rate` rule; to judge `error_rate` relatively, override it). Default:
   * `{ error_rate: { kind: "absolute", threshold: 0.01 } }`.
   */
  readonly metricThresholds: Readonly<Record<string, MetricThreshold>>;
  /** Samples dated further than this ahead of the caller's `nowMs` are rejected. Default 300 000 (5 min). */
  readonly maxFutureSkewMs: number;
  /** Longest accepted device id and metric name, in UTF-16 code units. Default 128. */
  readonly maxIdLength: number;
  /** Most metrics accepted in one sample. Default 256. */
  readonly maxMetricsPerSample: number;
  /** Most devices tracked at once; the least recently seen is evicted beyond it. Default 100 000. */
  readonly maxDevices: number;
  /**
   * Most bytes of state kept, as `SmartDataFilter.stateBytes` estimates them; the least
   * recently seen devices are evicted beyond it. A device count alone does not bound memory: with
   * 256 unique 128-character metric names a device costs ~80 KB. Default 512 MiB (the service
   * sets a share of the heap, `ANALYTICS_METRICS_MAX_STATE_MB`).
   */
  readonly maxStateBytes: number;
  /**
   * A device not seen for this long (sample time) is evicted by `SmartDataFilter.evictIdle`.
   * Default 3 600 000 (1 h).
   */
  readonly idleEvictionMs: number;
}

/** The defaults documented on {@link SmartDataFilterOptions}. */
export const DEFAULT_SMART_DATA_FILTER_OPTIONS: SmartDataFilterOptions = Object.freeze({
  snapshotIntervalMs: 300_000,
  changeThreshold: 0.05,
  zeroBaselineThreshold: 1.0,
  metricThresholds: Object.freeze({
    error_rate: Object.freeze({ kind: "absolute", threshold: 0.01 } as const),
  }),
  maxFutureSkewMs: 300_000,
  maxIdLength: 128,
  maxMetricsPerSample: 256,
  maxDevices: 100_000,
  maxStateBytes: 512 * 1024 * 1024,
  idleEvictionMs: 3_600_000,
});

const OPTION_KEYS = Object.keys(DEFAULT_SMART_DATA_FILTER_OPTIONS) as (keyof SmartDataFilterOptions)[];

/**
 * Fills in defaults and checks that the options make sense.
 *
 * @returns the complete, frozen options.
 * @throws Error listing every problem (unknown keys, negative or non-finite numbers, non-integer
 *   caps, unknown threshold kinds), so a bad configuration fails at start-up with one message.
 */
export function validateFilterOptions(options: Partial<SmartDataFilterOptions> = {}): SmartDataFilterOptions {
  const problems: string[] = [];
  for (const key of Object.keys(options)) {
    if (!(OPTION_KEYS as string[]).includes(key)) problems.push(`unknown option "${key}"`);
  }
  const d = DEFAULT_SMART_DATA_FILTER_OPTIONS;
  const resolved: SmartDataFilterOptions = {
    snapshotIntervalMs: options.snapshotIntervalMs ?? d.snapshotIntervalMs,
    changeThreshold: options.changeThreshold ?? d.changeThreshold,
    zeroBaselineThreshold: options.zeroBaselineThreshold ?? d.zeroBaselineThreshold,
    metricThresholds: Object.freeze({ ...d.metricThresholds, ...options.metricThresholds }),
    maxFutureSkewMs: options.maxFutureSkewMs ?? d.maxFutureSkewMs,
    maxIdLength: options.maxIdLength ?? d.maxIdLength,
    maxMetricsPerSample: options.maxMetricsPerSample ?? d.maxMetricsPerSample,
    maxDevices: options.maxDevices ?? d.maxDevices,
    maxStateBytes: options.maxStateBytes ?? d.maxStateBytes,
    idleEvictionMs: options.idleEvictionMs ?? d.idleEvictionMs,
  };

  const check = (name: string, value: unknown, ok: (v: number) => boolean, want: string): void => {
    if (typeof value !== "number" || Number.isNaN(value) || !ok(value)) {
      problems.push(`${name} must be ${want} (got ${String(value)})`);
    }
  };
  const positiveFinite = (v: number): boolean => Number.isFinite(v) && v > 0;
  const nonNegativeFinite = (v: number): boolean => Number.isFinite(v) && v >= 0;
  const positiveInteger = (v: number): boolean => Number.isSafeInteger(v) && v > 0;

  // A zero interval or a zero relative threshold would store every sample, resends included.
  check("snapshotIntervalMs", resolved.snapshotIntervalMs, positiveFinite, "a positive finite number");
  check("changeThreshold", resolved.changeThreshold, positiveFinite, "a positive finite number");
  check("zeroBaselineThreshold", resolved.zeroBaselineThreshold, nonNegativeFinite, "a finite number >= 0");
  check("maxFutureSkewMs", resolved.maxFutureSkewMs, nonNegativeFinite, "a finite number >= 0");
  check("maxIdLength", resolved.maxIdLength, positiveInteger, "a positive integer");
  check("maxMetricsPerSample", resolved.maxMetricsPerSample, positiveInteger, "a positive integer");
  check("maxDevices", resolved.maxDevices, positiveInteger, "a positive integer");
  check("maxStateBytes", resolved.maxStateBytes, positiveInteger, "a positive integer");
  check("idleEvictionMs", resolved.idleEvictionMs, (v) => v > 0, "a positive number (Infinity disables)");

  const rules: unknown = options.metricThresholds;
  if (rules !== undefined && (typeof rules !== "object" || rules === null || Array.isArray(rules))) {
    problems.push("metricThresholds must be an object of metric name to { kind, threshold }");
  } else {
    for (const [metric, rule] of Object.entries(resolved.metricThresholds) as [string, unknown][]) {
      const where = `metricThresholds["${metric}"]`;
      if (metric.length === 0) problems.push("metricThresholds has an empty metric name");
      if (typeof rule !== "object" || rule === null) {
        problems.push(`${where} must be { kind, threshold }`);
        continue;
      }
      const { kind, threshold } = rule as Partial<MetricThreshold>;
      if (kind === "relative") check(`${where}.threshold`, threshold, positiveFinite, "a positive finite number");
      else if (kind === "absolute") check(`${where}.threshold`, threshold, nonNegativeFinite, "a finite number >= 0");
      else problems.push(`${where}.kind must be "relative" or "absolute" (got ${String(kind)})`);
    }
  }

  if (problems.length > 0) throw new Error(`invalid smart data filter options: ${problems.join("; ")}`);
  // Copied and frozen: rules are resolved once per key set, so a caller mutating its own objects
  // afterwards must not change the filter's behaviour halfway.
  const metricThresholds = Object.freeze(
    Object.fromEntries(
      Object.entries(resolved.metricThresholds).map(([metric, { kind, threshold }]) => [
        metric,
        Object.freeze({ kind, threshold }),
      ]),
    ),
  );
  return Object.freeze({ ...resolved, metricThresholds });
}
