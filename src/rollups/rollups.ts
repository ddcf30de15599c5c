/**
 * Rollups: how they are kept up to date inside the batch writer's flush, and how they are rebuilt
 * from raw data.
 *
 * - API requests roll up per endpoint at three levels (5 minutes, hour, UTC day), with a dense
 *   latency histogram per row; errors and jobs per hour. Each level is one table.
 * - The flush hook aggregates the flushed rows in JavaScript (one pass for all levels, `bucketOf`)
 *   and sends one upsert per rollup table with one row per key, so a 1000-row flush writes ~50
 *   rollup rows per level rather than making PostgreSQL aggregate 1000 rows three times. The API
 *   upserts are prepared statements: planned once per connection, not on every flush.
 * - The rebuild aggregates raw rows in SQL (`bucketSqlExpression`, the same bucket function), and
 *   a day is recomputed from its hours. Both paths produce the same rows (floating-point sums
 *   aside, which differ by summation order only); a test holds them to it.
 *
 * Upserts add counts and sums, take `least`/`greatest` of min and max, and merge the dense bucket
 * arrays element-wise. Each statement inserts its keys in primary-key order, so two flushes that
 * touch the same keys lock them in the same order and cannot deadlock; a flush touches the tables
 * in the order of {@link ROLLUP_TABLES}, and the rebuild locks them in that order too.
 *
 * | raw rows                | rollup tables                              |
 * | ----------------------- | ------------------------------------------ |
 * | `api_request_logs`      | `api_rollup_5min`, `api_rollup_hourly`, `api_rollup_daily` |
 * | `error_logs` (per occurrence, from the writer) | `error_occurrences` (raw), `error_rollup_hourly` |
 * | `job_outcomes`          | `job_rollup_hourly`                        |
 */
import type { FlushHook, Row } from "../storage/batch-writer.js";
import type { TableName } from "../storage/table-specs.js";
import type { Logger } from "../util/logger.js";
import { bucketOf, bucketSqlExpression, MAX_BUCKET } from "./latency-histogram.js";
import { ceilToDay, DAY_MS, FIVE_MINUTES_MS, floorTo, floorToDay } from "./rollup-plan.js";
import type { SqlPool, SqlRunner } from "../db/sql-runner.js";
import { toNumber } from "../db/sql-runner.js";
import { ceilToHour, floorToHour, HOUR_MS } from "../util/time-window.js";

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

/** Merges the existing row's dense bucket array with the incoming one, element-wise. */
const MERGE_BUCKETS_SQL =
  `(select array_agg(coalesce(t."bucket_counts"[g.b - t."first_bucket" + 1], 0) ` +
  `+ coalesce(excluded."bucket_counts"[g.b - excluded."first_bucket" + 1], 0) order by g.b) ` +
  `from generate_series(least(t."first_bucket", excluded."first_bucket")::int, ` +
  `greatest(t."first_bucket" + cardinality(t."bucket_counts"), excluded."first_bucket" + cardinality(excluded."bucket_counts")) - 1) as g(b))`;

/** The upsert tail shared by both API rollup tables. */
function apiUpsertTail(column: string): string {
  return (
    `on conflict ("${column}", "endpoint") do update set ` +
    `"request_count" = t."request_count" + excluded."request_count", ` +
    `"error_count" = t."error_count" + excluded."error_count", ` +
    `"sum_ms" = t."sum_ms" + excluded."sum_ms", ` +
    `"min_ms" = least(t."min_ms", excluded."min_ms"), ` +
    `"max_ms" = greatest(t."max_ms", excluded."max_ms"), ` +
    `"first_bucket" = least(t."first_bucket", excluded."first_bucket"), ` +
    `"bucket_counts" = ${MERGE_BUCKETS_SQL}`
  );
}

/**
 * A CTE body turning `pts(period, endpoint, bucket, n)` (one row per non-empty bucket) into one
 * dense array per (period, endpoint). Each key expands its own sparse arrays (a small hash join
 * per key): joining all keys' points at once lets the planner pick a merge join that compares
 * every bucket of a key with every other.
 */
const DENSE_HISTOGRAM_SQL =
  `select period, endpoint, lo as first_bucket, ` +
  `(select array_agg(coalesce(s.n, 0)::int8 order by g.b) from generate_series(lo, hi) as g(b) left join unnest(bs, ns) as s(b, n) on s.b = g.b) as bucket_counts ` +
  `from (select period, endpoint, min(bucket)::int as lo, max(bucket)::int as hi, array_agg(bucket::int) as bs, array_agg(n::int8) as ns ` +
  `from pts group by 1, 2) r`;

/**
 * Upsert into the rollup table of `level` of the rows `source` selects, a query with the columns
 * `endpoint, occurred_at, status_code, response_time_ms` (the rebuild's path).
 */
export function apiRollupUpsertSql(level: ApiLevel, source: string): string {
  const { table, column } = API_LEVELS[level];
  const trunc = API_LEVELS[level].trunc("occurred_at");
  return (
    `with src as (${source}), ` +
    `agg as (select ${trunc} as period, endpoint, count(*) as request_count, ` +
    `count(*) filter (where status_code <> 0) as error_count, sum(response_time_ms) as sum_ms, ` +
    `min(response_time_ms) as min_ms, max(response_time_ms) as max_ms from src group by 1, 2), ` +
    `pts as (select ${trunc} as period, endpoint, ${bucketSqlExpression("response_time_ms")} as bucket, count(*) as n ` +
    `from src group by 1, 2, 3), ` +
    `hist as (${DENSE_HISTOGRAM_SQL}) ` +
    `insert into "${table}" as t ("${column}", "endpoint", "request_count", "error_count", "sum_ms", "min_ms", "max_ms", "first_bucket", "bucket_counts") ` +
    `select a.period, a.endpoint, a.request_count, a.error_count, a.sum_ms, a.min_ms, a.max_ms, h.first_bucket, h.bucket_counts ` +
    `from agg a join hist h on h.period = a.period and h.endpoint = a.endpoint ` +
    `order by a.period, a.endpoint ` +
    apiUpsertTail(column)
  );
}

/**
 * Upsert into `api_rollup_daily` of the days `[$1, $2)` computed from `api_rollup_hourly`, so a
 * day always equals the sum of its hours (even when raw rows of the day are gone).
 */
export const API_DAILY_FROM_HOURLY_SQL =
  `with h as (select * from "api_rollup_hourly" where "hour" >= $1::timestamptz and "hour" < $2::timestamptz), ` +
  `agg as (select date_trunc('day', "hour", 'UTC') as period, endpoint, sum(request_count)::int8 as request_count, ` +
  `sum(error_count)::int8 as error_count, sum(sum_ms) as sum_ms, min(min_ms) as min_ms, max(max_ms) as max_ms from h group by 1, 2), ` +
  `pts as (select date_trunc('day', h."hour", 'UTC') as period, h.endpoint, h.first_bucket + u.o::int - 1 as bucket, sum(u.n)::int8 as n ` +
  `from h cross join lateral unnest(h.bucket_counts) with ordinality as u(n, o) where u.n <> 0 group by 1, 2, 3), ` +
  `hist as (${DENSE_HISTOGRAM_SQL}) ` +
  `insert into "api_rollup_daily" as t ("day", "endpoint", "request_count", "error_count", "sum_ms", "min_ms", "max_ms", "first_bucket", "bucket_counts") ` +
  `select a.period, a.endpoint, a.request_count, a.error_count, a.sum_ms, a.min_ms, a.max_ms, h.first_bucket, h.bucket_counts ` +
  `from agg a join hist h on h.period = a.period and h.endpoint = a.endpoint ` +
  `order by a.period, a.endpoint ` +
  apiUpsertTail("day");

/**
 * Upsert into the rollup table of `level` of rows aggregated by {@link aggregateApiRows}, passed as
 * one array parameter per column (`$9` holds each row's counts as array text).
 */
export function apiRollupUpsertAggregatedSql(level: ApiLevel): string {
  const { table, column } = API_LEVELS[level];
  return (
    `insert into "${table}" as t ("${column}", "endpoint", "request_count", "error_count", "sum_ms", "min_ms", "max_ms", "first_bucket", "bucket_counts") ` +
    `select period, endpoint, n, errors, s, lo, hi, fb, bc::int8[] ` +
    `from unnest($1::timestamptz[], $2::text[], $3::int8[], $4::int8[], $5::float8[], $6::float8[], $7::float8[], $8::int2[], $9::text[]) ` +
    `as u(period, endpoint, n, errors, s, lo, hi, fb, bc) ` +
    apiUpsertTail(column)
  );
}

/** One rollup row computed from flushed request logs. */
export interface ApiAggregate {
  readonly periodMs: number;
  readonly endpoint: string;
  count: number;
  errors: number;
  sumMs: number;
  minMs: number;
  maxMs: number;
  readonly buckets: Map<number, number>;
}

/** PostgreSQL orders NaN above every number; `min`/`max` here follow it, like the rebuild's SQL. */
const pgMin = (a: number, b: number) => (Number.isNaN(a) ? b : Number.isNaN(b) ? a : Math.min(a, b));
const pgMax = (a: number, b: number) => (Number.isNaN(a) || Number.isNaN(b) ? NaN : Math.max(a, b));

/**
 * Aggregates request-log rows per period of `periodMs` and endpoint, sorted by (period, endpoint):
 * the primary-key order of the rollup tables, so concurrent flushes lock keys in the same order.
 */
export function aggregateApiRows(rows: readonly Row[], periodMs: number): ApiAggregate[] {
  return aggregateApiRowsByPeriod(rows, [periodMs])[0]!;
}

/**
 * {@link aggregateApiRows} for several period lengths at once: each row's fields are read and its
 * bucket found once for all of them, and keys are looked up by endpoint, then period, without
 * building a key string per row and level (the flush hook runs this on every request-log flush).
 */
export function aggregateApiRowsByPeriod(rows: readonly Row[], periodsMs: readonly number[]): ApiAggregate[][] {
  const levels = periodsMs.map(() => new Map<string, Map<number, ApiAggregate>>());
  for (const row of rows) {
    const at = timeMs(row.occurred_at);
    const endpoint = String(row.endpoint);
    const ms = Number(row.response_time_ms);
    const failed = Number(row.status_code) !== 0;
    // NaN goes where PostgreSQL's bucket expression puts it (the top bucket) rather than failing the flush.
    const bucket = Number.isNaN(ms) ? MAX_BUCKET : bucketOf(ms);
    for (let l = 0; l < levels.length; l++) {
      const period = floorTo(at, periodsMs[l]!);
      let byPeriod = levels[l]!.get(endpoint);
      if (!byPeriod) levels[l]!.set(endpoint, (byPeriod = new Map()));
      let agg = byPeriod.get(period);
      if (!agg) {
        agg = { periodMs: period, endpoint, count: 0, errors: 0, sumMs: 0, minMs: ms, maxMs: ms, buckets: new Map() };
        byPeriod.set(period, agg);
      }
      agg.count++;
      if (failed) agg.errors++;
      agg.sumMs += ms;
      agg.minMs = pgMin(agg.minMs, ms);
      agg.maxMs = pgMax(agg.maxMs, ms);
      agg.buckets.set(bucket, (agg.buckets.get(bucket) ?? 0) + 1);
    }
  }
  return levels.map((byEndpoint) =>
    [...byEndpoint.values()]
      .flatMap((byPeriod) => [...byPeriod.values()])
      .sort((a, b) => a.periodMs - b.periodMs || (a.endpoint < b.endpoint ? -1 : a.endpoint > b.endpoint ? 1 : 0)),
  );
}

/** The dense array text (`{3,0,1}`) and first bucket of a sparse bucket map. */
export function denseBucketText(buckets: ReadonlyMap<number, number>): { firstBucket: number; text: string } {
  let lo = Infinity;
  let hi = -Infinity;
  for (const b of buckets.keys()) {
    if (b < lo) lo = b;
    if (b > hi) hi = b;
  }
  const parts = new Array<string>(hi - lo + 1);
  for (let b = lo; b <= hi; b++) parts[b - lo] = String(buckets.get(b) ?? 0);
  return { firstBucket: lo, text: `{${parts.join(",")}}` };
}

/** The levels the flush hook upserts, in the lock order of {@link ROLLUP_TABLES}. */
const API_HOOK_LEVELS = ["5min", "hour", "day"] as const;

/**
 * The flush hook's upsert of each level as a prepared statement: its text is long and its plan
 * (nine arrays unnested, a conflict clause merging histograms) costs PostgreSQL more to make than
 * to run for a flush's few keys, and the request log flushes several times a second.
 */
const API_ROLLUP_UPSERTS: Readonly<Record<ApiLevel, { readonly name: string; readonly text: string }>> = Object.freeze({
  "5min": { name: "analytics_api_rollup_5min_upsert", text: apiRollupUpsertAggregatedSql("5min") },
  hour: { name: "analytics_api_rollup_hourly_upsert", text: apiRollupUpsertAggregatedSql("hour") },
  day: { name: "analytics_api_rollup_daily_upsert", text: apiRollupUpsertAggregatedSql("day") },
});

/** The parameters of {@link apiRollupUpsertAggregatedSql} for `aggregates`. */
function aggregatedParams(aggregates: readonly ApiAggregate[]): unknown[][] {
  const cols: unknown[][] = Array.from({ length: 9 }, () => new Array<unknown>(aggregates.length));
  aggregates.forEach((a, i) => {
    const dense = denseBucketText(a.buckets);
    cols[0]![i] = new Date(a.periodMs).toISOString();
    cols[1]![i] = a.endpoint;
    cols[2]![i] = a.count;
    cols[3]![i] = a.errors;
    cols[4]![i] = a.sumMs;
    cols[5]![i] = a.minMs;
    cols[6]![i] = a.maxMs;
    cols[7]![i] = dense.firstBucket;
    cols[8]![i] = dense.text;
  });
  return cols;
}

/** Upsert into `error_occurrences` of `source` (`occurred_at, category, severity, n`). */
export function errorOccurrenceUpsertSql(source: string): string {
  return (
    `insert into "error_occurrences" as t ("occurred_at", "category", "severity", "count") ` +
    `select occurred_at, category, severity, sum(n)::int8 from (${source}) s group by 1, 2, 3 order by 1, 2, 3 ` +
    `on conflict ("occurred_at", "category", "severity") do update set "count" = t."count" + excluded."count"`
  );
}

/** Upsert into `error_rollup_hourly` of `source` (`occurred_at, category, severity, n`). */
export function errorRollupUpsertSql(source: string): string {
  return (
    `insert into "error_rollup_hourly" as t ("hour", "category", "severity", "count") ` +
    `select date_trunc('hour', occurred_at, 'UTC'), category, severity, sum(n)::int8 from (${source}) s ` +
    `group by 1, 2, 3 order by 1, 2, 3 ` +
    `on conflict ("hour", "category", "severity") do update set "count" = t."count" + excluded."count"`
  );
}

/** Upsert into `job_rollup_hourly` of `source` (`occurred_at, job_type, status, duration_ms`). */
export function jobRollupUpsertSql(source: string): string {
  return (
    `insert into "job_rollup_hourly" as t ("hour", "job_type", "status", "count", "duration_count", "duration_sum_ms") ` +
    `select date_trunc('hour', occurred_at, 'UTC'), job_type, status, count(*), count(duration_ms), coalesce(sum(duration_ms), 0)::int8 ` +
    `from (${source}) s group by 1, 2, 3 order by 1, 2, 3 ` +
    `on conflict ("hour", "job_type", "status") do update set "count" = t."count" + excluded."count", ` +
    `"duration_count" = t."duration_count" + excluded."duration_count", "duration_sum_ms" = t."duration_sum_ms" + excluded."duration_sum_ms"`
  );
}

/** The flushed rows as a query: one array parameter per column. */
const HOOK_SOURCES = {
  errors: `select occurred_at, category, severity, 1 as n from unnest($1::timestamptz[], $2::text[], $3::text[]) as s(occurred_at, category, severity)`,
  jobs: `select * from unnest($1::timestamptz[], $2::text[], $3::text[], $4::int4[]) as s(occurred_at, job_type, status, duration_ms)`,
} as const;

/** The flush hook's error and job upserts, prepared as the API ones are ({@link API_ROLLUP_UPSERTS}). */
const HOOK_UPSERTS = Object.freeze({
  errorOccurrences: { name: "analytics_error_occurrences_upsert", text: errorOccurrenceUpsertSql(HOOK_SOURCES.errors) },
  errorRollup: { name: "analytics_error_rollup_hourly_upsert", text: errorRollupUpsertSql(HOOK_SOURCES.errors) },
  jobRollup: { name: "analytics_job_rollup_hourly_upsert", text: jobRollupUpsertSql(HOOK_SOURCES.jobs) },
});

/** A raw table's rows in `[$1, $2)` as the same query shape. */
const RAW_SOURCES: Readonly<Record<RollupFamily, string>> = {
  api: `select endpoint, occurred_at, status_code, response_time_ms from "api_request_logs" where occurred_at >= $1::timestamptz and occurred_at < $2::timestamptz`,
  errors: `select occurred_at, category, severity, "count" as n from "error_occurrences" where occurred_at >= $1::timestamptz and occurred_at < $2::timestamptz`,
  jobs: `select occurred_at, job_type, status, duration_ms from "job_outcomes" where occurred_at >= $1::timestamptz and occurred_at < $2::timestamptz`,
};

/** A timestamp column value in epoch ms. */
function timeMs(value: unknown): number {
  if (value instanceof Date) return value.getTime();
  if (typeof value === "number") return value;
  if (typeof value === "string") return Date.parse(value);
  throw new TypeError(`expected a timestamp, got ${typeof value}`);
}

/** A timestamp column value as ISO text (node-postgres would otherwise use the local zone). */
function iso(value: unknown): string {
  if (typeof value === "string") return value;
  return new Date(timeMs(value)).toISOString();
}

const column = <T>(rows: readonly Row[], name: string, map: (v: unknown) => T): T[] => rows.map((r) => map(r[name]));
const text = (v: unknown): string => String(v);
const nullableInt = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));

/**
 * The rollup upserts of each raw table that feeds rollups, run inside the flush transaction: one
 * statement per rollup table. Its keys are the tables the flush hook names.
 */
const ROLLUP_UPSERTS: Readonly<Partial<Record<TableName, (ctx: SqlRunner, rows: readonly Row[]) => Promise<void>>>> = {
  async api_request_logs(ctx, rows) {
    const aggregates = aggregateApiRowsByPeriod(rows, API_HOOK_LEVELS.map((level) => API_LEVELS[level].periodMs));
    for (let l = 0; l < API_HOOK_LEVELS.length; l++) {
      const statement = API_ROLLUP_UPSERTS[API_HOOK_LEVELS[l]!];
      await ctx.query(statement.text, aggregatedParams(aggregates[l]!), statement);
    }
  },
  async error_logs(ctx, rows) {
    const params = [column(rows, "occurred_at", iso), column(rows, "category", text), column(rows, "severity", text)];
    await ctx.query(HOOK_UPSERTS.errorOccurrences.text, params, HOOK_UPSERTS.errorOccurrences);
    await ctx.query(HOOK_UPSERTS.errorRollup.text, params, HOOK_UPSERTS.errorRollup);
  },
  async job_outcomes(ctx, rows) {
    const params = [
      column(rows, "occurred_at", iso),
      column(rows, "job_type", text),
      column(rows, "status", text),
      column(rows, "duration_ms", nullableInt),
    ];
    await ctx.query(HOOK_UPSERTS.jobRollup.text, params, HOOK_UPSERTS.jobRollup);
  },
};

/**
 * Applies flushed rows to the rollups, inside the flush transaction (nothing for a table that
 * feeds none). Called by the hook and usable directly (tests, tools).
 */
export async function applyRollups(ctx: SqlRunner, table: TableName, rows: readonly Row[]): Promise<void> {
  if (rows.length === 0 || !Object.hasOwn(ROLLUP_UPSERTS, table)) return;
  await ROLLUP_UPSERTS[table]!(ctx, rows);
}

/**
 * The batch writer hook that keeps the rollups current: pass it in the writer's `hooks`. It runs
 * in the flush transaction, so raw rows and rollups commit (or roll back) together; it names the
 * tables that feed rollups (the others' flushes need no transaction for it).
 */
export function createRollupFlushHook(): FlushHook {
  return { tables: new Set(Object.keys(ROLLUP_UPSERTS) as TableName[]), run: (ctx, table, accepted) => applyRollups(ctx, table, accepted) };
}

/** What {@link rebuildRollups} does. */
export interface RebuildOptions {
  /** First instant to rebuild (widened to its hour); default: the oldest raw or rollup row. */
  readonly fromMs?: number;
  /** End of the range (exclusive, widened to the next hour); default: after the newest raw or rollup row. */
  readonly toMs?: number;
  /** Hours per transaction (default 1). Chunks align to multiples of this since the epoch. */
  readonly chunkHours?: number;
  /** The clock (ms), for which 5-minute rollups are still kept (default `Date.now()`). */
  readonly nowMs?: number;
  /** Families to rebuild (default all). */
  readonly families?: readonly RollupFamily[];
  readonly log?: Logger;
}

/** What one family's rebuild covered. */
export interface FamilyRebuild {
  readonly family: RollupFamily;
  /** `[fromMs, toMs)`, hour-aligned; empty when there was nothing to rebuild. */
  readonly fromMs: number;
  readonly toMs: number;
  readonly chunks: number;
  /** Set when hours before the raw retention watermark were skipped (their raw rows are gone). */
  readonly clippedToWatermarkMs?: number;
}

/** Reads `retention_watermarks` as epoch ms per raw table. */
export async function readWatermarks(sql: SqlRunner): Promise<Map<string, number>> {
  const rows = await sql.query<{ table_name: string; ms: unknown }>(
    `select table_name, (extract(epoch from deleted_before) * 1000)::float8 as ms from "retention_watermarks"`,
  );
  return new Map(rows.map((r) => [r.table_name, toNumber(r.ms)]));
}

/** The time span of a family's raw rows and hourly rollup rows together (index-only min/max). */
async function dataExtent(sql: SqlRunner, family: RollupFamily): Promise<{ minMs: number; maxMs: number } | undefined> {
  const raw = `"${RAW_SOURCE[family]}"`;
  const hourly = `"${family === "api" ? API_LEVELS.hour.table : ROLLUP_TABLES[family][0]}"`;
  const [row] = await sql.query<{ lo: unknown; hi: unknown }>(
    `select (extract(epoch from least((select min(occurred_at) from ${raw}), (select min("hour") from ${hourly}))) * 1000)::float8 as lo, ` +
      `(extract(epoch from greatest((select max(occurred_at) from ${raw}), (select max("hour") from ${hourly}))) * 1000)::float8 as hi`,
  );
  if (!row || row.lo === null || row.hi === null) return undefined;
  return { minMs: toNumber(row.lo), maxMs: toNumber(row.hi) };
}

/**
 * Recomputes rollups from raw rows for every hour overlapping `[fromMs, toMs)`: per chunk, in one
 * transaction, it locks the family's rollup tables against concurrent flushes (SHARE ROW
 * EXCLUSIVE: flushes wait, queries do not), deletes the chunk's rollup rows and inserts them again
 * from the raw table; for the API family it then recomputes the chunk's days from their hours, and
 * writes 5-minute rows only for the last {@link FIVE_MINUTE_ROLLUP_RETENTION_MS}.
 * Hours older than a table's retention watermark are skipped: their raw rows are gone and the
 * rollups are the only record left.
 */
export async function rebuildRollups(pool: SqlPool, options: RebuildOptions = {}): Promise<FamilyRebuild[]> {
  const chunkMs = (options.chunkHours ?? 1) * HOUR_MS;
  if (!Number.isInteger(options.chunkHours ?? 1) || chunkMs <= 0) throw new RangeError("chunkHours must be a positive integer");
  const watermarks = await readWatermarks(pool);
  const nowMs = options.nowMs ?? Date.now();
  const out: FamilyRebuild[] = [];
  for (const family of options.families ?? (["api", "errors", "jobs"] as const)) {
    let fromMs = options.fromMs;
    let toMs = options.toMs;
    if (fromMs === undefined || toMs === undefined) {
      const extent = await dataExtent(pool, family);
      fromMs ??= extent?.minMs;
      // The hour holding the newest row is the last one to rebuild.
      toMs ??= extent === undefined ? undefined : floorToHour(extent.maxMs) + HOUR_MS;
    }
    if (fromMs === undefined || toMs === undefined) {
      out.push({ family, fromMs: 0, toMs: 0, chunks: 0 });
      continue;
    }
    fromMs = floorToHour(fromMs);
    toMs = ceilToHour(toMs);
    const watermark = watermarks.get(RAW_SOURCE[family]);
    let clipped: number | undefined;
    if (watermark !== undefined && fromMs < watermark) {
      clipped = watermark;
      fromMs = Math.min(watermark, toMs);
    }
    let chunks = 0;
    for (let start = fromMs; start < toMs; ) {
      const end = Math.min(toMs, (Math.floor(start / chunkMs) + 1) * chunkMs);
      await rebuildChunk(pool, family, start, end, nowMs);
      chunks++;
      options.log?.debug("rebuilt rollup chunk", { family, from: new Date(start).toISOString(), to: new Date(end).toISOString() });
      start = end;
    }
    const done: FamilyRebuild = { family, fromMs, toMs, chunks, ...(clipped === undefined ? {} : { clippedToWatermarkMs: clipped }) };
    options.log?.info("rebuilt rollups", { family, from: new Date(fromMs).toISOString(), to: new Date(toMs).toISOString(), chunks, ...(clipped === undefined ? {} : { skippedBefore: new Date(clipped).toISOString() }) });
    out.push(done);
  }
  return out;
}

async function rebuildChunk(pool: SqlPool, family: RollupFamily, startMs: number, endMs: number, nowMs: number): Promise<void> {
  const range = [new Date(startMs).toISOString(), new Date(endMs).toISOString()];
  await pool.transaction(async (tx) => {
    await tx.query(`lock table ${ROLLUP_TABLES[family].map((t) => `"${t}"`).join(", ")} in share row exclusive mode`);
    // A chunk aggregates up to a day of raw rows: sort and hash in memory rather than on disk.
    await tx.query(`set local work_mem = '64MB'`);
    switch (family) {
      case "api": {
        await tx.query(`delete from "api_rollup_5min" where "minute" >= $1::timestamptz and "minute" < $2::timestamptz`, range);
        // 5-minute rows only serve windows of the last 8 days; older ones would be deleted again.
        const fiveMinFrom = Math.max(startMs, floorToDay(nowMs - FIVE_MINUTE_ROLLUP_RETENTION_MS));
        if (fiveMinFrom < endMs) await tx.query(apiRollupUpsertSql("5min", RAW_SOURCES.api), [new Date(fiveMinFrom).toISOString(), range[1]]);
        await tx.query(`delete from "api_rollup_hourly" where "hour" >= $1::timestamptz and "hour" < $2::timestamptz`, range);
        await tx.query(apiRollupUpsertSql("hour", RAW_SOURCES.api), range);
        const days = [new Date(floorToDay(startMs)).toISOString(), new Date(ceilToDay(endMs)).toISOString()];
        await tx.query(`delete from "api_rollup_daily" where "day" >= $1::timestamptz and "day" < $2::timestamptz`, days);
        await tx.query(API_DAILY_FROM_HOURLY_SQL, days);
        return;
      }
      case "errors":
        await tx.query(`delete from "error_rollup_hourly" where "hour" >= $1::timestamptz and "hour" < $2::timestamptz`, range);
        await tx.query(errorRollupUpsertSql(RAW_SOURCES.errors), range);
        return;
      case "jobs":
        await tx.query(`delete from "job_rollup_hourly" where "hour" >= $1::timestamptz and "hour" < $2::timestamptz`, range);
        await tx.query(jobRollupUpsertSql(RAW_SOURCES.jobs), range);
        return;
    }
  });
}
