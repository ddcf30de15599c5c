/**
 * MetricsService through the real server on port 0 against a real database: events logged over
 * gRPC go through the batch writer and its rollup hook, requests are recorded by the request-log
 * interceptor, and an admin reads the answers over gRPC (connect-node) and with buf curl.
 */
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { Code, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { beforeAll, describe, expect, it } from "vitest";
import { AnalyticsService } from "../../sdk/src/gen/analytics/v1/analytics_service_pb.js";
import { ErrorCategory, JobStatus, Severity } from "../../sdk/src/gen/analytics/v1/common_pb.js";
import { MetricsService } from "../../sdk/src/gen/analytics/v1/metrics_service_pb.js";
import { bearer, mintTestToken } from "../support/auth.js";
import { rpcError } from "../support/rpc-error.js";
import { bufCurl } from "../support/buf-curl.js";
import { useTestServer } from "../support/test-server.js";

const t = useTestServer();
let baseUrl: string;
let adminToken: string;
let analytics: ReturnType<typeof createClient<typeof AnalyticsService>>;
let metrics: ReturnType<typeof createClient<typeof MetricsService>>;

beforeAll(async () => {
  baseUrl = t.server.url();
  const serviceToken = await mintTestToken(t.server.config, "service", "metrics-e2e-service");
  adminToken = await mintTestToken(t.server.config, "admin", "metrics-e2e-admin");
  analytics = createClient(AnalyticsService, createGrpcTransport({ baseUrl, interceptors: [bearer(serviceToken)] }));
  metrics = createClient(MetricsService, createGrpcTransport({ baseUrl, interceptors: [bearer(adminToken)] }));

  for (const [jobType, status, durationMs] of [
    ["restart", JobStatus.SUCCESS, 100],
    ["restart", JobStatus.SUCCESS, 300],
    ["restart", JobStatus.FAILED, undefined],
    ["update", JobStatus.TIMEOUT, 0],
  ] as const) {
    await analytics.logJobOutcome({ jobId: `job-${Math.random()}`, jobType, status, durationMs });
  }
  // Twice the same error: one stored error seen twice, counted twice.
  for (let i = 0; i < 2; i++) {
    await analytics.logError({ category: ErrorCategory.DEVICE, severity: Severity.CRITICAL, errorMessage: "overheating", deviceId: "dev-hot" });
  }
  for (let i = 0; i < 5; i++) await analytics.logDeviceStateChange({ deviceId: "dev-e2e", previousState: `s${i}`, newState: `s${i + 1}` });
  // Request logs are fire-and-forget: make them durable before asking about them.
  await t.server.writer.flush();
});

describe("MetricsService over gRPC", () => {
  it("GetApiPerformance reports the requests the interceptor recorded, busiest first", async () => {
    const res = await metrics.getApiPerformance({ hours: 1 });
    const end = timestampMs(res.window!.end!);
    expect(end - timestampMs(res.window!.start!)).toBe(3_600_000);
    expect(Math.abs(end - Date.now())).toBeLessThan(10_000);
    const byName = new Map(res.endpoints.map((e) => [e.endpoint, e]));
    const state = byName.get("/analytics.v1.AnalyticsService/LogDeviceStateChange")!;
    expect(state).toMatchObject({ requestCount: 5n, errorCount: 0n });
    expect(state.minResponseMs).toBeLessThanOrEqual(state.p50ResponseMs);
    expect(state.p50ResponseMs).toBeLessThanOrEqual(state.p99ResponseMs);
    expect(state.p99ResponseMs).toBeLessThanOrEqual(state.maxResponseMs);
    expect(byName.get("/analytics.v1.AnalyticsService/LogJobOutcome")!.requestCount).toBe(4n);
    expect(res.endpoints[0]!.endpoint).toBe("/analytics.v1.AnalyticsService/LogDeviceStateChange");
    const counts = res.endpoints.map((e) => e.requestCount);
    expect([...counts].sort((a, b) => (a > b ? -1 : a < b ? 1 : 0))).toEqual(counts);

    const one = await metrics.getApiPerformance({ hours: 1, endpoint: "/analytics.v1.AnalyticsService/LogError" });
    expect(one.endpoints.map((e) => [e.endpoint, e.requestCount])).toEqual([["/analytics.v1.AnalyticsService/LogError", 2n]]);
  });

  it("GetJobOutcomes, GetErrorTrends and GetDeviceStateHistory answer from what was logged", async () => {
    const jobs = await metrics.getJobOutcomes({});
    expect(jobs.jobTypes.map((t) => [t.jobType, t.total, t.successRate])).toEqual([
      ["restart", 3n, 2 / 3],
      ["update", 1n, 0],
    ]);
    expect(jobs.jobTypes[0]!.statuses.map((s) => [s.status, s.count, s.avgDurationMs])).toEqual([
      [JobStatus.SUCCESS, 2n, 200],
      [JobStatus.FAILED, 1n, undefined],
    ]);
    expect(jobs.jobTypes[1]!.statuses[0]!.avgDurationMs).toBe(0);

    const errors = await metrics.getErrorTrends({ category: ErrorCategory.DEVICE });
    expect(errors.total).toBe(2n);
    expect(errors.counts).toEqual([expect.objectContaining({ category: ErrorCategory.DEVICE, severity: Severity.CRITICAL, count: 2n })]);
    expect(errors.timeline).toHaveLength(25);
    expect(errors.timeline.at(-1)!.count).toBe(2n);

    const seen: string[] = [];
    let pageToken = "";
    do {
      const page = await metrics.getDeviceStateHistory({ deviceId: "dev-e2e", pageSize: 2, pageToken });
      seen.push(...page.changes.map((c) => c.newState));
      pageToken = page.nextPageToken;
    } while (pageToken !== "");
    expect(seen).toEqual(["s5", "s4", "s3", "s2", "s1"]);
  });

  it("answers InvalidArgument naming the field", async () => {
    const err = await rpcError(metrics.getErrorTrends({ hours: 169 }));
    expect(err.code).toBe(Code.InvalidArgument);
    expect(err.rawMessage).toBe("invalid request: hours: must be between 1 and 168, got 169");
    const token = await rpcError(metrics.getDeviceStateHistory({ deviceId: "dev-e2e", pageToken: "bm90LWEtdG9rZW4" }));
    expect(token.rawMessage).toBe("invalid request: page_token: is not a page token of this query");
    // A NUL in a filter: PostgreSQL would refuse the parameter (it used to answer Internal).
    for (const [call, field] of [
      [() => metrics.getApiPerformance({ endpoint: "/x\u0000" }), "endpoint"],
      [() => metrics.getJobOutcomes({ jobType: "\u0000" }), "job_type"],
      [() => metrics.getDeviceStateHistory({ deviceId: "d\u0000" }), "device_id"],
      [() => metrics.getDeviceMetrics({ deviceId: "d\u0000" }), "device_id"],
    ] as const) {
      const nul = await rpcError(call());
      expect(nul.code, field).toBe(Code.InvalidArgument);
      expect(nul.rawMessage).toBe(`invalid request: ${field}: must not contain the NUL character (U+0000)`);
    }
  });

  it("works with buf curl through reflection, as the README shows", async () => {
    const { stdout } = await bufCurl(
      "-H",
      `authorization: Bearer ${adminToken}`,
      "-d",
      '{"hours":1,"endpoint":"/analytics.v1.AnalyticsService/LogJobOutcome"}',
      `${baseUrl}/analytics.v1.MetricsService/GetApiPerformance`,
    );
    const body = JSON.parse(stdout) as { endpoints: { endpoint: string; requestCount: string }[] };
    expect(body.endpoints).toEqual([expect.objectContaining({ endpoint: "/analytics.v1.AnalyticsService/LogJobOutcome", requestCount: "4" })]);
  });
});
