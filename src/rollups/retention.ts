/**
 * Retention: deletes raw rows older than `ANALYTICS_RETENTION_DAYS` and rollup rows older than
 * `ANALYTICS_ROLLUP_RETENTION_DAYS`, in bounded batches.
 *
 * - Each batch is one autocommit statement deleting at most `batchSize` rows found through a time
 *   index (`delete ... where ctid = any(array(select ctid ... limit n))`), so locks last one short
 *   statement and vacuum can reclaim space as the job goes; the job stops between batches when
 *   asked (shutdown).
 * - Cutoffs are hour boundaries (raw) and day boundaries (rollups), so a rollup period is either
 *   entirely kept or entirely deleted, and a query's partial edge hour is either fully raw or
 *   fully older than the cutoff.
 * - Before deleting raw rows the job records the cutoff in `retention_watermarks`. Queries read it
 *   ({@link readWatermarks}): a window starting before the watermark takes its first partial hour
 *   whole from the rollups (and reports the widened window) instead of silently counting rows that
 *   are gone.
 * - Several instances may run it at once: they delete the same rows, which is harmless.
 */
import type { SqlPool, SqlRunner } from "../db/sql-runner.js";
import { toNumber } from "../db/sql-runner.js";
import { DAY_MS, floorToDay } from "./rollup-plan.js";
import { FIVE_MINUTE_ROLLUP_RETENTION_MS } from "./rollup-tables.js";
import { floorToHour } from "../util/time-window.js";
import { errorFields, type Logger } from "../util/logger.js";

/** A table the job trims, and which rows are old. `$1` is the cutoff. */
interface Target {
  readonly table: string;
  /** Condition selecting rows to delete (must be served by an index on the time column). */
  readonly where: string;
}

const before = (column: string) => `"${column}" < $1::timestamptz`;

/** Raw tables, trimmed at the raw cutoff. */
export const RAW_TARGETS: readonly Target[] = Object.freeze([
  { table: "api_request_logs", where: before("occurred_at") },
  { table: "user_activities", where: before("occurred_at") },
  // An error still recurring keeps its row: it goes once its last sighting is old too.
  { table: "error_logs", where: `${before("occurred_at")} and ${before("last_seen_at")}` },
  { table: "error_occurrences", where: before("occurred_at") },
  { table: "error_event_receipts", where: before("created_at") },
  { table: "job_outcomes", where: before("occurred_at") },
  { table: "device_state_history", where: before("occurred_at") },
  { table: "device_metrics", where: before("occurred_at") },
]);

/** Rollup tables, trimmed at the rollup cutoff (5-minute rollups at their own, shorter one). */
export const ROLLUP_TARGETS: readonly Target[] = Object.freeze([
  { table: "api_rollup_5min", where: before("minute") },
  { table: "api_rollup_hourly", where: before("hour") },
  { table: "api_rollup_daily", where: before("day") },
  { table: "error_rollup_hourly", where: before("hour") },
  { table: "job_rollup_hourly", where: before("hour") },
]);

/** Settings of one run. */
export interface RetentionOptions {
  readonly nowMs: number;
  /** Days of raw rows to keep (at least 1). */
  readonly retentionDays: number;
  /** Days of rollups to keep. */
  readonly rollupRetentionDays: number;
  /** Rows per delete statement. */
  readonly batchSize: number;
  /** Aborting stops the run between batches. */
  readonly signal?: AbortSignal | undefined;
  readonly log?: Logger | undefined;
}

/** What a run did. */
export interface RetentionReport {
  /** Raw rows older than this were deleted (an hour boundary). */
  readonly rawCutoffMs: number;
  /** Rollup periods starting before this were deleted (a day boundary). */
  readonly rollupCutoffMs: number;
  /** Rows deleted per table. */
  readonly deleted: Readonly<Record<string, number>>;
  /** False when the run was stopped early. */
  readonly completed: boolean;
}

/** The raw cutoff for `nowMs`: `retentionDays` ago, down to the hour. */
export function rawCutoffMs(nowMs: number, retentionDays: number): number {
  return floorToHour(nowMs - retentionDays * DAY_MS);
}

/** The rollup cutoff for `nowMs`: `rollupRetentionDays` ago, down to the UTC day. */
export function rollupCutoffMs(nowMs: number, rollupRetentionDays: number): number {
  return floorToDay(nowMs - rollupRetentionDays * DAY_MS);
}

/** Runs retention once; see the module documentation. */
export async function runRetention(pool: SqlPool, options: RetentionOptions): Promise<RetentionReport> {
  if (!(options.retentionDays >= 1) || !(options.rollupRetentionDays >= 1) || !(options.batchSize >= 1)) {
    throw new RangeError("retention days and batch size must be at least 1");
  }
  const rawCutoff = rawCutoffMs(options.nowMs, options.retentionDays);
  const rollupCutoff = rollupCutoffMs(options.nowMs, options.rollupRetentionDays);
  const deleted: Record<string, number> = {};
  const stopped = () => options.signal?.aborted === true;

  const trim = async (target: Target, cutoffMs: number): Promise<void> => {
    const sql =
      `with gone as (delete from "${target.table}" where ctid = any(array(` +
      `select ctid from "${target.table}" where ${target.where} limit $2)) returning 1) ` +
      `select count(*)::int as n from gone`;
    const cutoff = new Date(cutoffMs).toISOString();
    let total = 0;
    while (!stopped()) {
      const [row] = await pool.query<{ n: unknown }>(sql, [cutoff, options.batchSize]);
      const n = toNumber(row?.n);
      total += n;
      if (n < options.batchSize) break;
    }
    deleted[target.table] = total;
  };

  for (const target of RAW_TARGETS) {
    if (stopped()) break;
    // The watermark first: from now on queries stop reading raw rows that are about to go.
    await pool.query(
      `insert into "retention_watermarks" ("table_name", "deleted_before") values ($1, $2::timestamptz) ` +
        `on conflict ("table_name") do update set "deleted_before" = greatest("retention_watermarks"."deleted_before", excluded."deleted_before")`,
      [target.table, new Date(rawCutoff).toISOString()],
    );
    await trim(target, rawCutoff);
  }
  // 5-minute rollups only serve the edges of windows of at most 168 hours.
  const fiveMinuteCutoff = Math.max(rollupCutoff, floorToDay(options.nowMs - FIVE_MINUTE_ROLLUP_RETENTION_MS));
  for (const target of ROLLUP_TARGETS) {
    if (stopped()) break;
    await trim(target, target.table === "api_rollup_5min" ? fiveMinuteCutoff : rollupCutoff);
  }
  const report = { rawCutoffMs: rawCutoff, rollupCutoffMs: rollupCutoff, deleted, completed: !stopped() };
  options.log?.info("retention run", {
    rawCutoff: new Date(rawCutoff).toISOString(),
    rollupCutoff: new Date(rollupCutoff).toISOString(),
    deleted,
    completed: report.completed,
  });
  return report;
}

/**
 * Reads `retention_watermarks` as epoch ms per raw table: queries and the rebuild skip raw rows
 * before a table's watermark, since the job may already have deleted them.
 */
export async function readWatermarks(sql: SqlRunner): Promise<Map<string, number>> {
  const rows = await sql.query<{ table_name: string; ms: unknown }>(
    `select table_name, (extract(epoch from deleted_before) * 1000)::float8 as ms from "retention_watermarks"`,
  );
  return new Map(rows.map((r) => [r.table_name, toNumber(r.ms)]));
}

/** Settings of {@link startRetentionSchedule}. */
export interface RetentionSchedule {
  readonly retentionDays: number;
  readonly rollupRetentionDays: number;
  readonly batchSize: number;
  readonly intervalMs: number;
  /** Delay before the first run (default: the smaller of one minute and the interval). */
  readonly firstRunDelayMs?: number;
  readonly now?: () => number;
  readonly log: Logger;
}

/**
 * Runs retention on a timer inside the server. Runs never overlap; a failed run is logged and the
 * next one tries again. `stop()` cancels the timer, stops a running job between batches and waits
 * for it.
 */
export function startRetentionSchedule(pool: SqlPool, schedule: RetentionSchedule): { stop(): Promise<void> } {
  const now = schedule.now ?? Date.now;
  const abort = new AbortController();
  let running: Promise<void> | undefined;
  let timer: NodeJS.Timeout | undefined;

  const runOnce = async () => {
    try {
      await runRetention(pool, {
        nowMs: now(),
        retentionDays: schedule.retentionDays,
        rollupRetentionDays: schedule.rollupRetentionDays,
        batchSize: schedule.batchSize,
        signal: abort.signal,
        log: schedule.log,
      });
    } catch (err) {
      if (!abort.signal.aborted) schedule.log.error("retention run failed", errorFields(err));
    }
  };
  const arm = (delayMs: number) => {
    if (abort.signal.aborted) return;
    timer = setTimeout(() => {
      running = runOnce().finally(() => {
        running = undefined;
        arm(schedule.intervalMs);
      });
    }, delayMs);
    // Retention never keeps the process alive on its own.
    timer.unref();
  };
  arm(schedule.firstRunDelayMs ?? Math.min(60_000, schedule.intervalMs));
  return {
    async stop() {
      abort.abort();
      if (timer !== undefined) clearTimeout(timer);
      await running;
    },
  };
}
