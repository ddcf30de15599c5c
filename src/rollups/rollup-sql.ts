/**
 * The rollup upsert statements, as text: shared by the flush hook (rows aggregated in JavaScript,
 * passed as arrays) and the rebuild (raw rows aggregated in SQL), so both write rows the same way.
 *
 * Upserts add counts and sums, take `least`/`greatest` of min and max, and merge the dense bucket
 * arrays element-wise. Each statement inserts its keys in primary-key order, so two flushes that
 * touch the same keys lock them in the same order and cannot deadlock.
 */
import { bucketSqlExpression } from "./latency-histogram.js";
import { API_LEVELS, type ApiLevel } from "./rollup-tables.js";

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
 * Upsert into the rollup table of `level` of rows aggregated by `aggregateApiRows` (`api-aggregation.ts`), passed as
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
