/**
 * The SDK's Node entry points against the real server (port 0, real database): every method of
 * the typed clients over gRPC and the Connect protocol, errors as ConnectError, retries on rate
 * limits and on an unreachable server (only for idempotent calls), deadlines, and the queueing
 * event logger (size, age, shutdown, outage, bounded queue, per-item rejections).
 */
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseRateLimits } from "../../src/auth/rate-limit-policy.js";
import { mintTestToken } from "../../test/support/auth.js";
import { startTcpProxy, type TcpProxy } from "../../test/support/tcp-proxy.js";
import { useTestServer } from "../../test/support/test-server.js";
import {
  ActivityType,
  AnalyticsService,
  Code,
  ConnectError,
  createAnalyticsClient,
  createMetricsClient,
  ErrorCategory,
  eventIdOf,
  fieldViolationsOf,
  JobStatus,
  newEventId,
  retryInfoMs,
  Severity,
  WriteOutcome,
  type AnalyticsClient,
  type MetricsClient,
} from "../src/index.js";
import { createEventLogger, createNodeTransport } from "../src/node/index.js";

const t = useTestServer();
let baseUrl: string;
let serviceToken: string;
let adminToken: string;

async function countByEventIds(table: string, ids: readonly string[]): Promise<{ rows: number; distinct: number }> {
  const [r] = await t.rows<{ n: string; d: string }>(
    `select count(*) as n, count(distinct event_id) as d from ${table} where event_id = any(?::uuid[])`,
    [`{${ids.join(",")}}`],
  );
  return { rows: Number(r!.n), distinct: Number(r!.d) };
}

async function rejection(call: Promise<unknown>): Promise<ConnectError> {
  try {
    await call;
  } catch (err) {
    expect(err).toBeInstanceOf(ConnectError);
    return err as ConnectError;
  }
  throw new Error("expected the call to fail");
}

/** Counts the attempts of calls (interceptors given to the transport run once per attempt). */
function attemptCounter(): { interceptor: Interceptor; count: () => number } {
  let n = 0;
  return {
    interceptor: (next) => (req) => {
      n++;
      return next(req);
    },
    count: () => n,
  };
}

beforeAll(async () => {
  baseUrl = t.server.url();
  serviceToken = await mintTestToken(t.server.config, "service", "sdk-service");
  adminToken = await mintTestToken(t.server.config, "admin", "sdk-admin");
});

describe.each(["grpc", "connect"] as const)("AnalyticsClient over %s", (protocol) => {
  let analytics: AnalyticsClient;
  let admin: AnalyticsClient;

  beforeAll(() => {
    analytics = createAnalyticsClient(createNodeTransport({ baseUrl, token: serviceToken, protocol }));
    admin = createAnalyticsClient(createNodeTransport({ baseUrl, getToken: async () => adminToken, protocol }));
  });

  it("logUserActivity stores the row with a generated event id and a Date occurredAt", async () => {
    const at = new Date(Date.UTC(2026, 2, 4, 5, 6, 7, 890));
    const res = await analytics.logUserActivity({
      activityType: ActivityType.SEARCH,
      pageUrl: "/devices",
      searchQuery: `offline-${protocol}`,
      sessionId: "s-1",
      userId: "user-1",
      durationMs: 1200,
      extraData: { filters: ["offline"] },
      occurredAt: at,
    });
    expect(res.outcome).toBe(WriteOutcome.STORED);
    const [row] = await t.rows(`select * from user_activities where id = ?`, [res.id]);
    expect(row).toMatchObject({ activity_type: "search", search_query: `offline-${protocol}`, user_id: "user-1", duration_ms: 1200, extra_data: { filters: ["offline"] } });
    expect(row!.event_id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(new Date(row!.occurred_at as string).toISOString()).toBe(at.toISOString());
  });

  it("logError is idempotent by event id; resolveError (admin) resolves it", async () => {
    const eventId = newEventId();
    const input = { category: ErrorCategory.API, severity: Severity.CRITICAL, errorCode: "E_SDK", errorMessage: `sdk ${protocol} ${eventId}`, eventId, occurredAt: Date.now() - 1000 };
    const first = await analytics.logError(input);
    const again = await analytics.logError(input);
    expect(first.outcome).toBe(WriteOutcome.STORED);
    expect(again).toMatchObject({ outcome: WriteOutcome.REPLAYED, id: first.id });
    expect(await countByEventIds("error_logs", [eventId])).toEqual({ rows: 1, distinct: 1 });

    const resolved = await admin.resolveError({ errorId: first.id, resolved: true });
    expect(resolved.resolved).toBe(true);
    expect(resolved.resolvedAt && timestampDate(resolved.resolvedAt).getTime()).toBeGreaterThan(Date.now() - 60_000);
    const [row] = await t.rows(`select resolved from error_logs where id = ?`, [first.id]);
    expect(row).toEqual({ resolved: true });
  });

  it("logDeviceStateChange and logJobOutcome store their rows", async () => {
    const change = await analytics.logDeviceStateChange({ deviceId: `dev-${protocol}`, previousState: "online", newState: "offline", reason: "Network timeout" });
    expect(await t.rows(`select device_id, new_state, changed_by from device_state_history where id = ?`, [change.id])).toEqual([
      { device_id: `dev-${protocol}`, new_state: "offline", changed_by: "sdk-service" },
    ]);
    const job = await analytics.logJobOutcome({ jobId: `job-${protocol}`, jobType: "device_restart", status: JobStatus.FAILED, durationMs: 5000, errorCode: "E_BUSY", retryCount: 2 });
    expect(await t.rows(`select job_id, status, duration_ms, retry_count from job_outcomes where id = ?`, [job.id])).toEqual([
      { job_id: `job-${protocol}`, status: "failed", duration_ms: 5000, retry_count: 2 },
    ]);
  });

  it("logEvents stores a mixed batch and rejects only the invalid item", async () => {
    const res = await analytics.logEvents([
      { userActivity: { activityType: ActivityType.PAGE_VIEW, pageUrl: "/home", userId: "u-2" } },
      { error: { errorMessage: "" } },
      { deviceStateChange: { deviceId: "dev-b", newState: "online" } },
      { jobOutcome: { jobId: "j-b", jobType: "backup", status: JobStatus.SUCCESS } },
    ]);
    expect(res.results.map((r) => r.outcome)).toEqual([WriteOutcome.STORED, WriteOutcome.REJECTED, WriteOutcome.STORED, WriteOutcome.STORED]);
    expect(res.results[1]!.violations.map((v) => v.field)).toEqual(["events[1].error.error_message"]);
    expect({ stored: res.storedCount, rejected: res.rejectedCount }).toEqual({ stored: 3, rejected: 1 });
    expect(await t.rows(`select page_url from user_activities where id = ?`, [res.results[0]!.id])).toEqual([{ page_url: "/home" }]);
  });

  it("logEvents with wireFastPath: false sends generated messages over the SDK's transport too, and stores them", async () => {
    const seen: string[] = [];
    const spy: Interceptor = (next) => (req) => {
      seen.push((req.message as { $typeName: string }).$typeName);
      return next(req);
    };
    const client = createAnalyticsClient(createNodeTransport({ baseUrl, token: serviceToken, protocol, interceptors: [spy] }), { wireFastPath: false });
    const res = await client.logEvents([{ userActivity: { activityType: ActivityType.SEARCH, searchQuery: "generic", extraData: { k: [1, null] } } }]);
    expect(seen).toEqual(["analytics.v1.LogEventsRequest"]);
    expect(res.results.map((r) => r.outcome)).toEqual([WriteOutcome.STORED]);
    expect(await t.rows(`select search_query, extra_data from user_activities where id = ?`, [res.results[0]!.id])).toEqual([{ search_query: "generic", extra_data: { k: [1, null] } }]);
  });

  it("logEvents sends pre-encoded events over the SDK's transport, generated messages over any other; both store the same rows", async () => {
    const seen: string[] = [];
    const spy: Interceptor = (next) => (req) => {
      seen.push((req.message as { $typeName: string }).$typeName);
      return next(req);
    };
    const sdkTransport = createAnalyticsClient(createNodeTransport({ baseUrl, token: serviceToken, protocol, interceptors: [spy] }));
    const plain = createAnalyticsClient(
      (protocol === "grpc" ? createGrpcTransport : createConnectTransport)({
        baseUrl,
        httpVersion: "2",
        interceptors: [spy, (next) => (req) => (req.header.set("authorization", `Bearer ${serviceToken}`), next(req))],
      }),
    );
    const batch = (tag: string) => [
      { userActivity: { activityType: ActivityType.SEARCH, searchQuery: `q-${tag}`, extraData: { k: [1, "é😀", null, { n: -0.5 }] }, occurredAt: 1_767_225_600_123 } },
      { error: { errorMessage: `boom ${tag}`, category: ErrorCategory.DATABASE, context: { "": true }, deviceId: `d-${tag}` } },
      { deviceStateChange: { deviceId: `d-${tag}`, newState: "x".repeat(256), reason: "\uD800 lone" } },
      { jobOutcome: { jobId: `j-${tag}`, jobType: "t", status: JobStatus.TIMEOUT, durationMs: 0, retryCount: 2_147_483_647 } },
    ];
    const viaEncoded = await sdkTransport.logEvents(batch(protocol));
    const viaGenerated = await plain.logEvents(batch(protocol));
    expect(seen).toEqual(["analytics.internal.LogEventsRequestWire", "analytics.v1.LogEventsRequest"]);
    expect(viaEncoded.results.map((r) => r.outcome)).toEqual(Array(4).fill(WriteOutcome.STORED));
    // The same error again is de-duplicated (same device, code and message), onto the stored one.
    expect(viaGenerated.results.map((r) => r.outcome)).toEqual([WriteOutcome.STORED, WriteOutcome.DEDUPLICATED, WriteOutcome.STORED, WriteOutcome.STORED]);
    const stored = async (ids: string[]) => {
      const [a] = await t.rows(`select activity_type, search_query, extra_data, occurred_at from user_activities where id = ?`, [ids[0]]);
      const [e] = await t.rows(`select category, error_message, context, device_id from error_logs where id = ?`, [ids[1]]);
      const [d] = await t.rows(`select device_id, new_state, reason from device_state_history where id = ?`, [ids[2]]);
      const [j] = await t.rows(`select job_id, status, duration_ms, retry_count from job_outcomes where id = ?`, [ids[3]]);
      return { a, e, d, j };
    };
    const ids = (r: typeof viaEncoded) => r.results.map((x) => x.id);
    expect(viaGenerated.results[1]!.id).toBe(viaEncoded.results[1]!.id);
    expect(await stored(ids(viaEncoded))).toEqual(await stored(ids(viaGenerated)));
    expect((await stored(ids(viaEncoded))).d).toEqual({ device_id: `d-${protocol}`, new_state: "x".repeat(256), reason: "\uFFFD lone" });

    // A uint32 beyond its integer column is rejected alone (it used to fail the batch's flush: Internal).
    const tooMany = await sdkTransport.logEvents([
      { jobOutcome: { jobId: "j-big", jobType: "t", status: JobStatus.SUCCESS, retryCount: 4_294_967_295 } },
      { jobOutcome: { jobId: `j-ok-${protocol}`, jobType: "t", status: JobStatus.SUCCESS } },
    ]);
    expect(tooMany.results.map((r) => [r.outcome, r.violations.map((v) => v.field)])).toEqual([
      [WriteOutcome.REJECTED, ["events[0].job_outcome.retry_count"]],
      [WriteOutcome.STORED, []],
    ]);
  });

  it("ingestDeviceMetrics and the raw streamDeviceMetrics answer with counts", async () => {
    const t = Date.now() - 60_000;
    const ingested = await analytics.ingestDeviceMetrics({ deviceId: `ingest-${protocol}`, samples: [{ occurredAt: t, metrics: { cpu: 40 } }, { occurredAt: new Date(t + 1000), metrics: { cpu: 40.1 } }] });
    expect(ingested.counts).toMatchObject({ received: 2, stored: 1, filtered: 1, rejected: 0 });

    async function* one() {
      yield { sequence: 7n, deviceId: `stream-${protocol}`, samples: [{ occurredAt: { seconds: BigInt(Math.floor(t / 1000)), nanos: 0 }, metrics: { cpu: 1 } }] };
    }
    const acks = [];
    for await (const ack of analytics.streamDeviceMetrics(one())) acks.push(ack);
    expect(acks.map((a) => [a.sequence, a.counts?.stored])).toEqual([[7n, 1]]);
  });
});

describe("errors are ConnectErrors with precise codes", () => {
  it("InvalidArgument names the field; a batch over 500 fails without a call", async () => {
    const attempts = attemptCounter();
    const analytics = createAnalyticsClient(createNodeTransport({ baseUrl, token: serviceToken, interceptors: [attempts.interceptor] }));
    const err = await rejection(analytics.logJobOutcome({ jobId: "", jobType: "x", status: JobStatus.SUCCESS }));
    expect(err.code).toBe(Code.InvalidArgument);
    expect(err.rawMessage).toContain("job_id: is required");
    expect(fieldViolationsOf(err).map((v) => [v.field, v.description])).toEqual([["job_id", "is required"]]);

    const before = attempts.count();
    const tooMany = await rejection(analytics.logEvents(Array.from({ length: 501 }, () => ({ error: { errorMessage: "x" } }))));
    expect(tooMany.code).toBe(Code.InvalidArgument);
    expect(tooMany.rawMessage).toContain("events: must hold 1 to 500 events (got 501)");
    expect(fieldViolationsOf(tooMany).map((v) => [v.field, v.description])).toEqual([["events", "must hold 1 to 500 events (got 501)"]]);
    expect(attempts.count()).toBe(before);
  });

  it("Unauthenticated without a token, PermissionDenied for a role that may not call", async () => {
    const anonymous = createAnalyticsClient(createNodeTransport({ baseUrl }));
    expect((await rejection(anonymous.logError({ errorMessage: "x" }))).code).toBe(Code.Unauthenticated);
    const user = createAnalyticsClient(createNodeTransport({ baseUrl, token: await mintTestToken(t.server.config, "user", "u-9") }));
    expect((await rejection(user.logJobOutcome({ jobId: "j", jobType: "t", status: JobStatus.SUCCESS }))).code).toBe(Code.PermissionDenied);
    const metrics = createMetricsClient(createNodeTransport({ baseUrl, token: serviceToken }));
    expect((await rejection(metrics.getDeviceMetrics({ deviceId: "d" }))).code).toBe(Code.PermissionDenied);
  });
});

describe("MetricsClient (admin)", () => {
  let metrics: MetricsClient;
  const deviceId = "sdk-metrics-device";

  beforeAll(async () => {
    metrics = createMetricsClient(createNodeTransport({ baseUrl, token: adminToken }));
    const analytics = createAnalyticsClient(createNodeTransport({ baseUrl, token: serviceToken }));
    const start = Date.now() - 10 * 60_000;
    await analytics.ingestDeviceMetrics({
      deviceId,
      samples: Array.from({ length: 5 }, (_, i) => ({ occurredAt: start + i * 60_000, metrics: { level: i % 2 === 0 ? 10 : 20 } })),
    });
    for (const state of ["online", "offline", "online"]) await analytics.logDeviceStateChange({ deviceId, newState: state });
    await analytics.logJobOutcome({ jobId: "m-1", jobType: "sdk_job", status: JobStatus.SUCCESS, durationMs: 100 });
    await analytics.logError({ category: ErrorCategory.DEVICE, errorMessage: "metrics client test" });
  });

  it("getDeviceMetrics pages, and listDeviceMetrics walks every page", async () => {
    const page = await metrics.getDeviceMetrics({ deviceId, pageSize: 2 });
    expect(page.samples).toHaveLength(2);
    expect(page.nextPageToken).not.toBe("");
    const all = [];
    for await (const s of metrics.listDeviceMetrics({ deviceId, pageSize: 2 })) all.push(s);
    expect(all.map((s) => s.metrics.level)).toEqual([10, 20, 10, 20, 10]);
    expect(all[0]!.reason).toBe("significant_change");
    expect(all[4]!.reason).toBe("first_contact");
  });

  it("getDeviceStateHistory pages, and listDeviceStateHistory walks every page", async () => {
    const page = await metrics.getDeviceStateHistory({ deviceId, pageSize: 2 });
    expect(page.changes).toHaveLength(2);
    expect(page.nextPageToken).not.toBe("");
    const all = [];
    for await (const c of metrics.listDeviceStateHistory({ deviceId, pageSize: 2 })) all.push(c.newState);
    expect(all).toEqual(["online", "offline", "online"]);
  });

  it("getApiPerformance reports the calls above", async () => {
    const endpoint = "/analytics.v1.AnalyticsService/LogDeviceStateChange";
    // The request log is written behind the calls (it never delays them): wait for its rows.
    await expect.poll(async () => (await metrics.getApiPerformance({ hours: 1, endpoint })).endpoints[0]?.requestCount ?? 0, { timeout: 10_000 }).toBeGreaterThanOrEqual(3);
    const res = await metrics.getApiPerformance({ hours: 1, endpoint });
    expect(res.window?.end).toBeDefined();
    expect(res.endpoints.map((e) => e.endpoint)).toEqual([endpoint]);
  });

  it("getJobOutcomes", async () => {
    const res = await metrics.getJobOutcomes({ jobType: "sdk_job" });
    expect(res.jobTypes.map((j) => [j.jobType, j.total, j.successRate])).toEqual([["sdk_job", 1, 1]]);
  });

  it("getErrorTrends", async () => {
    const res = await metrics.getErrorTrends({ category: ErrorCategory.DEVICE });
    expect(res.total).toBeGreaterThanOrEqual(1);
    expect(res.timeline.length).toBeGreaterThanOrEqual(24);
  });

  it("answers serialize: JSON.stringify gives counts as numbers and times as ISO strings", async () => {
    const parse = (answer: unknown) => JSON.parse(JSON.stringify(answer)) as Record<string, unknown>;
    const iso = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

    const jobs = await metrics.getJobOutcomes({ jobType: "sdk_job" });
    expect(parse(jobs)).toEqual({
      window: { start: expect.stringMatching(iso), end: expect.stringMatching(iso) },
      jobTypes: [{ jobType: "sdk_job", total: 1, successRate: 1, statuses: [{ status: JobStatus.SUCCESS, count: 1, avgDurationMs: 100 }] }],
    });
    expect(jobs.window!.end!.getTime()).toBeGreaterThan(Date.now() - 60_000);

    const errors = await metrics.getErrorTrends({ category: ErrorCategory.DEVICE });
    const errorsJson = parse(errors) as { total: unknown; counts: { count: unknown }[]; timeline: { hourStart: unknown; count: unknown }[] };
    expect(typeof errorsJson.total).toBe("number");
    expect(errorsJson.total).toBe(errors.total);
    expect(errorsJson.counts.map((c) => typeof c.count)).toEqual(errors.counts.map(() => "number"));
    expect(errorsJson.timeline.map((b) => typeof b.count)).toEqual(errors.timeline.map(() => "number"));
    expect(errorsJson.timeline.every((b) => typeof b.hourStart === "string" && iso.test(b.hourStart))).toBe(true);

    const endpoint = "/analytics.v1.AnalyticsService/LogDeviceStateChange";
    const performance = parse(await metrics.getApiPerformance({ hours: 1, endpoint })) as { endpoints: Record<string, unknown>[] };
    expect(performance.endpoints[0]).toMatchObject({ endpoint, requestCount: expect.any(Number), errorCount: expect.any(Number) });

    const history = parse(await metrics.getDeviceStateHistory({ deviceId, pageSize: 1 })) as { changes: Record<string, unknown>[] };
    expect(history.changes[0]).toMatchObject({ deviceId, newState: "online", occurredAt: expect.stringMatching(iso) });

    // The generated client underneath still answers with messages, counts as bigint.
    expect((await metrics.raw.getJobOutcomes({ jobType: "sdk_job" })).jobTypes[0]!.total).toBe(1n);
  });
});

describe("retries", () => {
  const limited = useTestServer({ rateLimits: parseRateLimits("user=5/s:1,service=off,admin=off,device=off") });

  it.each(["grpc", "connect"] as const)("waits out a rate limit using the server's retry-after-ms hint (%s)", async (protocol) => {
    const token = await mintTestToken(limited.server.config, "user", `u-rl-${protocol}`);
    const attempts = attemptCounter();
    const analytics = createAnalyticsClient(createNodeTransport({ baseUrl: limited.server.url(), token, protocol, interceptors: [attempts.interceptor] }));
    const results = await Promise.all(Array.from({ length: 3 }, (_, i) => analytics.logUserActivity({ activityType: ActivityType.CLICK, elementId: `b-${i}` })));
    expect(results.every((r) => r.outcome === WriteOutcome.STORED)).toBe(true);
    expect(attempts.count()).toBeGreaterThan(3);

    const noRetry = createAnalyticsClient(createNodeTransport({ baseUrl: limited.server.url(), token, protocol, retry: false }));
    const errs = await Promise.allSettled([1, 2, 3].map(() => noRetry.logUserActivity({ activityType: ActivityType.CLICK })));
    const refused = errs.filter((r): r is PromiseRejectedResult => r.status === "rejected").map((r) => r.reason as ConnectError);
    expect(refused.length).toBeGreaterThan(0);
    expect(refused[0]!.code).toBe(Code.ResourceExhausted);
    expect(Number(refused[0]!.metadata.get("retry-after-ms"))).toBeGreaterThan(0);
    // The hint the SDK acts on: the RetryInfo detail (the header is for older clients).
    expect(retryInfoMs(refused[0]!)).toBe(Number(refused[0]!.metadata.get("retry-after-ms")));
  });

  describe("while the server is unreachable", () => {
    let proxy: TcpProxy;
    beforeAll(async () => {
      proxy = await startTcpProxy({ host: "127.0.0.1", port: Number(new URL(baseUrl).port) });
    });
    afterAll(async () => proxy?.close());

    it("retries an idempotent call (event id set) until the server is back", async () => {
      const analytics = createAnalyticsClient(
        createNodeTransport({ baseUrl: `http://127.0.0.1:${proxy.port}`, token: serviceToken, retry: { maxAttempts: 10, initialBackoffMs: 50, maxBackoffMs: 200 } }),
      );
      proxy.cut();
      setTimeout(() => proxy.restore(), 400);
      const res = await analytics.logError({ errorMessage: "retried through an outage" });
      expect(res.outcome).toBe(WriteOutcome.STORED);
    });

    it("does not retry a call that could store twice (no event id), and stops at the deadline", async () => {
      const attempts = attemptCounter();
      const transport = createNodeTransport({
        baseUrl: `http://127.0.0.1:${proxy.port}`,
        token: serviceToken,
        retry: { maxAttempts: 10, initialBackoffMs: 50, maxBackoffMs: 100 },
        interceptors: [attempts.interceptor],
      });
      proxy.cut();
      try {
        const raw = createClient(AnalyticsService, transport);
        const err = await rejection(raw.logError({ errorMessage: "no event id" }));
        expect(err.code).toBe(Code.Unavailable);
        expect(attempts.count()).toBe(1);

        const analytics = createAnalyticsClient(transport);
        const started = Date.now();
        const late = await rejection(analytics.logError({ errorMessage: "deadline" }, { timeoutMs: 300 }));
        expect([Code.Unavailable, Code.DeadlineExceeded]).toContain(late.code);
        expect(Date.now() - started).toBeLessThan(1500);
        expect(attempts.count()).toBeGreaterThan(2);
      } finally {
        proxy.restore();
      }
    });
  });
});

describe("createEventLogger", () => {
  let analytics: AnalyticsClient;
  beforeAll(() => {
    analytics = createAnalyticsClient(createNodeTransport({ baseUrl, token: serviceToken }));
  });

  it("sends full batches at once and the rest at close, every event once", async () => {
    const logger = createEventLogger(analytics, { maxBatch: 500, flushIntervalMs: 60_000 });
    const ids: string[] = [];
    for (let i = 0; i < 1200; i++) ids.push(logger.logJobOutcome({ jobId: `batch-${i}`, jobType: "logger_size", status: JobStatus.SUCCESS })!);
    // Two full batches go without waiting for the interval.
    await expect.poll(() => logger.stats().sent, { timeout: 10_000 }).toBe(1000);
    expect(logger.stats().queued).toBe(200);
    const { unsent } = await logger.close();
    expect(unsent).toEqual([]);
    expect(logger.stats()).toMatchObject({ sent: 1200, queued: 0, dropped: 0, rejected: 0 });
    expect(await countByEventIds("job_outcomes", ids)).toEqual({ rows: 1200, distinct: 1200 });
    expect(logger.logError({ errorMessage: "after close" })).toBeUndefined();
    expect(logger.stats().dropped).toBe(1);
  });

  it("sends a partial batch once its oldest event is flushIntervalMs old, stamped with the logging time", async () => {
    const logger = createEventLogger(analytics, { flushIntervalMs: 150 });
    const before = Date.now();
    const id = logger.logDeviceStateChange({ deviceId: "dev-age", newState: "online" })!;
    await new Promise((r) => setTimeout(r, 50));
    expect(logger.stats().sent).toBe(0);
    await expect.poll(() => logger.stats().sent, { timeout: 5000 }).toBe(1);
    const [row] = await t.rows<{ occurred_at: string }>(`select occurred_at from device_state_history where event_id = ?`, [id]);
    expect(new Date(row!.occurred_at).getTime()).toBeGreaterThanOrEqual(before - 1);
    expect(new Date(row!.occurred_at).getTime()).toBeLessThan(before + 50);
    await logger.close();
  });

  it("keeps events through an outage and delivers them once when the server is back", async () => {
    const proxy = await startTcpProxy({ host: "127.0.0.1", port: Number(new URL(baseUrl).port) });
    const errors: ConnectError[] = [];
    try {
      const viaProxy = createAnalyticsClient(createNodeTransport({ baseUrl: `http://127.0.0.1:${proxy.port}`, token: serviceToken, retry: { maxAttempts: 2, initialBackoffMs: 20 } }));
      const logger = createEventLogger(viaProxy, { maxBatch: 10, flushIntervalMs: 20, maxQueue: 25, retry: { initialBackoffMs: 50, maxBackoffMs: 200 }, onSendError: (e) => errors.push(e) });
      proxy.cut();
      const ids = Array.from({ length: 30 }, (_, i) => logger.logError({ category: ErrorCategory.EXTERNAL_SERVICE, errorMessage: `outage ${i}` }));
      // The queue holds 25; the last 5 are dropped (new events are the ones refused).
      expect(ids.slice(25)).toEqual([undefined, undefined, undefined, undefined, undefined]);
      expect(logger.stats()).toMatchObject({ queued: 25, dropped: 5 });
      await expect(logger.flush()).rejects.toMatchObject({ code: Code.Unavailable });
      await expect.poll(() => logger.stats().failedSends, { timeout: 5000 }).toBeGreaterThan(1);
      expect(logger.stats()).toMatchObject({ queued: 25, sent: 0, discarded: 0 });
      expect(errors.every((e) => e.code === Code.Unavailable)).toBe(true);

      proxy.restore();
      const { unsent } = await logger.close({ timeoutMs: 10_000 });
      expect(unsent).toEqual([]);
      expect(logger.stats()).toMatchObject({ queued: 0, sent: 25 });
      expect(await countByEventIds("error_logs", ids.slice(0, 25) as string[])).toEqual({ rows: 25, distinct: 25 });
    } finally {
      await proxy.close();
    }
  });

  it("counts events the server rejects and reports their violations", async () => {
    const rejected: string[] = [];
    const logger = createEventLogger(analytics, { onRejected: (event, result) => rejected.push(`${eventIdOf(event) !== ""}:${result.violations[0]?.field}`) });
    logger.logUserActivity({ activityType: ActivityType.PAGE_VIEW, pageUrl: "/ok" });
    logger.logJobOutcome({ jobId: "", jobType: "t", status: JobStatus.SUCCESS });
    await logger.flush();
    expect(logger.stats()).toMatchObject({ sent: 1, rejected: 1 });
    expect(rejected).toEqual(["true:events[1].job_outcome.job_id"]);
    await logger.close();
  });

  it("returns what it could not send when close times out", async () => {
    const proxy = await startTcpProxy({ host: "127.0.0.1", port: Number(new URL(baseUrl).port) });
    try {
      const viaProxy = createAnalyticsClient(createNodeTransport({ baseUrl: `http://127.0.0.1:${proxy.port}`, token: serviceToken, retry: false }));
      const logger = createEventLogger(viaProxy, { retry: { initialBackoffMs: 50, maxBackoffMs: 50 } });
      proxy.cut();
      const id = logger.logError({ errorMessage: "never delivered" });
      const started = Date.now();
      const { unsent } = await logger.close({ timeoutMs: 300 });
      expect(Date.now() - started).toBeLessThan(2000);
      expect(unsent.map(eventIdOf)).toEqual([id]);
    } finally {
      await proxy.close();
    }
  });
});
