/**
 * In-process RPC tests of the MetricsService handlers: the real routes through
 * `createRouterTransport` (real serialization), with the query module replaced by a recording
 * double. What is checked here is the handlers' part: validation, windows on the server clock,
 * paging tokens and the translation of results into messages. The queries themselves are tested
 * against a database in `metrics-queries.test.ts`.
 */
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { Code, createClient, createRouterTransport } from "@connectrpc/connect";
import type { EntityManager } from "@mikro-orm/postgresql";
import { describe, expect, it } from "vitest";
import { ErrorCategory, JobStatus, Severity } from "../../sdk/src/gen/analytics/v1/common_pb.js";
import { MetricsService } from "../../sdk/src/gen/analytics/v1/metrics_service_pb.js";
import type { MetricsQueries } from "../../src/queries/metrics-queries.js";
import { decodeStateHistoryToken, encodeStateHistoryToken } from "../../src/queries/page-token.js";
import { createHealthService } from "../../src/server/health.js";
import { createRoutes } from "../../src/server/routes.js";
import { silentLogger } from "../../src/util/logger.js";
import { rpcError } from "../support/rpc-error.js";

const NOW = Date.UTC(2026, 10, 28, 10, 37, 12, 345);
const H = 3_600_000;

type Calls = { method: string; args: unknown }[];

function setup(overrides: Partial<MetricsQueries> = {}) {
  const calls: Calls = [];
  const defaults: MetricsQueries = {
    apiPerformance: async (a) => ({ window: a.window, endpoints: [] }),
    jobOutcomes: async (a) => ({ window: a.window, jobTypes: [] }),
    errorTrends: async (a) => ({ window: a.window, total: 0, counts: [], timeline: [] }),
    deviceStateHistory: async () => [],
    deviceMetrics: async () => [],
  };
  const impl = { ...defaults, ...overrides } as Record<string, (a: unknown) => Promise<unknown>>;
  const queries = Object.fromEntries(
    Object.keys(defaults).map((method) => [
      method,
      async (args: unknown) => {
        calls.push({ method, args });
        return impl[method]!(args);
      },
    ]),
  ) as unknown as MetricsQueries;
  const routes = createRoutes({
    writer: { write: async () => [], hasRoom: () => true } as never,
    em: {} as EntityManager,
    log: silentLogger,
    health: createHealthService(),
    reflection: false,
    now: () => NOW,
    metricsQueries: queries,
  });
  return { client: createClient(MetricsService, createRouterTransport(routes)), calls };
}

describe("windows and hours", () => {
  it("defaults to 24 hours ending now on the server clock", async () => {
    const { client, calls } = setup();
    const res = await client.getApiPerformance({});
    expect(calls[0]!.args).toEqual({ window: { startMs: NOW - 24 * H, endMs: NOW }, endpoint: undefined });
    expect(timestampMs(res.window!.start!)).toBe(NOW - 24 * H);
    expect(timestampMs(res.window!.end!)).toBe(NOW);
  });

  it.each([
    ["getApiPerformance", 0, "invalid request: hours: must be between 1 and 168, got 0"],
    ["getApiPerformance", 169, "invalid request: hours: must be between 1 and 168, got 169"],
    ["getJobOutcomes", 1000, "invalid request: hours: must be between 1 and 168, got 1000"],
    ["getErrorTrends", 0, "invalid request: hours: must be between 1 and 168, got 0"],
  ] as const)("%s answers InvalidArgument naming hours for %d", async (method, hours, message) => {
    const { client, calls } = setup();
    const err = await rpcError((client[method] as (r: object) => Promise<unknown>)({ hours }));
    expect(err.code).toBe(Code.InvalidArgument);
    expect(err.rawMessage).toBe(message);
    expect(calls).toEqual([]);
  });

  it("accepts the limits themselves", async () => {
    const { client, calls } = setup();
    await client.getApiPerformance({ hours: 1 });
    await client.getJobOutcomes({ hours: 168 });
    await client.getDeviceStateHistory({ deviceId: "d", hours: 720 });
    expect(calls.map((c) => c.method)).toEqual(["apiPerformance", "jobOutcomes", "deviceStateHistory"]);
    expect((calls[2]!.args as { startUs: bigint }).startUs).toBe(BigInt(NOW - 720 * H) * 1000n);
  });
});

describe("GetApiPerformance", () => {
  it("passes the endpoint filter and translates the figures", async () => {
    const { client, calls } = setup({
      apiPerformance: async (a) => ({
        window: a.window,
        endpoints: [{ endpoint: "/x.Y/Z", requestCount: 3, errorCount: 1, avgMs: 2, minMs: 1, maxMs: 3, p50Ms: 2, p95Ms: 2.9, p99Ms: 2.98 }],
      }),
    });
    const res = await client.getApiPerformance({ endpoint: "/x.Y/Z", hours: 2 });
    expect(calls[0]!.args).toEqual({ window: { startMs: NOW - 2 * H, endMs: NOW }, endpoint: "/x.Y/Z" });
    expect(res.endpoints).toHaveLength(1);
    expect(res.endpoints[0]).toMatchObject({ endpoint: "/x.Y/Z", requestCount: 3n, errorCount: 1n, avgResponseMs: 2, p95ResponseMs: 2.9 });
  });
});

describe("GetJobOutcomes", () => {
  it("keeps a 0 average and omits an absent one", async () => {
    const { client } = setup({
      jobOutcomes: async (a) => ({
        window: a.window,
        jobTypes: [
          {
            jobType: "restart",
            total: 3,
            successRate: 2 / 3,
            statuses: [
              { status: "success", count: 2, avgDurationMs: 0 },
              { status: "cancelled", count: 1, avgDurationMs: undefined },
            ],
          },
        ],
      }),
    });
    const res = await client.getJobOutcomes({});
    const [type] = res.jobTypes;
    expect(type).toMatchObject({ jobType: "restart", total: 3n, successRate: 2 / 3 });
    expect(type!.statuses[0]).toMatchObject({ status: JobStatus.SUCCESS, count: 2n, avgDurationMs: 0 });
    expect(type!.statuses[1]!.status).toBe(JobStatus.CANCELLED);
    expect(type!.statuses[1]!.avgDurationMs).toBeUndefined();
  });
});

describe("GetErrorTrends", () => {
  it("filters by the stored category name and maps enums back", async () => {
    const { client, calls } = setup({
      errorTrends: async (a) => ({
        window: a.window,
        total: 5,
        counts: [{ category: "external_service", severity: "critical", count: 5 }],
        timeline: [{ hourStartMs: NOW - (NOW % H), count: 5 }],
      }),
    });
    const res = await client.getErrorTrends({ category: ErrorCategory.EXTERNAL_SERVICE, hours: 1 });
    expect((calls[0]!.args as { category: string }).category).toBe("external_service");
    expect(res.total).toBe(5n);
    expect(res.counts).toEqual([expect.objectContaining({ category: ErrorCategory.EXTERNAL_SERVICE, severity: Severity.CRITICAL, count: 5n })]);
    expect(timestampMs(res.timeline[0]!.hourStart!)).toBe(NOW - (NOW % H));
  });

  it("does not filter for an unspecified category and rejects an unknown one", async () => {
    const { client, calls } = setup();
    await client.getErrorTrends({});
    expect((calls[0]!.args as { category?: string }).category).toBeUndefined();
    const err = await rpcError(client.getErrorTrends({ category: 99 as ErrorCategory }));
    expect(err.code).toBe(Code.InvalidArgument);
    expect(err.rawMessage).toBe("invalid request: category: has unknown value 99");
  });
});

describe("GetDeviceStateHistory", () => {
  const change = (i: number) => ({
    id: `01937a4e-0000-7000-8000-${String(i).padStart(12, "0")}`,
    deviceId: "dev-1",
    previousState: i === 0 ? null : "online",
    newState: "offline",
    changedBy: "system",
    reason: null,
    extraData: i === 0 ? { why: "test" } : null,
    occurredAtUs: BigInt(NOW) * 1000n - BigInt(i) * 1_000_001n,
  });

  it("returns a page with a token that continues after its last row", async () => {
    const { client, calls } = setup({ deviceStateHistory: async (a) => Array.from({ length: a.limit }, (_, i) => change(i)) });
    const res = await client.getDeviceStateHistory({ deviceId: "dev-1", pageSize: 3 });
    expect(res.changes).toHaveLength(3);
    expect(res.changes[0]).toMatchObject({ id: change(0).id, previousState: "", extraData: { why: "test" } });
    expect(res.changes[1]!.extraData).toBeUndefined();
    // Microseconds survive: 1_000_001 µs apart.
    expect(res.changes[1]!.occurredAt).toMatchObject({ seconds: BigInt(Math.floor(NOW / 1000)) - 1n, nanos: (NOW % 1000) * 1_000_000 - 1000 });
    const token = decodeStateHistoryToken(res.nextPageToken)!;
    expect(token).toEqual({ deviceId: "dev-1", startUs: BigInt(NOW - 24 * H) * 1000n, beforeUs: change(2).occurredAtUs, beforeId: change(2).id });
    expect(calls[0]!.args).toMatchObject({ deviceId: "dev-1", limit: 4, cursor: undefined });

    // The next page keeps the first page's window start even when asked on a later clock.
    await client.getDeviceStateHistory({ deviceId: "dev-1", pageSize: 3, pageToken: res.nextPageToken, hours: 1 });
    expect(calls[1]!.args).toMatchObject({ startUs: token.startUs, cursor: { beforeUs: token.beforeUs, beforeId: token.beforeId } });
  });

  it("answers an empty page without a token for an unknown device", async () => {
    const { client } = setup();
    const res = await client.getDeviceStateHistory({ deviceId: "nobody" });
    expect(res.changes).toEqual([]);
    expect(res.nextPageToken).toBe("");
  });

  it("names every bad field at once", async () => {
    const { client } = setup();
    const err = await rpcError(client.getDeviceStateHistory({ deviceId: " ", hours: 721, pageSize: 1001, pageToken: "garbage!" }));
    expect(err.code).toBe(Code.InvalidArgument);
    expect(err.rawMessage).toBe(
      "invalid request: device_id: is required; hours: must be between 1 and 720, got 721; page_size: must be 1 to 1000 (got 1001); page_token: is not a page token of this query",
    );
  });

  it("refuses a forged token whose window starts far before the window cap, naming page_token", async () => {
    const { client, calls } = setup();
    const pageToken = encodeStateHistoryToken({
      deviceId: "dev-1",
      startUs: BigInt(NOW - 10 * 365 * 24 * H) * 1000n,
      beforeUs: BigInt(NOW) * 1000n,
      beforeId: "01937a4e-0000-7000-8000-000000000001",
    });
    const err = await rpcError(client.getDeviceStateHistory({ deviceId: "dev-1", pageToken }));
    expect(err.code).toBe(Code.InvalidArgument);
    expect(err.rawMessage).toBe(
      "invalid request: page_token: reaches outside the longest window this method allows (720 hours); request the first page again",
    );
    expect(calls).toHaveLength(0);
  });

  it("refuses another device's token", async () => {
    const { client } = setup();
    const pageToken = encodeStateHistoryToken({ deviceId: "dev-2", startUs: 1n, beforeUs: 2n, beforeId: "01937a4e-0000-7000-8000-000000000001" });
    const err = await rpcError(client.getDeviceStateHistory({ deviceId: "dev-1", pageToken }));
    expect(err.rawMessage).toBe("invalid request: page_token: is not a page token of this query");
  });
});

describe("storage failures", () => {
  it("become Unavailable or Internal without details", async () => {
    const { client } = setup({
      apiPerformance: async () => {
        throw Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:5432"), { code: "ECONNREFUSED" });
      },
      jobOutcomes: async () => {
        throw new Error('relation "job_rollup_hourly" does not exist');
      },
    });
    const unavailable = await rpcError(client.getApiPerformance({}));
    expect(unavailable.code).toBe(Code.Unavailable);
    const internal = await rpcError(client.getJobOutcomes({}));
    expect(internal.code).toBe(Code.Internal);
    expect(internal.rawMessage).not.toContain("job_rollup_hourly");
  });
});
