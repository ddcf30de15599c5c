/**
 * The rollup families, their tables and the API levels: the names every other rollup module (the
 * flush hook, the rebuild, retention, queries) plans with, kept apart so none of them has to load
 * another's SQL to learn a table name.
 *
 * - API requests roll up per endpoint at three levels (5 minutes, hour, UTC day), with a dense
 *   latency histogram per row; errors and jobs per hour. Each level is one table.
 * - A flush touches a family's tables in the order of {@link ROLLUP_TABLES}, and the rebuild locks
 *   them in that order too, so the two cannot deadlock.
 *
 * | raw rows                | rollup tables                              |
 * | ----------------------- | ------------------------------------------ |
 * | `api_request_logs`      | `api_rollup_5min`, `api_rollup_hourly`, `api_rollup_daily` |
 * | `error_logs` (per occurrence, from the writer) | `error_occurrences` (raw), `error_rollup_hourly` |
 * | `job_outcomes`          | `job_rollup_hourly`                        |
 */
import { DAY_MS, FIVE_MINUTES_MS } from "./rollup-plan.js";
import { HOUR_MS } from "../util/time-window.js";

/** A family of rollups fed by one raw table. */
export type RollupFamily = "api" | "errors" | "jobs";

/** The raw table each family is built from (and whose retention watermark limits a rebuild). */
export const RAW_SOURCE: Readonly<Record<RollupFamily, string>> = Object.freeze({
  api: "api_request_logs",
  errors: "error_occurrences",
  jobs: "job_outcomes",
});

/** The rollup tables of each family, in lock order. */
export const ROLLUP_TABLES: Readonly<Record<RollupFamily, readonly string[]>> = Object.freeze({
  api: ["api_rollup_5min", "api_rollup_hourly", "api_rollup_daily"],
  errors: ["error_rollup_hourly"],
  jobs: ["job_rollup_hourly"],
});

/** How long 5-minute API rollups are kept: the longest query window (168 h) plus a day. */
export const FIVE_MINUTE_ROLLUP_RETENTION_MS = 8 * DAY_MS;

/** An API rollup level. */
export type ApiLevel = "5min" | "hour" | "day";

/** An API rollup level's table, period column, length and SQL truncation. */
export interface ApiLevelSpec {
  readonly table: string;
  readonly column: string;
  readonly periodMs: number;
  /** SQL truncating a timestamptz expression to the start of its period (UTC). */
  readonly trunc: (expr: string) => string;
}

/** The API rollup levels, longest first (the order queries plan them in). */
export const API_LEVELS: Readonly<Record<ApiLevel, ApiLevelSpec>> = Object.freeze({
  day: { table: "api_rollup_daily", column: "day", periodMs: DAY_MS, trunc: (x: string) => `date_trunc('day', ${x}, 'UTC')` },
  hour: { table: "api_rollup_hourly", column: "hour", periodMs: HOUR_MS, trunc: (x: string) => `date_trunc('hour', ${x}, 'UTC')` },
  "5min": {
    table: "api_rollup_5min",
    column: "minute",
    periodMs: FIVE_MINUTES_MS,
    // The origin is a multiple of 5 minutes since the epoch, like the JavaScript side's periods.
    trunc: (x: string) => `date_bin('5 minutes', ${x}, timestamptz '2000-01-01 00:00:00+00')`,
  },
});
