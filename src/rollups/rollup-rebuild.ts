/**
 * The rebuild: recomputes rollups from raw rows (the `rollups:rebuild` command, tests, benchmarks).
 *
 * Raw rows are aggregated in SQL (`bucketSqlExpression`, the same bucket function as the flush
 * hook's), and a day is recomputed from its hours, so a day always equals the sum of its hours.
 * It produces the same rows as the flush hook (`rollup-flush-hook.ts`; floating-point sums aside,
 * which differ by summation order only); a test holds them to it.
 */
import type { Logger } from "../util/logger.js";
import type { SqlPool, SqlRunner } from "../db/sql-runner.js";
import { toNumber } from "../db/sql-runner.js";
import { ceilToHour, floorToHour, HOUR_MS } from "../util/time-window.js";
import { readWatermarks } from "./retention.js";
import { ceilToDay, floorToDay } from "./rollup-plan.js";
import { API_DAILY_FROM_HOURLY_SQL, apiRollupUpsertSql, errorRollupUpsertSql, jobRollupUpsertSql } from "./rollup-sql.js";
import { API_LEVELS, FIVE_MINUTE_ROLLUP_RETENTION_MS, RAW_SOURCE, ROLLUP_TABLES, type RollupFamily } from "./rollup-tables.js";

/** A raw table's rows in `[$1, $2)` as the same query shape. */
const RAW_SOURCES: Readonly<Record<RollupFamily, string>> = {
  api: `select endpoint, occurred_at, status_code, response_time_ms from "api_request_logs" where occurred_at >= $1::timestamptz and occurred_at < $2::timestamptz`,
  errors: `select occurred_at, category, severity, "count" as n from "error_occurrences" where occurred_at >= $1::timestamptz and occurred_at < $2::timestamptz`,
  jobs: `select occurred_at, job_type, status, duration_ms from "job_outcomes" where occurred_at >= $1::timestamptz and occurred_at < $2::timestamptz`,
};

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
