/**
 * The MetricsService queries as plain functions over SQL: windows in, plain results out.
 *
 * Every aggregate combines whole periods from the rollups with the raw rows of the partial periods
 * at the window's edges (`planWindow`), so counts, sums, min and max are exact and percentiles come
 * from merged latency histograms (within 1/101 relative of `percentile_cont`, see
 * `latency-histogram.ts`). API requests roll up per day, hour and 5 minutes, so raw rows are read
 * for at most 5 minutes at each edge; errors and jobs (far fewer rows) per hour.
 *
 * Each statement is an index range scan: rollup primary keys lead with the period; raw edges use
 * the `(occurred_at)` index of the raw tables (or `error_occurrences`' primary key). Rollup and raw
 * statements run concurrently on separate connections; they cover disjoint time ranges, and a
 * flush commits raw rows and rollups together, so a row committed between the two reads is counted
 * once or (if it lands in the part read first) not yet, never twice.
 *
 * API histograms are read in two steps: every row's scalars with its version, then the bucket
 * arrays of only the rows not in the {@link RollupHistogramCache} at that version (after the first
 * call: the current periods and late-written ones). See `rollup-cache.ts` for why that is exact.
 */
import { BucketAccumulator } from "./bucket-accumulator.js";
import { createDeviceQueries, type DeviceQueries } from "./device-queries.js";
import { Params } from "./sql-params.js";
import { bucketSqlExpression, quantilesFromBuckets } from "../rollups/latency-histogram.js";
import { planWindow, type HalfOpenRange, type RawRange, type WindowPlan } from "../rollups/rollup-plan.js";
import { RollupHistogramCache, parseDenseCounts, type CachedHistogram } from "./rollup-cache.js";
import { readWatermarks } from "../rollups/retention.js";
import { API_LEVELS } from "../rollups/rollup-tables.js";
import { toNumber, type SqlPool, type SqlRunner } from "../db/sql-runner.js";
import { HOUR_MS, hourlyBuckets, type TimeWindow } from "../util/time-window.js";

/** Per-endpoint request and latency figures. */
export interface EndpointPerformance {
  readonly endpoint: string;
  readonly requestCount: number;
  readonly errorCount: number;
  readonly avgMs: number;
  readonly minMs: number;
  readonly maxMs: number;
  readonly p50Ms: number;
  readonly p95Ms: number;
  readonly p99Ms: number;
}

/** Count and durations of one job type and status. */
export interface JobStatusFigures {
  /** Stored status text (`success`, `failed`, `timeout`, `cancelled`). */
  readonly status: string;
  readonly count: number;
  /** Mean duration of the outcomes that reported one; undefined when none did. */
  readonly avgDurationMs: number | undefined;
}

/** Outcomes of one job type. */
export interface JobTypeFigures {
  readonly jobType: string;
  readonly total: number;
  /** Share of `success` outcomes, 0 to 1. */
  readonly successRate: number;
  /** One entry per status that occurred, in {@link JOB_STATUS_ORDER}. */
  readonly statuses: readonly JobStatusFigures[];
}

/** Occurrences of one error category and severity. */
export interface ErrorCountFigures {
  readonly category: string;
  readonly severity: string;
  readonly count: number;
}

/** Stored job statuses in the order answers list them (the proto enum's order). */
export const JOB_STATUS_ORDER = ["success", "failed", "timeout", "cancelled"] as const;

/** The queries; see the module documentation (the per-device pages are `device-queries.ts`). */
export interface MetricsQueries extends DeviceQueries {
  /** Per endpoint, by request count descending (then endpoint). */
  apiPerformance(args: { window: TimeWindow; endpoint?: string | undefined }): Promise<{ window: TimeWindow; endpoints: EndpointPerformance[] }>;
  /** Per job type, by total descending (then job type). */
  jobOutcomes(args: { window: TimeWindow; jobType?: string | undefined }): Promise<{ window: TimeWindow; jobTypes: JobTypeFigures[] }>;
  /** Totals per category and severity (by count descending) and a zero-filled hourly timeline. */
  errorTrends(args: { window: TimeWindow; category?: string | undefined }): Promise<{
    window: TimeWindow;
    total: number;
    counts: ErrorCountFigures[];
    timeline: { hourStartMs: number; count: number }[];
  }>;
}

/** `(col >= a and col < b) or ...` for half-open ranges; `false` when there are none. */
function rangesSql(column: string, ranges: readonly HalfOpenRange[], p: Params): string {
  if (ranges.length === 0) return "false";
  return ranges.map((r) => `(${column} >= ${p.time(r.startMs)} and ${column} < ${p.time(r.endMsExclusive)})`).join(" or ");
}

/** The same for raw ranges, whose end may be inclusive. */
function rawRangesSql(ranges: readonly RawRange[], p: Params): string {
  return ranges
    .map((r) => `("occurred_at" >= ${p.time(r.startMs)} and "occurred_at" ${r.endInclusive ? "<=" : "<"} ${p.time(r.endMs)})`)
    .join(" or ");
}

/** The query window the answers report, in ms (the plan may have widened it). */
function reported(plan: WindowPlan): TimeWindow {
  return { startMs: plan.window.startMs, endMs: plan.window.endMs };
}

interface EndpointTotals {
  count: number;
  errors: number;
  sum: number;
  min: number;
  max: number;
  buckets: BucketAccumulator;
}

/** The API rollup levels, longest first. */
const API_LEVEL_LIST = [API_LEVELS.day, API_LEVELS.hour, API_LEVELS["5min"]];

/** Options of {@link createMetricsQueries}. */
export interface MetricsQueriesOptions {
  /** Capacity of the rollup histogram cache in counts (default 4M, ~32 MB); 0 disables it. */
  readonly cacheMaxCounts?: number;
}

/** A rollup row's scalars and version, as the first API read returns them. */
interface RollupRowHead {
  t: number;
  period_ms: number;
  endpoint: string;
  v: string;
  n: number;
  errors: number;
  sum_ms: number;
  min_ms: number;
  max_ms: number;
}

/** Creates the queries over `pool` (concurrent statements use separate pooled connections). */
export function createMetricsQueries(pool: SqlPool, options: MetricsQueriesOptions = {}): MetricsQueries {
  const plan = async (sql: SqlRunner, window: TimeWindow, rawTable: string, levels: readonly number[]): Promise<WindowPlan> => {
    const watermarks = await readWatermarks(sql);
    return planWindow(window, { rawAvailableFromMs: watermarks.get(rawTable), levels });
  };
  const cache = new RollupHistogramCache(options.cacheMaxCounts);
  const HOURLY = [HOUR_MS];

  return {
    ...createDeviceQueries(pool),

    async apiPerformance({ window, endpoint }) {
      const p = await plan(pool, window, "api_request_logs", API_LEVEL_LIST.map((l) => l.periodMs));
      const onlyEndpoint = (params: Params) => (endpoint ? ` and "endpoint" = ${params.add(endpoint)}` : "");
      const scalars = `"endpoint", "request_count"::float8 as n, "error_count"::float8 as errors, "sum_ms", "min_ms", "max_ms"`;
      const version = `(xmin::text || ':' || ctid::text) as v`;

      // 1. Every rollup row in the plan: scalars and version (see rollup-cache.ts), one statement.
      const heads = new Params();
      const headSql = API_LEVEL_LIST.flatMap((level, t) => {
        const ranges = p.levels[t]!.ranges;
        if (ranges.length === 0) return [];
        const col = `"${level.column}"`;
        return [
          `select ${t} as t, (extract(epoch from ${col}) * 1000)::float8 as period_ms, ${scalars}, ${version} ` +
            `from "${level.table}" where (${rangesSql(col, ranges, heads)})${onlyEndpoint(heads)}`,
        ];
      }).join(" union all ");

      // 2. The raw edges (at most 5 minutes each), grouped per endpoint in the database with the
      // bucket lists as arrays, so they come back as one row per endpoint.
      const raw = new Params();
      const rawSql =
        `select "endpoint", sum(n)::float8 as n, sum(errors)::float8 as errors, sum(s) as sum_ms, min(lo) as min_ms, max(hi) as max_ms, ` +
        `array_agg(bucket order by bucket)::text as buckets, array_agg(n order by bucket)::text as counts from (` +
        `select "endpoint", ${bucketSqlExpression(`"response_time_ms"`)} as bucket, count(*) as n, ` +
        `count(*) filter (where "status_code" <> 0) as errors, sum("response_time_ms") as s, ` +
        `min("response_time_ms") as lo, max("response_time_ms") as hi ` +
        `from "api_request_logs" where (${rawRangesSql(p.raw, raw)})${onlyEndpoint(raw)} group by 1, 2) b group by 1`;
      type RawRow = { endpoint: string; n: number; errors: number; sum_ms: number; min_ms: number; max_ms: number; buckets: string; counts: string };
      const [headRows, rawRows] = await Promise.all([
        headSql === "" ? Promise.resolve([] as RollupRowHead[]) : pool.query<RollupRowHead>(headSql, heads.values),
        pool.query<RawRow>(rawSql, raw.values),
      ]);

      // 3. Histograms: from the cache when the version matches, else fetched (with fresh scalars,
      // which replace the ones read above should the row have changed in between).
      const keyOf = (r: { t: number; period_ms: number; endpoint: string }) => `${r.t}|${toNumber(r.period_ms)}|${r.endpoint}`;
      const rows = new Map<string, { head: RollupRowHead; histogram?: CachedHistogram }>();
      const missing: RollupRowHead[][] = API_LEVEL_LIST.map(() => []);
      for (const head of headRows) {
        const key = keyOf(head);
        const histogram = cache.get(key, head.v);
        rows.set(key, { head, histogram });
        if (histogram === undefined) missing[toNumber(head.t)]!.push(head);
      }
      const fetches = API_LEVEL_LIST.flatMap((level, t) => {
        const want = missing[t]!;
        if (want.length === 0) return [];
        const col = `"${level.column}"`;
        const sql =
          `select ${t} as t, (extract(epoch from ${col}) * 1000)::float8 as period_ms, ${scalars}, ${version}, "first_bucket", "bucket_counts"::text as buckets ` +
          `from "${level.table}" where (${col}, "endpoint") in (select * from unnest($1::timestamptz[], $2::text[]))`;
        const params = [want.map((h) => new Date(toNumber(h.period_ms)).toISOString()), want.map((h) => h.endpoint)];
        return [pool.query<RollupRowHead & { first_bucket: number; buckets: string }>(sql, params)];
      });
      for (const fetched of await Promise.all(fetches)) {
        for (const r of fetched) {
          const histogram: CachedHistogram = { version: r.v, firstBucket: toNumber(r.first_bucket), counts: parseDenseCounts(r.buckets) };
          cache.set(keyOf(r), histogram);
          rows.set(keyOf(r), { head: r, histogram });
        }
      }

      const totals = new Map<string, EndpointTotals>();
      const totalsOf = (name: string): EndpointTotals => {
        let t = totals.get(name);
        if (!t) {
          t = { count: 0, errors: 0, sum: 0, min: Infinity, max: -Infinity, buckets: new BucketAccumulator() };
          totals.set(name, t);
        }
        return t;
      };
      const addScalars = (t: EndpointTotals, r: { n: number; errors: number; sum_ms: number; min_ms: number; max_ms: number }) => {
        t.count += toNumber(r.n);
        t.errors += toNumber(r.errors);
        t.sum += toNumber(r.sum_ms);
        t.min = Math.min(t.min, toNumber(r.min_ms));
        t.max = Math.max(t.max, toNumber(r.max_ms));
      };
      for (const { head, histogram } of rows.values()) {
        // A row deleted between the two reads (a rebuild or retention) has no histogram: the
        // rebuild re-inserted it or the period left every window; either way it is skipped.
        if (histogram === undefined) continue;
        const t = totalsOf(head.endpoint);
        addScalars(t, head);
        t.buckets.addDense(histogram.firstBucket, histogram.counts);
      }
      for (const r of rawRows) {
        const t = totalsOf(r.endpoint);
        addScalars(t, r);
        t.buckets.addSparseText(r.buckets, r.counts);
      }

      const endpoints: EndpointPerformance[] = [];
      for (const [name, t] of totals) {
        if (t.count === 0) continue;
        const [p50 = 0, p95 = 0, p99 = 0] = quantilesFromBuckets(t.buckets.entries(), [0.5, 0.95, 0.99], t.min, t.max) ?? [];
        endpoints.push({
          endpoint: name,
          requestCount: t.count,
          errorCount: t.errors,
          avgMs: t.sum / t.count,
          minMs: t.min,
          maxMs: t.max,
          p50Ms: p50,
          p95Ms: p95,
          p99Ms: p99,
        });
      }
      endpoints.sort((a, b) => b.requestCount - a.requestCount || (a.endpoint < b.endpoint ? -1 : a.endpoint > b.endpoint ? 1 : 0));
      return { window: reported(p), endpoints };
    },

    async jobOutcomes({ window, jobType }) {
      const p = await plan(pool, window, "job_outcomes", HOURLY);
      const hours = p.levels[0]!.ranges;
      const onlyType = (params: Params) => (jobType ? ` and "job_type" = ${params.add(jobType)}` : "");
      const rollup = new Params();
      const rollupSql =
        `select "job_type", "status", sum("count")::float8 as n, sum("duration_count")::float8 as dn, sum("duration_sum_ms")::float8 as ds ` +
        `from "job_rollup_hourly" where (${rangesSql(`"hour"`, hours, rollup)})${onlyType(rollup)} group by 1, 2`;
      const raw = new Params();
      const rawSql =
        `select "job_type", "status", count(*)::float8 as n, count("duration_ms")::float8 as dn, coalesce(sum("duration_ms"), 0)::float8 as ds ` +
        `from "job_outcomes" where (${rawRangesSql(p.raw, raw)})${onlyType(raw)} group by 1, 2`;
      type Row = { job_type: string; status: string; n: number; dn: number; ds: number };
      const [rollupRows, rawRows] = await Promise.all([
        hours.length > 0 ? pool.query<Row>(rollupSql, rollup.values) : Promise.resolve([] as Row[]),
        pool.query<Row>(rawSql, raw.values),
      ]);
      const byType = new Map<string, Map<string, { n: number; dn: number; ds: number }>>();
      for (const r of [...rollupRows, ...rawRows]) {
        let statuses = byType.get(r.job_type);
        if (!statuses) byType.set(r.job_type, (statuses = new Map()));
        const s = statuses.get(r.status) ?? { n: 0, dn: 0, ds: 0 };
        s.n += toNumber(r.n);
        s.dn += toNumber(r.dn);
        s.ds += toNumber(r.ds);
        statuses.set(r.status, s);
      }
      const rank = (status: string) => {
        const i = (JOB_STATUS_ORDER as readonly string[]).indexOf(status);
        return i === -1 ? JOB_STATUS_ORDER.length : i;
      };
      const jobTypes: JobTypeFigures[] = [];
      for (const [type, statuses] of byType) {
        const list = [...statuses]
          .filter(([, s]) => s.n > 0)
          .sort(([a], [b]) => rank(a) - rank(b) || (a < b ? -1 : a > b ? 1 : 0))
          .map(([status, s]): JobStatusFigures => ({ status, count: s.n, avgDurationMs: s.dn > 0 ? s.ds / s.dn : undefined }));
        const total = list.reduce((sum, s) => sum + s.count, 0);
        if (total === 0) continue;
        const success = list.find((s) => s.status === "success")?.count ?? 0;
        jobTypes.push({ jobType: type, total, successRate: success / total, statuses: list });
      }
      jobTypes.sort((a, b) => b.total - a.total || (a.jobType < b.jobType ? -1 : a.jobType > b.jobType ? 1 : 0));
      return { window: reported(p), jobTypes };
    },

    async errorTrends({ window, category }) {
      const p = await plan(pool, window, "error_occurrences", HOURLY);
      const hours = p.levels[0]!.ranges;
      const onlyCategory = (params: Params) => (category ? ` and "category" = ${params.add(category)}` : "");
      const rollup = new Params();
      const rollupSql =
        `select (extract(epoch from "hour") * 1000)::float8 as hour_ms, "category", "severity", "count"::float8 as n ` +
        `from "error_rollup_hourly" where (${rangesSql(`"hour"`, hours, rollup)})${onlyCategory(rollup)}`;
      const raw = new Params();
      const rawSql =
        `select (extract(epoch from date_trunc('hour', "occurred_at", 'UTC')) * 1000)::float8 as hour_ms, "category", "severity", sum("count")::float8 as n ` +
        `from "error_occurrences" where (${rawRangesSql(p.raw, raw)})${onlyCategory(raw)} group by 1, 2, 3`;
      type Row = { hour_ms: number; category: string; severity: string; n: number };
      const [rollupRows, rawRows] = await Promise.all([
        hours.length > 0 ? pool.query<Row>(rollupSql, rollup.values) : Promise.resolve([] as Row[]),
        pool.query<Row>(rawSql, raw.values),
      ]);
      const buckets = hourlyBuckets(p.window.startMs, p.window.endMs);
      const perHour = new Map<number, number>(buckets.map((h) => [h, 0]));
      const perKey = new Map<string, ErrorCountFigures & { count: number }>();
      let total = 0;
      for (const r of [...rollupRows, ...rawRows]) {
        const n = toNumber(r.n);
        const hour = toNumber(r.hour_ms);
        total += n;
        perHour.set(hour, (perHour.get(hour) ?? 0) + n);
        const key = `${r.category}\u0000${r.severity}`;
        const c = perKey.get(key) ?? { category: r.category, severity: r.severity, count: 0 };
        c.count += n;
        perKey.set(key, c);
      }
      const counts = [...perKey.values()]
        .filter((c) => c.count > 0)
        .sort((a, b) => b.count - a.count || a.category.localeCompare(b.category) || a.severity.localeCompare(b.severity));
      return {
        window: reported(p),
        total,
        counts,
        timeline: buckets.map((h) => ({ hourStartMs: h, count: perHour.get(h) ?? 0 })),
      };
    },
  };
}
