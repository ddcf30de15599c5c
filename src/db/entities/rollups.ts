import { defineEntity, type InferEntity } from "@mikro-orm/core";

/**
 * Rollup tables behind MetricsService. They are maintained by upserts inside the batch writer's
 * flush (`src/rollups/rollup-flush-hook.ts`), in the transaction that stores the raw rows, and can be rebuilt
 * from raw data (`npm run cli -- rollups:rebuild`). Periods are UTC and half-open: the row for hour
 * `H` covers `[H, H + 1h)`, the row for day `D` covers `[D, D + 1d)`.
 *
 * Primary keys lead with the period so that "every key in a time range" is one index range scan.
 */

/** Columns shared by the hourly and daily API rollups; see {@link ApiRollupHourlyEntity}. */
const apiRollupColumns = (p: typeof defineEntity.properties) => ({
  endpoint: p.text().primary(),
  requestCount: p.bigint("number"),
  /** Requests whose RPC code was not OK (`status_code <> 0`). */
  errorCount: p.bigint("number"),
  sumMs: p.double(),
  minMs: p.double(),
  maxMs: p.double(),
  /** Latency bucket (see `latency-histogram.ts`) of `bucket_counts[1]`. */
  firstBucket: p.smallint(),
  /**
   * Dense counts of the buckets `first_bucket .. first_bucket + cardinality - 1`. One array per
   * row rather than one row per bucket: reading 168 hours of 50 endpoints is ~10k rows instead of
   * ~1.7M (see docs/BENCHMARKS.md, "queries").
   */
  bucketCounts: p.array(Number).columnType("bigint[]"),
});

/**
 * `api_rollup_5min`: the same per 5-minute period (`minute` is its first minute). It serves the
 * partial hours at a query window's edges, so raw rows are read for at most 5 minutes at each
 * edge however busy the service is. Kept for 8 days (the longest window plus a day).
 */
export const ApiRollup5MinEntity = defineEntity({
  name: "ApiRollup5Min",
  tableName: "api_rollup_5min",
  properties: (p) => ({
    minute: p.datetime().columnType("timestamptz").primary(),
    ...apiRollupColumns(p),
  }),
  primaryKeys: ["minute", "endpoint"],
});

/** `api_rollup_hourly`: request count, error count, latency sum/min/max and histogram per endpoint and hour. */
export const ApiRollupHourlyEntity = defineEntity({
  name: "ApiRollupHourly",
  tableName: "api_rollup_hourly",
  properties: (p) => ({
    hour: p.datetime().columnType("timestamptz").primary(),
    ...apiRollupColumns(p),
  }),
  primaryKeys: ["hour", "endpoint"],
});

/**
 * `api_rollup_daily`: the same per UTC day, so a 168-hour query merges ~29 histograms per endpoint
 * (6 days and the hours around them) instead of 168. Always equal to the sum of the day's hours.
 */
export const ApiRollupDailyEntity = defineEntity({
  name: "ApiRollupDaily",
  tableName: "api_rollup_daily",
  properties: (p) => ({
    day: p.datetime().columnType("timestamptz").primary(),
    ...apiRollupColumns(p),
  }),
  primaryKeys: ["day", "endpoint"],
});

/** `error_rollup_hourly`: error occurrences per hour, category and severity. */
export const ErrorRollupHourlyEntity = defineEntity({
  name: "ErrorRollupHourly",
  tableName: "error_rollup_hourly",
  properties: (p) => ({
    hour: p.datetime().columnType("timestamptz").primary(),
    category: p.text().primary(),
    severity: p.text().primary(),
    count: p.bigint("number"),
  }),
  primaryKeys: ["hour", "category", "severity"],
});

/**
 * `error_occurrences`: occurrences per exact time, category and severity. `error_logs` folds a
 * repeated error into one row (first and last sighting, count), so it cannot say how many
 * occurrences fell into part of an hour; this narrow table can, which keeps the partial hours at a
 * query window's edges exact. It is raw data (never rebuilt) and follows the raw retention.
 */
export const ErrorOccurrenceEntity = defineEntity({
  name: "ErrorOccurrence",
  tableName: "error_occurrences",
  properties: (p) => ({
    occurredAt: p.datetime().columnType("timestamptz").primary(),
    category: p.text().primary(),
    severity: p.text().primary(),
    count: p.bigint("number"),
  }),
  primaryKeys: ["occurredAt", "category", "severity"],
});

/** `job_rollup_hourly`: outcomes per hour, job type and status, with the durations reported. */
export const JobRollupHourlyEntity = defineEntity({
  name: "JobRollupHourly",
  tableName: "job_rollup_hourly",
  properties: (p) => ({
    hour: p.datetime().columnType("timestamptz").primary(),
    jobType: p.text().primary(),
    status: p.text().primary(),
    count: p.bigint("number"),
    /** Outcomes that reported a duration. */
    durationCount: p.bigint("number"),
    durationSumMs: p.bigint("number"),
  }),
  primaryKeys: ["hour", "jobType", "status"],
});

/**
 * `retention_watermarks`: per raw table, the (hour-aligned) time before which the retention job
 * may have deleted rows. Queries read it so that a window reaching past it takes that partial hour
 * whole from the rollups instead of silently counting rows that are gone.
 */
export const RetentionWatermarkEntity = defineEntity({
  name: "RetentionWatermark",
  tableName: "retention_watermarks",
  properties: (p) => ({
    tableName: p.text().primary(),
    deletedBefore: p.datetime().columnType("timestamptz"),
  }),
});

/** A row of `api_rollup_5min`. */
export type ApiRollup5Min = InferEntity<typeof ApiRollup5MinEntity>;
/** A row of `api_rollup_hourly`. */
export type ApiRollupHourly = InferEntity<typeof ApiRollupHourlyEntity>;
/** A row of `api_rollup_daily`. */
export type ApiRollupDaily = InferEntity<typeof ApiRollupDailyEntity>;
/** A row of `error_rollup_hourly`. */
export type ErrorRollupHourly = InferEntity<typeof ErrorRollupHourlyEntity>;
/** A row of `error_occurrences`. */
export type ErrorOccurrence = InferEntity<typeof ErrorOccurrenceEntity>;
/** A row of `job_rollup_hourly`. */
export type JobRollupHourly = InferEntity<typeof JobRollupHourlyEntity>;
/** A row of `retention_watermarks`. */
export type RetentionWatermark = InferEntity<typeof RetentionWatermarkEntity>;
