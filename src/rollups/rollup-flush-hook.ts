/**
 * The batch writer's flush hook that keeps the rollups up to date: inside the flush transaction it
 * sends one upsert per rollup table with one row per key, so raw rows and rollups commit (or roll
 * back) together.
 *
 * Request logs are aggregated in JavaScript first (`api-aggregation.ts`), errors and jobs in the
 * upsert itself. The upserts are prepared statements: planned once per connection, not on every
 * flush. The rebuild (`rollup-rebuild.ts`) produces the same rows from raw data (floating-point
 * sums aside, which differ by summation order only); a test holds them to it.
 */
import type { FlushHook, Row } from "../storage/batch-writer.js";
import type { TableName } from "../storage/table-specs.js";
import type { SqlRunner } from "../db/sql-runner.js";
import { aggregateApiRowsByPeriod, denseBucketText, timeMs, type ApiAggregate } from "./api-aggregation.js";
import { apiRollupUpsertAggregatedSql, errorOccurrenceUpsertSql, errorRollupUpsertSql, jobRollupUpsertSql } from "./rollup-sql.js";
import { API_LEVELS, type ApiLevel } from "./rollup-tables.js";

/** The levels the flush hook upserts, in the lock order of `ROLLUP_TABLES` (`rollup-tables.ts`). */
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
