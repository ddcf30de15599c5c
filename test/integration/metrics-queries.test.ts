/**
 * The metrics queries, rollups, rebuild and retention against a real database (PostgreSQL with
 * DATABASE_URL, else embedded). Rows go in through the batch writer with the rollup hook, as in
 * the server; expectations are hand-computed on small fixed data, or checked against an exact
 * recount in SQL (`percentile_cont` for percentiles) on random data. The clock is fixed.
 */
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { createClient, createRouterTransport } from "@connectrpc/connect";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import {
  LogDeviceStateChangeRequestSchema,
  LogErrorRequestSchema,
  LogJobOutcomeRequestSchema,
} from "../../sdk/src/gen/analytics/v1/analytics_service_pb.js";
import { ErrorCategory, JobStatus, Severity } from "../../sdk/src/gen/analytics/v1/common_pb.js";
import { MetricsService } from "../../sdk/src/gen/analytics/v1/metrics_service_pb.js";
import { openDatabase, type Database } from "../../src/db/database.js";
import { deviceStateChangeRow, errorRow, jobOutcomeRow } from "../../src/ingest/event-rows.js";
import { bucketSqlExpression, RELATIVE_ACCURACY } from "../../src/rollups/latency-histogram.js";
import { createMetricsQueries, type MetricsQueries } from "../../src/queries/metrics-queries.js";
import { DAY_MS } from "../../src/rollups/rollup-plan.js";
import { createRollupFlushHook } from "../../src/rollups/rollup-flush-hook.js";
import { rebuildRollups } from "../../src/rollups/rollup-rebuild.js";
import { createSqlPool, ormConnectionSource, type SqlPool } from "../../src/db/sql-runner.js";
import { HOUR_MS, type TimeWindow } from "../../src/util/time-window.js";
import { createHealthService } from "../../src/server/health.js";
import { createRoutes } from "../../src/server/routes.js";
import { BatchWriter, type Row } from "../../src/storage/batch-writer.js";
import { RAW_TARGETS, rawCutoffMs, ROLLUP_TARGETS, runRetention, startRetentionSchedule } from "../../src/rollups/retention.js";
import { tableSpecs } from "../../src/storage/table-specs.js";
import { silentLogger } from "../../src/util/logger.js";
import { createTestDatabase, type TestDatabase } from "../support/test-database.js";

const H = HOUR_MS;
const MIN = 60_000;
/** The fixed "now": not on an hour boundary, so windows have partial hours at both edges. */
const NOW = Date.UTC(2026, 10, 20, 10, 37, 12, 345);

let testDb: TestDatabase;
let db: Database;
let pool: SqlPool;
let queries: MetricsQueries;
let writer: BatchWriter;

beforeAll(async () => {
  testDb = await createTestDatabase();
  db = await openDatabase(testDb.config, silentLogger);
  pool = createSqlPool(db.orm.em);
  queries = createMetricsQueries(pool);
});

afterAll(async () => {
  await db?.close();
  await testDb?.drop();
});

const ALL_TABLES = [
  ...RAW_TARGETS.map((t) => t.table),
  ...ROLLUP_TARGETS.map((t) => t.table),
  "retention_watermarks",
];

beforeEach(async () => {
  await pool.query(`truncate ${ALL_TABLES.map((t) => `"${t}"`).join(", ")}`);
  writer = new BatchWriter({ specs: tableSpecs(db.orm), source: ormConnectionSource(db.orm.em), log: silentLogger, hooks: [createRollupFlushHook()] });
});

afterEach(async () => {
  await writer.close();
});

// ---------------------------------------------------------------------------------------------
// Row builders and oracles

const api = (atMs: number, endpoint: string, ms: number, code = 0): Row => ({
  occurred_at: new Date(atMs),
  endpoint,
  protocol: "grpc",
  http_method: "POST",
  status_code: code,
  http_status: code === 0 ? 200 : 500,
  response_time_ms: ms,
});

const job = (atMs: number, jobType: string, status: JobStatus, durationMs?: number): Row =>
  jobOutcomeRow(create(LogJobOutcomeRequestSchema, { jobId: `j-${Math.random()}`, jobType, status, durationMs, occurredAt: timestampFromMs(atMs) }), undefined, NOW).columns;

const error = (atMs: number, category: ErrorCategory, severity: Severity, message = `m-${Math.random()}`): Row =>
  errorRow(create(LogErrorRequestSchema, { category, severity, errorMessage: message, deviceId: "dev-e", occurredAt: timestampFromMs(atMs) }), undefined, NOW).columns;

const stateChange = (atMs: number, deviceId: string, newState: string): Row =>
  deviceStateChangeRow(create(LogDeviceStateChangeRequestSchema, { deviceId, newState, previousState: "x", occurredAt: timestampFromMs(atMs) }), undefined, NOW).columns;

const window = (hours: number, nowMs = NOW): TimeWindow => ({ startMs: nowMs - hours * H, endMs: nowMs });
const iso = (ms: number) => new Date(ms).toISOString();

interface OracleRow {
  endpoint: string;
  n: number;
  errors: number;
  avg: number;
  min: number;
  max: number;
  p50: number;
  p95: number;
  p99: number;
}

/** The exact answer from raw rows: `percentile_cont` over `[startMs, endMs]`. */
async function apiOracle(w: TimeWindow): Promise<Map<string, OracleRow>> {
  const rows = await pool.query<OracleRow>(
    `select endpoint, count(*)::float8 as n, (count(*) filter (where status_code <> 0))::float8 as errors, avg(response_time_ms) as avg, ` +
      `min(response_time_ms) as min, max(response_time_ms) as max, ` +
      `percentile_cont(0.5) within group (order by response_time_ms) as p50, percentile_cont(0.95) within group (order by response_time_ms) as p95, ` +
      `percentile_cont(0.99) within group (order by response_time_ms) as p99 ` +
      `from api_request_logs where occurred_at >= $1 and occurred_at <= $2 group by endpoint`,
    [iso(w.startMs), iso(w.endMs)],
  );
  return new Map(rows.map((r) => [r.endpoint, r]));
}

/** Asserts the query's answer equals the oracle: exact counts/min/max, percentiles within the bound. */
async function expectMatchesOracle(w: TimeWindow): Promise<number> {
  const [answer, oracle] = await Promise.all([queries.apiPerformance({ window: w }), apiOracle(w)]);
  expect(answer.endpoints.map((e) => e.endpoint).sort()).toEqual([...oracle.keys()].sort());
  let worst = 0;
  for (const e of answer.endpoints) {
    const o = oracle.get(e.endpoint)!;
    expect(e.requestCount).toBe(o.n);
    expect(e.errorCount).toBe(o.errors);
    expect(e.minMs).toBe(o.min);
    expect(e.maxMs).toBe(o.max);
    expect(Math.abs(e.avgMs - o.avg)).toBeLessThanOrEqual(1e-9 * Math.abs(o.avg) + 1e-12);
    for (const [got, want] of [
      [e.p50Ms, o.p50],
      [e.p95Ms, o.p95],
      [e.p99Ms, o.p99],
    ] as const) {
      const err = Math.abs(got - want);
      expect(err, `${e.endpoint}: ${got} vs ${want}`).toBeLessThanOrEqual(RELATIVE_ACCURACY * Math.abs(want) + 1e-9);
      if (want !== 0) worst = Math.max(worst, err / Math.abs(want));
    }
  }
  return worst;
}

/** A deterministic PRNG, so a failure reproduces. */
function prng(seed: number) {
  let s = seed >>> 0;
  const next = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const normal = () => Math.sqrt(-2 * Math.log(1 - next())) * Math.cos(2 * Math.PI * next());
  return { next, normal, int: (n: number) => Math.floor(next() * n) };
}

// ---------------------------------------------------------------------------------------------

describe("GetApiPerformance query", () => {
  it("answers an empty window with no endpoints", async () => {
    expect(await queries.apiPerformance({ window: window(24) })).toEqual({ window: window(24), endpoints: [] });
  });

  it("answers one row with every figure equal to it", async () => {
    await writer.write("api_request_logs", [api(NOW - 3 * H, "/a.B/One", 12.5)]);
    const { endpoints } = await queries.apiPerformance({ window: window(24) });
    expect(endpoints).toEqual([
      { endpoint: "/a.B/One", requestCount: 1, errorCount: 0, avgMs: 12.5, minMs: 12.5, maxMs: 12.5, p50Ms: 12.5, p95Ms: 12.5, p99Ms: 12.5 },
    ]);
  });

  it("includes rows exactly at both window bounds and nothing outside them", async () => {
    const start = NOW - 2 * H; // 08:37:12.345
    const hour = (h: number, m = 0, ms = 0) => Date.UTC(2026, 10, 20, h, m, 0, ms);
    await writer.write("api_request_logs", [
      api(start - 1, "/e", 1), // before the window
      api(start, "/e", 2), // first instant (raw head)
      api(hour(8, 59, 59_999), "/e", 3), // last instant of the raw head
      api(hour(9), "/e", 4), // first instant of the whole hour (rollup)
      api(hour(9, 59, 59_999), "/e", 5), // last instant of the whole hour
      api(hour(10), "/e", 6), // first instant of the raw tail
      api(NOW, "/e", 7), // last instant of the window
      api(NOW + 1, "/e", 8), // after the window (a clock-skewed row of the current hour)
    ]);
    const { endpoints } = await queries.apiPerformance({ window: window(2) });
    expect(endpoints).toHaveLength(1);
    const e = endpoints[0]!;
    expect(e).toMatchObject({ requestCount: 6, errorCount: 0, minMs: 2, maxMs: 7, avgMs: 4.5 });
    // percentile_cont over 2..7: p50 = 4.5, p95 = 6.75, p99 = 6.95 (interpolated; within 1/101).
    expect(Math.abs(e.p50Ms - 4.5)).toBeLessThanOrEqual(4.5 * RELATIVE_ACCURACY);
    expect(Math.abs(e.p95Ms - 6.75)).toBeLessThanOrEqual(6.75 * RELATIVE_ACCURACY);
    expect(Math.abs(e.p99Ms - 6.95)).toBeLessThanOrEqual(6.95 * RELATIVE_ACCURACY);

    // A window ending exactly on an hour: the row at the end is the one-instant tail.
    const aligned = Date.UTC(2026, 10, 20, 10);
    const at10 = await queries.apiPerformance({ window: window(1, aligned) });
    expect(at10.endpoints[0]).toMatchObject({ requestCount: 3, minMs: 4, maxMs: 6 });
  });

  it("filters by endpoint, counts errors and sorts by request count", async () => {
    await writer.write("api_request_logs", [
      api(NOW - 5 * H, "/svc/A", 10),
      api(NOW - 4 * H, "/svc/A", 20, 13),
      api(NOW - 10 * MIN, "/svc/A", 30),
      ...[1, 2, 3, 4, 5].map((i) => api(NOW - i * H, "/svc/B", i)),
      api(NOW - 1 * MIN, "/svc/C", 100, 5),
      api(NOW - 1 * MIN, "/svc/D", 100),
    ]);
    const all = await queries.apiPerformance({ window: window(24) });
    expect(all.endpoints.map((e) => [e.endpoint, e.requestCount, e.errorCount])).toEqual([
      ["/svc/B", 5, 0],
      ["/svc/A", 3, 1],
      ["/svc/C", 1, 1],
      ["/svc/D", 1, 0],
    ]);
    const onlyA = await queries.apiPerformance({ window: window(24), endpoint: "/svc/A" });
    expect(onlyA.endpoints).toEqual([expect.objectContaining({ endpoint: "/svc/A", requestCount: 3, errorCount: 1, avgMs: 20, minMs: 10, maxMs: 30 })]);
    expect((await queries.apiPerformance({ window: window(24), endpoint: "/svc/Nope" })).endpoints).toEqual([]);
  });

  it("agrees with an exact recount over 168 hours (daily and hourly rollups plus raw edges)", async () => {
    const r = prng(7);
    const rows: Row[] = [];
    for (let i = 0; i < 4000; i++) {
      const at = NOW - Math.floor(r.next() * 9 * DAY_MS) + 2 * H; // some in the future, some too old
      rows.push(api(at, `/svc/E${r.int(5)}`, Math.exp(3 + 1.2 * r.normal()), r.next() < 0.05 ? 2 : 0));
    }
    // Rows on the window's edges, to the millisecond.
    rows.push(api(NOW - 168 * H, "/svc/E0", 1234), api(NOW, "/svc/E1", 0.5), api(NOW - 168 * H - 1, "/svc/E2", 99999));
    for (let i = 0; i < rows.length; i += 700) await writer.write("api_request_logs", rows.slice(i, i + 700));
    const daily = await pool.query<{ n: number }>(`select count(*)::int as n from api_rollup_daily`);
    expect(daily[0]!.n).toBeGreaterThan(0);
    await expectMatchesOracle(window(168));
    await expectMatchesOracle(window(24));
    await expectMatchesOracle(window(1));
    await expectMatchesOracle(window(168, Date.UTC(2026, 10, 20)));
  });
});

describe("histogram cache", () => {
  it("never serves a histogram the database has since changed (writes, rebuilds, deletes)", async () => {
    const r = prng(5);
    const batch = (n: number) => Array.from({ length: n }, () => api(NOW - Math.floor(r.next() * 100 * H), `/c${r.int(3)}`, Math.exp(2 + r.normal())));
    await writer.write("api_request_logs", batch(600));
    await expectMatchesOracle(window(168)); // fills the cache
    await writer.write("api_request_logs", batch(300)); // late rows into cached hours and days
    await expectMatchesOracle(window(168));
    await pool.query(`delete from api_request_logs where endpoint = '/c1' and occurred_at < $1`, [iso(NOW - 50 * H)]);
    await rebuildRollups(pool, { nowMs: NOW }); // new row versions everywhere
    await expectMatchesOracle(window(168));
    await expectMatchesOracle(window(24));
  });
});

describe("percentile error bound against percentile_cont", () => {
  it("holds for skewed, bimodal, constant and heavy-tailed data", async () => {
    const r = prng(11);
    const rows: Row[] = [];
    const at = () => NOW - Math.floor(r.next() * 30 * H);
    for (let i = 0; i < 1500; i++) rows.push(api(at(), "/skewed", Math.exp(1 + 1.5 * r.normal())));
    for (let i = 0; i < 1500; i++) rows.push(api(at(), "/bimodal", i % 2 ? 5 + 0.5 * r.normal() : 500 + 20 * r.normal()));
    for (let i = 0; i < 1000; i++) rows.push(api(at(), "/constant", 42));
    for (let i = 0; i < 1000; i++) rows.push(api(at(), "/pareto", 1 / Math.pow(1 - r.next(), 1.5)));
    for (let i = 0; i < 300; i++) rows.push(api(at(), "/with-zeros", i % 3 === 0 ? 0 : 0.01 + r.next()));
    for (let i = 0; i < rows.length; i += 1000) await writer.write("api_request_logs", rows.slice(i, i + 1000));
    const worst = await expectMatchesOracle(window(24));
    expect(worst).toBeLessThanOrEqual(RELATIVE_ACCURACY);
    const constant = (await queries.apiPerformance({ window: window(24), endpoint: "/constant" })).endpoints[0]!;
    expect([constant.p50Ms, constant.p95Ms, constant.p99Ms]).toEqual([42, 42, 42]);
  });
});

describe("GetJobOutcomes query", () => {
  it("counts per type and status with mean durations (0 is a mean; absent when none reported)", async () => {
    const start = NOW - 3 * H;
    await writer.write("job_outcomes", [
      job(start - 1, "restart", JobStatus.FAILED, 999), // outside
      job(start, "restart", JobStatus.SUCCESS, 10), // raw head
      job(NOW - 2 * H, "restart", JobStatus.SUCCESS, 20), // whole hour
      job(NOW - 90 * MIN, "restart", JobStatus.SUCCESS), // no duration
      job(NOW - 10 * MIN, "restart", JobStatus.FAILED, 0), // raw tail
      job(NOW, "update", JobStatus.CANCELLED), // last instant, no duration
      job(NOW + 1, "update", JobStatus.SUCCESS, 5), // outside
    ]);
    const { jobTypes } = await queries.jobOutcomes({ window: window(3) });
    expect(jobTypes).toEqual([
      {
        jobType: "restart",
        total: 4,
        successRate: 0.75,
        statuses: [
          { status: "success", count: 3, avgDurationMs: 15 },
          { status: "failed", count: 1, avgDurationMs: 0 },
        ],
      },
      { jobType: "update", total: 1, successRate: 0, statuses: [{ status: "cancelled", count: 1, avgDurationMs: undefined }] },
    ]);
    const onlyUpdate = await queries.jobOutcomes({ window: window(3), jobType: "update" });
    expect(onlyUpdate.jobTypes.map((t) => t.jobType)).toEqual(["update"]);
    expect((await queries.jobOutcomes({ window: window(1), jobType: "nothing" })).jobTypes).toEqual([]);
  });
});

describe("GetErrorTrends query", () => {
  it("counts occurrences (de-duplicated repeats included) with a zero-filled hourly timeline", async () => {
    const hour = (h: number, m = 0) => Date.UTC(2026, 10, 20, h, m);
    // hours=3: window [07:37:12.345, 10:37:12.345], buckets 07:00, 08:00, 09:00, 10:00.
    await writer.write("error_logs", [error(hour(7, 30), ErrorCategory.DEVICE, Severity.ERROR)]); // before the window
    await writer.write("error_logs", [error(hour(7, 40), ErrorCategory.DEVICE, Severity.ERROR)]);
    for (const m of [15, 16, 17]) await writer.write("error_logs", [error(hour(8, m), ErrorCategory.DATABASE, Severity.CRITICAL, "db down")]);
    await writer.write("error_logs", [error(hour(10, 5), ErrorCategory.API, Severity.WARNING)]);
    await writer.write("error_logs", [error(NOW + 1, ErrorCategory.API, Severity.WARNING)]); // after the window
    // The three "db down" reports are one stored error seen three times.
    expect(await pool.query(`select occurrence_count from error_logs where error_message = 'db down'`)).toEqual([{ occurrence_count: 3 }]);

    const res = await queries.errorTrends({ window: window(3) });
    expect(res.total).toBe(5);
    expect(res.counts).toEqual([
      { category: "database", severity: "critical", count: 3 },
      { category: "api", severity: "warning", count: 1 },
      { category: "device", severity: "error", count: 1 },
    ]);
    expect(res.timeline).toEqual([
      { hourStartMs: hour(7), count: 1 },
      { hourStartMs: hour(8), count: 3 },
      { hourStartMs: hour(9), count: 0 },
      { hourStartMs: hour(10), count: 1 },
    ]);
    const db = await queries.errorTrends({ window: window(3), category: "database" });
    expect(db.total).toBe(3);
    expect(db.timeline.map((b) => b.count)).toEqual([0, 3, 0, 0]);
    const empty = await queries.errorTrends({ window: window(24), category: "frontend" });
    expect(empty.total).toBe(0);
    expect(empty.timeline).toHaveLength(25);
    expect(empty.timeline.every((b) => b.count === 0)).toBe(true);
  });
});

describe("GetDeviceStateHistory through the routes", () => {
  function client() {
    const routes = createRoutes({
      writer,
      em: db.orm.em,
      log: silentLogger,
      health: createHealthService(),
      reflection: false,
      now: () => NOW,
      metricsQueries: queries,
    });
    return createClient(MetricsService, createRouterTransport(routes));
  }

  it("pages through a long history newest first with no gaps or repeats, even as rows arrive", async () => {
    const rows: Row[] = [];
    // 250 changes in the last 20 hours, five at a time sharing one timestamp (ties broken by id).
    for (let i = 0; i < 250; i++) rows.push(stateChange(NOW - 20 * H + Math.floor(i / 5) * 1000 * 60 * 20 + 1, "dev-A", `s${i}`));
    rows.push(stateChange(NOW - 25 * H, "dev-A", "too-old"), stateChange(NOW - H, "dev-B", "other-device"));
    await writer.write("device_state_history", rows);
    const expected = await pool.query<{ id: string }>(
      `select id from device_state_history where device_id = 'dev-A' and occurred_at >= $1 and occurred_at <= $2 order by occurred_at desc, id desc`,
      [iso(NOW - 24 * H), iso(NOW)],
    );
    expect(expected).toHaveLength(250);

    const c = client();
    const seen: string[] = [];
    let pageToken = "";
    let pages = 0;
    do {
      const page = await c.getDeviceStateHistory({ deviceId: "dev-A", pageSize: 7, pageToken });
      expect(page.changes.length).toBeLessThanOrEqual(7);
      seen.push(...page.changes.map((ch) => ch.id));
      pageToken = page.nextPageToken;
      if (++pages === 3) await writer.write("device_state_history", [stateChange(NOW - 1, "dev-A", "new-after-first-pages")]);
    } while (pageToken !== "");
    expect(pages).toBe(Math.ceil(250 / 7));
    expect(seen).toEqual(expected.map((r) => r.id));
  });

  it("answers an unknown device with an empty page", async () => {
    const res = await client().getDeviceStateHistory({ deviceId: "nobody", hours: 720 });
    expect(res).toMatchObject({ changes: [], nextPageToken: "" });
  });
});

describe("rollups", () => {
  /** Rollup contents and an independent recount from raw rows, in the same shapes. */
  async function rollupVsRecount() {
    const q = (sql: string) => pool.query(sql);
    const bucket = bucketSqlExpression("response_time_ms");
    const sparse = (table: string, period: string) =>
      `select ${period} as period, endpoint, (first_bucket + o::int - 1) as bucket, c::int8 as n from ${table}, unnest(bucket_counts) with ordinality u(c, o) where c <> 0 order by 1, 2, 3`;
    const scalars = (table: string, period: string) =>
      `select ${period} as period, endpoint, request_count::int as n, error_count::int as errors, min_ms, max_ms from ${table} order by 1, 2`;
    const periodOf = (unit: string) =>
      unit === "5min" ? `date_bin('5 minutes', occurred_at, timestamptz '2000-01-01 00:00:00+00')` : `date_trunc('${unit}', occurred_at, 'UTC')`;
    const rawScalars = (unit: string) =>
      `select ${periodOf(unit)} as period, endpoint, count(*)::int as n, (count(*) filter (where status_code <> 0))::int as errors, ` +
      `min(response_time_ms) as min_ms, max(response_time_ms) as max_ms from api_request_logs group by 1, 2 order by 1, 2`;
    const rawBuckets = (unit: string) =>
      `select ${periodOf(unit)} as period, endpoint, ${bucket}::int as bucket, count(*)::int8 as n from api_request_logs group by 1, 2, 3 order by 1, 2, 3`;
    const sums = async (sql: string) => (await pool.query<{ s: number }>(sql)).map((r) => r.s);
    return {
      rollup: {
        fiveMin: await q(scalars("api_rollup_5min", "minute")),
        fiveMinBuckets: await q(sparse("api_rollup_5min", "minute")),
        hourly: await q(scalars("api_rollup_hourly", "hour")),
        hourlyBuckets: await q(sparse("api_rollup_hourly", "hour")),
        daily: await q(scalars("api_rollup_daily", "day")),
        dailyBuckets: await q(sparse("api_rollup_daily", "day")),
        jobs: await q(`select hour, job_type, status, count::int, duration_count::int, duration_sum_ms::int from job_rollup_hourly order by 1, 2, 3`),
        errors: await q(`select hour, category, severity, count::int from error_rollup_hourly order by 1, 2, 3`),
      },
      recount: {
        fiveMin: await q(rawScalars("5min")),
        fiveMinBuckets: await q(rawBuckets("5min")),
        hourly: await q(rawScalars("hour")),
        hourlyBuckets: await q(rawBuckets("hour")),
        daily: await q(rawScalars("day")),
        dailyBuckets: await q(rawBuckets("day")),
        jobs: await q(
          `select date_trunc('hour', occurred_at, 'UTC') as hour, job_type, status, count(*)::int as count, count(duration_ms)::int as duration_count, ` +
            `coalesce(sum(duration_ms), 0)::int as duration_sum_ms from job_outcomes group by 1, 2, 3 order by 1, 2, 3`,
        ),
        errors: await q(`select date_trunc('hour', occurred_at, 'UTC') as hour, category, severity, sum(count)::int as count from error_occurrences group by 1, 2, 3 order by 1, 2, 3`),
      },
      // Float sums differ by summation order only.
      sums: {
        hourly: await sums(`select sum_ms as s from api_rollup_hourly order by hour, endpoint`),
        daily: await sums(`select sum_ms as s from api_rollup_daily order by day, endpoint`),
        rawHourly: await sums(`select date_trunc('hour', occurred_at, 'UTC') as p, endpoint, sum(response_time_ms) as s from api_request_logs group by 1, 2 order by 1, 2`),
        rawDaily: await sums(`select date_trunc('day', occurred_at, 'UTC') as p, endpoint, sum(response_time_ms) as s from api_request_logs group by 1, 2 order by 1, 2`),
      },
    };
  }

  const expectSumsClose = (got: number[], want: number[]) => {
    expect(got).toHaveLength(want.length);
    got.forEach((g, i) => expect(Math.abs(g - want[i]!)).toBeLessThanOrEqual(1e-9 * Math.abs(want[i]!) + 1e-9));
  };

  it("agree with a recount after random concurrent writes, and a rebuild reproduces them", async () => {
    const r = prng(3);
    const at = () => NOW - Math.floor(r.next() * 3 * DAY_MS);
    const apiRows = Array.from({ length: 3000 }, () => api(at(), `/svc/R${r.int(4)}`, r.next() < 0.02 ? 0 : Math.exp(2 + r.normal()), r.next() < 0.1 ? 14 : 0));
    const jobRows = Array.from({ length: 400 }, () => job(at(), `type-${r.int(3)}`, 1 + r.int(4), r.next() < 0.3 ? undefined : r.int(10_000)));
    const messages = ["a", "b", "c"];
    const errorRows: Row[] = [];
    for (let i = 0; i < 300; i++) {
      // Bursts of the same error so that de-duplication folds many of them.
      const t = at();
      for (let k = 0; k < 1 + r.int(3); k++) errorRows.push(error(t + k * 1000, 1 + r.int(7), 1 + r.int(4), messages[r.int(3)]));
    }
    // Concurrent writes of interleaved slices, as several callers would.
    const slices = <T>(xs: T[], n: number) => Array.from({ length: n }, (_, i) => xs.filter((_, j) => j % n === i));
    await Promise.all([
      ...slices(apiRows, 6).map((s) => writer.write("api_request_logs", s)),
      ...slices(jobRows, 3).map((s) => writer.write("job_outcomes", s)),
      ...slices(errorRows, 3).map((s) => writer.write("error_logs", s)),
    ]);

    const before = await rollupVsRecount();
    expect(before.rollup.hourly.length).toBeGreaterThan(100);
    expect(before.rollup).toEqual(before.recount);
    // Every reported occurrence is in error_occurrences, whether stored as a row or folded.
    const [occ] = await pool.query<{ occurrences: number; folded: number; rows: number }>(
      `select (select sum(count)::int from error_occurrences) as occurrences, (select sum(occurrence_count)::int from error_logs) as folded, (select count(*)::int from error_logs) as rows`,
    );
    expect(occ!.occurrences).toBe(errorRows.length);
    expect(occ!.folded).toBe(errorRows.length);
    expect(occ!.rows).toBeLessThan(errorRows.length);

    const rebuilt = await rebuildRollups(pool, { chunkHours: 7, nowMs: NOW });
    expect(rebuilt.map((f) => f.family)).toEqual(["api", "errors", "jobs"]);
    const after = await rollupVsRecount();
    expect(after.rollup).toEqual(before.rollup);
    expect(after.rollup).toEqual(after.recount);
    // Sums: ordered like the scalar rows (period, endpoint), so they pair up.
    expectSumsClose(before.sums.hourly, before.sums.rawHourly);
    expectSumsClose(before.sums.daily, before.sums.rawDaily);
    expectSumsClose(after.sums.hourly, before.sums.hourly);
    expectSumsClose(after.sums.daily, before.sums.daily);
  });

  it("rebuild removes rollup rows that have no raw rows and only touches the range asked", async () => {
    await writer.write("api_request_logs", [api(NOW - 5 * H, "/x", 1), api(NOW - 2 * H, "/x", 2)]);
    await pool.query(`delete from api_request_logs where response_time_ms = 1`);
    const hours = async () => (await pool.query<{ n: number }>(`select request_count::int as n from api_rollup_hourly order by hour`)).map((r) => r.n);
    expect(await hours()).toEqual([1, 1]);
    await rebuildRollups(pool, { fromMs: NOW - 3 * H, toMs: NOW, nowMs: NOW });
    expect(await hours()).toEqual([1, 1]);
    await rebuildRollups(pool, { nowMs: NOW });
    expect(await hours()).toEqual([1]);
    expect(await pool.query(`select request_count::int as n from api_rollup_daily`)).toEqual([{ n: 1 }]);
  });
});

describe("retention", () => {
  it("deletes exactly the raw rows older than the cutoff, in batches, and leaves rollups whole", async () => {
    const cutoff = rawCutoffMs(NOW, 2); // 2026-11-18T10:00Z
    expect(cutoff).toBe(Date.UTC(2026, 10, 18, 10));
    const times = [cutoff - 3 * DAY_MS, cutoff - H - 1, cutoff - 1, cutoff, cutoff + 1, NOW - H];
    await writer.write("api_request_logs", times.map((t, i) => api(t, "/r", i + 1)));
    await writer.write("job_outcomes", times.map((t) => job(t, "j", JobStatus.SUCCESS, 1)));
    await writer.write("error_logs", times.map((t) => error(t, ErrorCategory.API, Severity.ERROR)));
    await writer.write("device_state_history", times.map((t) => stateChange(t, "dev-r", "s")));
    // The 72-hour window below starts at 11-17 10:37:12.345, before the watermark.
    const widenedStart = Date.UTC(2026, 10, 17, 10, 35);
    const answerBefore = await apiOracle({ startMs: widenedStart, endMs: NOW });
    const snapshot = async () => [
      await pool.query(`select * from api_rollup_5min order by minute, endpoint`),
      await pool.query(`select * from api_rollup_hourly order by hour, endpoint`),
      await pool.query(`select * from api_rollup_daily order by day, endpoint`),
      await pool.query(`select * from job_rollup_hourly order by hour, job_type, status`),
      await pool.query(`select * from error_rollup_hourly order by hour, category, severity`),
    ];
    const rollupsBefore = await snapshot();

    const report = await runRetention(pool, { nowMs: NOW, retentionDays: 2, rollupRetentionDays: 400, batchSize: 2 });
    expect(report.rawCutoffMs).toBe(cutoff);
    expect(report.deleted).toMatchObject({ api_request_logs: 3, job_outcomes: 3, error_logs: 3, error_occurrences: 3, device_state_history: 3 });
    for (const table of ["api_request_logs", "job_outcomes", "error_occurrences", "device_state_history"]) {
      const left = await pool.query<{ ms: number }>(`select (extract(epoch from occurred_at) * 1000)::float8 as ms from "${table}" order by 1`);
      expect(left.map((r) => r.ms), table).toEqual([cutoff, cutoff + 1, NOW - H]);
    }
    expect(await snapshot()).toEqual(rollupsBefore);
    expect(await pool.query<{ ms: number }>(`select (extract(epoch from deleted_before) * 1000)::float8 as ms from retention_watermarks where table_name = 'api_request_logs'`)).toEqual([{ ms: cutoff }]);

    // Its first partial 5 minutes come whole from the 5-minute rollup, and the answer says so.
    const res = await queries.apiPerformance({ window: window(72) });
    expect(res.window).toEqual({ startMs: widenedStart, endMs: NOW });
    expect(res.endpoints.map((e) => [e.requestCount, e.minMs, e.maxMs])).toEqual([[answerBefore.get("/r")!.n, answerBefore.get("/r")!.min, answerBefore.get("/r")!.max]]);

    // A rebuild does not touch hours whose raw rows are gone.
    const rebuilt = await rebuildRollups(pool, { nowMs: NOW });
    expect(rebuilt[0]!.clippedToWatermarkMs).toBe(cutoff);
    expect(await snapshot()).toEqual(rollupsBefore);
  });

  it("deletes rollups older than their own retention, whole days at a time", async () => {
    await writer.write("api_request_logs", [api(NOW - 10 * DAY_MS, "/old", 1), api(NOW - 8 * DAY_MS, "/old", 1), api(NOW - H, "/new", 1)]);
    await writer.write("job_outcomes", [job(NOW - 10 * DAY_MS, "j", JobStatus.SUCCESS)]);
    const report = await runRetention(pool, { nowMs: NOW, retentionDays: 30, rollupRetentionDays: 9, batchSize: 100 });
    expect(report.rollupCutoffMs).toBe(Date.UTC(2026, 10, 11));
    // Rollups before 11-11 go; 5-minute rollups before 11-12 (8 days, whole days), so the 8-day-old
    // row (11-12 10:37) keeps its 5-minute row.
    expect(report.deleted).toMatchObject({ api_request_logs: 0, api_rollup_5min: 1, api_rollup_hourly: 1, api_rollup_daily: 1, job_rollup_hourly: 1 });
    expect((await pool.query(`select count(*)::int as n from api_rollup_hourly`))[0]).toEqual({ n: 2 });
  });

  it("runs on a schedule inside the server until stopped", async () => {
    await writer.write("api_request_logs", [api(Date.now() - 40 * DAY_MS, "/sched", 1), api(Date.now() - H, "/sched", 1)]);
    const lines: string[] = [];
    const log = { ...silentLogger, info: (msg: string) => void lines.push(msg) };
    const schedule = startRetentionSchedule(pool, { retentionDays: 30, rollupRetentionDays: 400, batchSize: 100, intervalMs: 50, firstRunDelayMs: 10, log });
    const deadline = Date.now() + 20_000;
    while (lines.filter((l) => l === "retention run").length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    await schedule.stop();
    expect(lines.filter((l) => l === "retention run").length).toBeGreaterThanOrEqual(2);
    expect((await pool.query(`select count(*)::int as n from api_request_logs`))[0]).toEqual({ n: 1 });
  });

  it("stops between batches when asked", async () => {
    await writer.write("api_request_logs", Array.from({ length: 10 }, (_, i) => api(NOW - 10 * DAY_MS + i, "/s", 1)));
    const abort = new AbortController();
    abort.abort();
    const report = await runRetention(pool, { nowMs: NOW, retentionDays: 1, rollupRetentionDays: 400, batchSize: 3, signal: abort.signal });
    expect(report.completed).toBe(false);
    expect((await pool.query(`select count(*)::int as n from api_request_logs`))[0]).toEqual({ n: 10 });
  });
});

describe("query plans", () => {
  it("serves every query and retention batch from an index, never a sequential scan", async () => {
    await writer.write("api_request_logs", [api(NOW - H, "/p", 1)]);
    const statements: { sql: string; params: unknown[] }[] = [];
    const spy: SqlPool = {
      query: (sql, params = []) => {
        statements.push({ sql, params });
        return pool.query(sql, params);
      },
      transaction: (fn) => pool.transaction(fn),
    };
    const q = createMetricsQueries(spy);
    await q.apiPerformance({ window: window(168) });
    await q.apiPerformance({ window: window(168), endpoint: "/p" });
    await q.jobOutcomes({ window: window(168) });
    await q.jobOutcomes({ window: window(24), jobType: "x" });
    await q.errorTrends({ window: window(168) });
    await q.errorTrends({ window: window(24), category: "api" });
    await q.deviceStateHistory({ deviceId: "d", startUs: BigInt(NOW - H) * 1000n, endUs: BigInt(NOW) * 1000n, limit: 10, cursor: { beforeUs: BigInt(NOW) * 1000n, beforeId: "01937a4e-0000-7000-8000-000000000001" } });
    for (const t of [...RAW_TARGETS, ...ROLLUP_TARGETS]) statements.push({ sql: `select ctid from "${t.table}" where ${t.where} limit 5000`, params: [iso(NOW)] });
    const reads = statements.filter((s) => !s.sql.includes("retention_watermarks"));
    expect(reads.length).toBeGreaterThan(15);
    for (const s of reads) {
      const plan = await pool.transaction(async (tx) => {
        // Tiny tables make any plan cheap; forbid sequential scans to see whether an index serves it.
        await tx.query(`set local enable_seqscan = off`);
        return (await tx.query<{ "QUERY PLAN": string }>(`explain ${s.sql}`, s.params)).map((r) => r["QUERY PLAN"]).join("\n");
      });
      expect(plan, `${s.sql}\n${plan}`).not.toMatch(/Seq Scan/);
    }
  });
});
