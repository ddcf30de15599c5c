/**
 * `npm run bench -- queries [--rows N] [--runs R] [--raw-runs R] [--keep]`: GetApiPerformance on N request logs (default
 * 10M) over 7 days and 50 endpoints, through the real server, against the same answer computed
 * from the raw table with `percentile_cont`.
 *
 * 1. A fresh database; N `api_request_logs` rows generated in SQL, in time order as the writer
 *    appends them, with skewed endpoint popularity, log-normal latencies per endpoint, a slow tail
 *    and 2% errors; then the rollups built by the rebuild code (`rebuildRollups`).
 * 2. The real server (buildServer, port 0, request logging off so the data stays put) and a gRPC
 *    client with an admin token: the first 168 h call (cold histogram cache, on stderr), then the
 *    median latency of GetApiPerformance for 24 h and 168 h.
 * 3. The raw answer for the 168 h window the server reported: a `percentile_cont` GROUP BY over
 *    the raw table. `ratio_to_raw` = its median time / the 168 h median; `percentile_rel_error` =
 *    the largest relative error of p50/p95/p99 over all endpoints. Counts, min and max must match
 *    exactly (the program fails otherwise).
 *
 * Progress and details go to stderr; the last stdout line is the JSON result.
 */
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { MetricsService } from "../sdk/src/gen/analytics/v1/metrics_service_pb.js";
import { mintToken } from "../src/auth/mint-token.js";
import { parseRateLimits } from "../src/auth/rate-limit-policy.js";
import { loadSigningSecret } from "../src/auth/signing-secret.js";
import { loadConfig } from "../src/config.js";
import { openDatabase } from "../src/db/database.js";
import { rebuildRollups } from "../src/rollups/rollup-rebuild.js";
import { createSqlPool } from "../src/db/sql-runner.js";
import { buildServer } from "../src/server/build-server.js";
import { silentLogger } from "../src/util/logger.js";
import { benchDatabase, median, numberArg, printResult } from "./_support.js";

const rows = numberArg("rows", 10_000_000);
const runs = numberArg("runs", 21);
const rawRuns = numberArg("raw-runs", 3);
/** Keep the database afterwards (for EXPLAIN and profiling); its URL is printed. */
const keep = process.argv.includes("--keep");
const ENDPOINTS = 50;
const DAYS = 7;
const CHUNK_ROWS = 1_000_000;

const note = (msg: string, fields: Record<string, unknown> = {}) => console.error(JSON.stringify({ msg, ...fields }));
const seconds = (ms: number) => Math.round(ms / 100) / 10;

const bench = await benchDatabase("queries");
const dataDir = await mkdtemp(join(tmpdir(), "bench-queries-"));
try {
  const config = loadConfig(
    {},
    {
      port: 0,
      host: "127.0.0.1",
      databaseUrl: bench.url,
      dataDir,
      logLevel: "warn",
      rateLimits: parseRateLimits("off"),
      analyticsEnabled: false,
      retentionEnabled: false,
    },
  );

  // 1. Data and rollups.
  const db = await openDatabase(config, silentLogger);
  const loadStarted = performance.now();
  const client = new pg.Client({ connectionString: bench.url });
  await client.connect();
  const endMs = Date.now();
  const startMs = endMs - DAYS * 86_400_000;
  // Bulk load without the two time indexes, then build them once.
  await client.query(`drop index "api_request_logs_occurred_at_idx", "api_request_logs_endpoint_occurred_at_idx"`);
  for (let first = 1; first <= rows; first += CHUNK_ROWS) {
    const last = Math.min(rows, first + CHUNK_ROWS - 1);
    await client.query(
      `insert into api_request_logs (occurred_at, endpoint, protocol, http_method, status_code, http_status, response_time_ms) ` +
        `select $1::timestamptz + make_interval(secs => (i - 1 + u0) * $2::float8), ` +
        `'/analytics.v1.BenchService/Endpoint' || lpad(e::text, 2, '0'), 'grpc', 'POST', ` +
        `case when u3 < 0.02 then 13 else 0 end, case when u3 < 0.02 then 500 else 200 end, ` +
        // Log-normal around a per-endpoint median (3..101 ms), 1% of calls 20x slower.
        `exp(ln(3 + 2 * e) + 0.7 * sqrt(-2 * ln(1 - u1)) * cos(2 * pi() * u2)) * case when u3 > 0.99 then 20 else 1 end ` +
        `from (select i, random() as u0, floor(${ENDPOINTS} * random() ^ 2)::int as e, random() as u1, random() as u2, random() as u3 ` +
        `from generate_series($3::int, $4::int) as i) s`,
      [new Date(startMs).toISOString(), (DAYS * 86_400) / rows, first, last],
    );
    note("loaded", { rows: last });
  }
  await client.query(`create index "api_request_logs_occurred_at_idx" on "api_request_logs" ("occurred_at")`);
  await client.query(`create index "api_request_logs_endpoint_occurred_at_idx" on "api_request_logs" ("endpoint", "occurred_at")`);
  await client.query(`vacuum analyze api_request_logs`);
  const loadMs = performance.now() - loadStarted;
  const rebuildStarted = performance.now();
  await rebuildRollups(createSqlPool(db.orm.em), { families: ["api"], chunkHours: 24 });
  const rebuildMs = performance.now() - rebuildStarted;
  await client.query(`vacuum analyze api_rollup_hourly`);
  await client.query(`vacuum analyze api_rollup_daily`);
  await db.close();
  note("data ready", { load_s: seconds(loadMs), rebuild_s: seconds(rebuildMs) });

  // 2. The real server and an admin client.
  const server = await buildServer(config);
  await server.listen();
  const secret = await loadSigningSecret(config);
  const token = await mintToken(secret.key, { role: "admin", sub: "bench", ttlSeconds: 3600, issuer: config.jwtIssuer, audience: config.jwtAudience });
  const metrics = createClient(
    MetricsService,
    createGrpcTransport({
      baseUrl: server.url(),
      interceptors: [
        (next) => (req) => {
          req.header.set("authorization", `Bearer ${token}`);
          return next(req);
        },
      ],
    }),
  );
  const time = async (hours: number) => {
    const ms: number[] = [];
    for (let i = 0; i < 3; i++) await metrics.getApiPerformance({ hours }); // warm up
    for (let i = 0; i < runs; i++) {
      const t = performance.now();
      await metrics.getApiPerformance({ hours });
      ms.push(performance.now() - t);
    }
    return ms;
  };
  // The first call after start reads every histogram (the cache is empty); later calls read the
  // arrays of changed rows only. Reported separately so the median does not hide it.
  const coldStarted = performance.now();
  await metrics.getApiPerformance({ hours: 168 });
  const cold168 = performance.now() - coldStarted;
  const ms24 = await time(24);
  const ms168 = await time(168);
  const answer = await metrics.getApiPerformance({ hours: 168 });
  await server.close();
  note("rollup queries", { cold_168h: cold168, median_24h: median(ms24), median_168h: median(ms168), min_168h: Math.min(...ms168), max_168h: Math.max(...ms168) });

  // 3. The same answer from raw rows, for the window the server reported.
  const window = [new Date(timestampMs(answer.window!.start!)).toISOString(), new Date(timestampMs(answer.window!.end!)).toISOString()];
  const rawSql =
    `select endpoint, count(*)::float8 as n, (count(*) filter (where status_code <> 0))::float8 as errors, avg(response_time_ms) as avg, ` +
    `min(response_time_ms) as min, max(response_time_ms) as max, ` +
    `percentile_cont(0.5) within group (order by response_time_ms) as p50, ` +
    `percentile_cont(0.95) within group (order by response_time_ms) as p95, ` +
    `percentile_cont(0.99) within group (order by response_time_ms) as p99 ` +
    `from api_request_logs where occurred_at >= $1 and occurred_at <= $2 group by endpoint order by 2 desc`;
  type RawRow = { endpoint: string; n: number; errors: number; avg: number; min: number; max: number; p50: number; p95: number; p99: number };
  const rawMs: number[] = [];
  let raw: RawRow[] = [];
  for (let i = 0; i < rawRuns; i++) {
    const t = performance.now();
    raw = (await client.query<RawRow>(rawSql, window)).rows;
    rawMs.push(performance.now() - t);
  }
  await client.end();
  note("raw query", { median_ms: median(rawMs), runs: rawMs });

  let worst = 0;
  const byName = new Map(answer.endpoints.map((e) => [e.endpoint, e]));
  if (byName.size !== raw.length) throw new Error(`endpoint sets differ: ${byName.size} vs ${raw.length}`);
  for (const r of raw) {
    const e = byName.get(r.endpoint);
    if (!e) throw new Error(`missing endpoint ${r.endpoint}`);
    if (Number(e.requestCount) !== r.n || Number(e.errorCount) !== r.errors || e.minResponseMs !== r.min || e.maxResponseMs !== r.max) {
      throw new Error(`exact figures differ for ${r.endpoint}: ${JSON.stringify({ got: [e.requestCount, e.errorCount, e.minResponseMs, e.maxResponseMs], want: r })}`);
    }
    if (Math.abs(e.avgResponseMs - r.avg) > 1e-9 * r.avg) throw new Error(`average differs for ${r.endpoint}: ${e.avgResponseMs} vs ${r.avg}`);
    for (const [got, want] of [
      [e.p50ResponseMs, r.p50],
      [e.p95ResponseMs, r.p95],
      [e.p99ResponseMs, r.p99],
    ] as const) {
      worst = Math.max(worst, Math.abs(got - want) / want);
    }
  }

  const round = (x: number, digits: number) => Number(x.toFixed(digits));
  printResult({
    rows,
    median_ms_24h: round(median(ms24), 2),
    median_ms_168h: round(median(ms168), 2),
    ratio_to_raw: round(median(rawMs) / median(ms168), 1),
    percentile_rel_error: Number(worst.toPrecision(3)),
  });
} finally {
  if (keep) note("kept the database", { url: bench.url });
  else await bench.drop();
  await rm(dataDir, { recursive: true, force: true });
}
