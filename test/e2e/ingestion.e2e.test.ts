/**
 * The ingestion pipeline through the real server: request-log rows for every kind of call,
 * LogEvents with mixed items, error de-duplication with ResolveError, the buffer cap and the
 * drain at shutdown.
 */
import { create } from "@bufbuild/protobuf";
import { durationMs, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AnalyticsService } from "../../sdk/src/gen/analytics/v1/analytics_service_pb.js";
import { ActivityType, ErrorCategory, JobStatus, WriteOutcome } from "../../sdk/src/gen/analytics/v1/common_pb.js";
import { Health } from "../../sdk/src/gen/grpc/health/v1/health_pb.js";
import { RetryInfoSchema } from "../../sdk/src/gen/google/rpc/error_details_pb.js";
import { ServerReflection, ServerReflectionRequestSchema } from "../../sdk/src/gen/grpc/reflection/v1/reflection_pb.js";
import type { Config } from "../../src/config.js";
import { buildServer, type AnalyticsServer } from "../../src/server/build-server.js";
import { bearer, mintTestToken } from "../support/auth.js";
import { rpcError } from "../support/rpc-error.js";
import { createTestDatabase, type TestDatabase } from "../support/test-database.js";

let db: TestDatabase;
const servers: AnalyticsServer[] = [];
let server: AnalyticsServer;

/**
 * Starts another server. Against PostgreSQL it shares the test database; the embedded database
 * allows one server per data folder, so there each extra server gets its own (`dataDir` reuses one).
 */
async function start(overrides: Partial<Config> = {}): Promise<AnalyticsServer> {
  const dataDir = overrides.dataDir ?? (db.embedded && servers.length > 0 ? await mkdtemp(join(tmpdir(), "ingestion-e2e-")) : db.config.dataDir);
  const s = await buildServer({ ...db.config, ...overrides, dataDir });
  await s.listen();
  servers.push(s);
  return s;
}

async function rows<T = Record<string, unknown>>(sql: string, params: unknown[] = [], on: AnalyticsServer = server): Promise<T[]> {
  return on.db.orm.em.fork().getConnection().execute<T[]>(sql, params, "all");
}

/** Request logs are fire-and-forget: poll until the expected rows have been flushed. */
async function eventually<T>(read: () => Promise<T[]>, count: number, timeoutMs = 5000): Promise<T[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const got = await read();
    if (got.length >= count || Date.now() > deadline) return got;
    await new Promise((r) => setTimeout(r, 50));
  }
}

const logsFor =
  (agent: string, on: AnalyticsServer = server) =>
  () =>
    rows(`select * from api_request_logs where user_agent like ? order by occurred_at`, [`%${agent}%`], on);

/** A client of `s` (tokens are per server: each data folder has its own signing secret). */
async function analytics(
  s: AnalyticsServer,
  role: "service" | "admin",
  agent: string,
  kind: "grpc" | "connect" | "grpc-web" = "grpc",
): Promise<Client<typeof AnalyticsService>> {
  const token = await mintTestToken(s.config, role, role === "service" ? "billing-service" : "ops-admin");
  const options = { baseUrl: s.url(), interceptors: [bearer(token), userAgent(agent)] };
  const transport =
    kind === "grpc"
      ? createGrpcTransport(options)
      : kind === "connect"
        ? createConnectTransport({ ...options, httpVersion: "1.1" })
        : createGrpcWebTransport({ ...options, httpVersion: "1.1" });
  return createClient(AnalyticsService, transport);
}

function userAgent(agent: string) {
  return ((next) => (req) => {
    req.header.set("user-agent", agent);
    return next(req);
  }) satisfies Parameters<typeof createGrpcTransport>[0]["interceptors"] extends (infer I)[] | undefined ? I : never;
}

beforeAll(async () => {
  db = await createTestDatabase();
  server = await start();
});

afterAll(async () => {
  for (const s of servers) await s.close();
  await db?.drop();
});

describe("request log", () => {
  it("records a unary gRPC call with protocol, status, timing, sizes, user and agent", async () => {
    const client = await analytics(server, "service", "agent-unary-grpc");
    await client.logDeviceStateChange({ deviceId: "d-1", newState: "online" });
    const [row] = await eventually(logsFor("agent-unary-grpc"), 1);
    expect(row).toMatchObject({
      endpoint: "/analytics.v1.AnalyticsService/LogDeviceStateChange",
      protocol: "grpc",
      http_method: "POST",
      status_code: 0,
      http_status: 200,
      user_id: "billing-service",
      request_messages: 1,
      response_messages: 1,
      error_message: null,
    });
    expect(row!.response_time_ms as number).toBeGreaterThan(0);
    expect(row!.request_bytes as number).toBeGreaterThan(10);
    expect(row!.response_bytes as number).toBeGreaterThan(10);
    expect(row!.client_ip).toMatch(/^127\.0\.0\.\d+$/);
  });

  it("records failed calls with the RPC code, the HTTP-like status and the client-safe message", async () => {
    const client = await analytics(server, "service", "agent-failed");
    const err = await rpcError(client.logJobOutcome({ jobId: "j" }));
    expect(err.code).toBe(Code.InvalidArgument);
    const [row] = await eventually(logsFor("agent-failed"), 1);
    expect(row).toMatchObject({
      status_code: Code.InvalidArgument,
      http_status: 400,
      response_messages: 0,
      error_message: "invalid request: job_type: is required; status: is required",
    });
  });

  it("stores the row of a call whose error quotes a NUL (U+0000 becomes U+FFFD, which PostgreSQL's text can hold)", async () => {
    // A device token whose subject holds a NUL, writing for another device: the refusal quotes
    // the subject, which is also the row's user.
    const token = await mintTestToken(server.config, "device", "dev\u0000nul");
    const client = createClient(AnalyticsService, createGrpcTransport({ baseUrl: server.url(), interceptors: [bearer(token), userAgent("agent-nul")] }));
    const err = await rpcError(client.logError({ deviceId: "another-device", errorCode: "E1", errorMessage: "x" }));
    expect(err.code).toBe(Code.PermissionDenied);
    expect(err.rawMessage).toContain("dev\u0000nul");
    const [row] = await eventually(logsFor("agent-nul"), 1);
    expect(row).toMatchObject({ status_code: Code.PermissionDenied, user_id: "dev\uFFFDnul" });
    expect(row!.error_message).toContain('"dev\uFFFDnul"');
  });

  it("tells the protocols apart on the one port", async () => {
    await (await analytics(server, "service", "agent-proto-connect", "connect")).logDeviceStateChange({ deviceId: "d-2", newState: "x" });
    await (await analytics(server, "service", "agent-proto-web", "grpc-web")).logDeviceStateChange({ deviceId: "d-2", newState: "y" });
    expect((await eventually(logsFor("agent-proto-connect"), 1))[0]).toMatchObject({ protocol: "connect", http_status: 200 });
    expect((await eventually(logsFor("agent-proto-web"), 1))[0]).toMatchObject({ protocol: "grpc-web", http_status: 200 });
  });

  it("takes the client address from X-Forwarded-For only as many hops back as proxies are trusted", async () => {
    const xff = (agent: string) =>
      ((next) => (req) => {
        req.header.set("x-forwarded-for", "203.0.113.7, 198.51.100.9");
        req.header.set("user-agent", agent);
        return next(req);
      }) satisfies Parameters<typeof createGrpcTransport>[0]["interceptors"] extends (infer I)[] | undefined ? I : never;
    const call = async (s: AnalyticsServer, agent: string, kind: "grpc" | "connect") => {
      const token = await mintTestToken(s.config, "service", "billing-service");
      const options = { baseUrl: s.url(), interceptors: [bearer(token), xff(agent)] };
      const transport = kind === "grpc" ? createGrpcTransport(options) : createConnectTransport({ ...options, httpVersion: "1.1" });
      await createClient(AnalyticsService, transport).logDeviceStateChange({ deviceId: "d-xff", newState: "x" });
    };
    const behindProxy = await start({ trustedProxyHops: 1, ipAnonymization: "none" });
    await call(behindProxy, "agent-xff-trusted-h2", "grpc");
    await call(behindProxy, "agent-xff-trusted-h1", "connect");
    await call(server, "agent-xff-untrusted", "grpc");
    expect((await eventually(logsFor("agent-xff-trusted-h2", behindProxy), 1))[0]).toMatchObject({ client_ip: "198.51.100.9" });
    expect((await eventually(logsFor("agent-xff-trusted-h1", behindProxy), 1))[0]).toMatchObject({ client_ip: "198.51.100.9" });
    // Without trusted proxies the header is the client's own words: the socket peer is stored.
    expect((await eventually(logsFor("agent-xff-untrusted"), 1))[0]!.client_ip).toMatch(/^127\.0\.0\.\d+$/);
  });

  it("skips health checks by default", async () => {
    const health = createClient(Health, createGrpcTransport({ baseUrl: server.url(), interceptors: [userAgent("agent-health")] }));
    await health.check({});
    await (await analytics(server, "service", "agent-after-health")).logDeviceStateChange({ deviceId: "d-3", newState: "z" });
    await eventually(logsFor("agent-after-health"), 1);
    expect(await logsFor("agent-health")()).toEqual([]);
  });

  it("logs a stream once, when it ends, with message counts in each direction", async () => {
    const s = await start({ requestLogSkip: [] });
    const reflection = createClient(ServerReflection, createGrpcTransport({ baseUrl: s.url(), interceptors: [userAgent("agent-stream")] }));
    async function* requests() {
      yield create(ServerReflectionRequestSchema, { messageRequest: { case: "listServices", value: "" } });
      yield create(ServerReflectionRequestSchema, { messageRequest: { case: "fileContainingSymbol", value: "analytics.v1.AnalyticsService" } });
      yield create(ServerReflectionRequestSchema, { messageRequest: { case: "fileByFilename", value: "no/such.proto" } });
    }
    let responses = 0;
    for await (const _ of reflection.serverReflectionInfo(requests())) responses++;
    expect(responses).toBe(3);
    const logged = await eventually(logsFor("agent-stream", s), 1);
    expect(logged).toHaveLength(1);
    expect(logged[0]).toMatchObject({
      endpoint: "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
      status_code: 0,
      request_messages: 3,
      response_messages: 3,
    });
    expect(logged[0]!.response_bytes as number).toBeGreaterThan(1000);
  });

  it("records nothing when ANALYTICS_ENABLED is false", async () => {
    const s = await start({ analyticsEnabled: false });
    await (await analytics(s, "service", "agent-disabled")).logDeviceStateChange({ deviceId: "d-4", newState: "on" });
    await (await analytics(server, "service", "agent-enabled-control")).logDeviceStateChange({ deviceId: "d-4", newState: "on" });
    await eventually(logsFor("agent-enabled-control"), 1);
    await s.writer.flush();
    expect(await logsFor("agent-disabled", s)()).toEqual([]);
    expect(await rows(`select count(*)::int as n from device_state_history where device_id = 'd-4'`, [], s)).not.toEqual([{ n: 0 }]);
  });
});

describe("LogEvents", () => {
  it("stores the valid items of a mixed batch and rejects the invalid ones with their reasons", async () => {
    const client = await analytics(server, "service", "agent-events");
    const eventId = crypto.randomUUID();
    const res = await client.logEvents({
      events: [
        { kind: { case: "userActivity", value: { activityType: ActivityType.PAGE_VIEW, pageUrl: "/fleet", userId: "u-1" } } },
        { kind: { case: "error", value: { errorMessage: "" } } },
        { kind: { case: "error", value: { category: ErrorCategory.FRONTEND, errorMessage: "TypeError: x is undefined" } } },
        { kind: { case: "deviceStateChange", value: { deviceId: "d-ev", newState: "rebooting", eventId } } },
        { kind: { case: "jobOutcome", value: { jobId: "j-1", jobType: "restart", status: JobStatus.FAILED, errorCode: "E1" } } },
        { kind: { case: undefined } },
        { kind: { case: "jobOutcome", value: { jobId: "j-2", jobType: "restart", status: JobStatus.SUCCESS, occurredAt: timestampFromMs(Date.UTC(1990, 0, 1)) } } },
      ],
    });
    expect(res.results.map((r) => r.outcome)).toEqual([
      WriteOutcome.STORED,
      WriteOutcome.REJECTED,
      WriteOutcome.STORED,
      WriteOutcome.STORED,
      WriteOutcome.STORED,
      WriteOutcome.REJECTED,
      WriteOutcome.REJECTED,
    ]);
    expect(res.storedCount).toBe(4);
    expect(res.rejectedCount).toBe(3);
    expect(res.results[1]!.violations).toEqual([expect.objectContaining({ field: "events[1].error.error_message", description: "is required" })]);
    expect(res.results[5]!.violations[0]!.field).toBe("events[5].kind");
    expect(res.results[6]!.violations[0]!.field).toBe("events[6].job_outcome.occurred_at");
    expect(await rows(`select page_url from user_activities where id = ?`, [res.results[0]!.id])).toEqual([{ page_url: "/fleet" }]);
    expect(await rows(`select category from error_logs where id = ?`, [res.results[2]!.id])).toEqual([{ category: "frontend" }]);
    expect(await rows(`select new_state from device_state_history where id = ?`, [res.results[3]!.id])).toEqual([{ new_state: "rebooting" }]);
    expect(await rows(`select status from job_outcomes where id = ?`, [res.results[4]!.id])).toEqual([{ status: "failed" }]);

    // The same batch again: items with an event_id are replays, answered with the first id.
    const again = await client.logEvents({ events: [{ kind: { case: "deviceStateChange", value: { deviceId: "d-ev", newState: "rebooting", eventId } } }] });
    expect(again.results[0]).toMatchObject({ outcome: WriteOutcome.REPLAYED, id: res.results[3]!.id });
  });

  it("refuses empty and oversized batches with InvalidArgument naming events", async () => {
    const client = await analytics(server, "service", "agent-events-size");
    expect((await rpcError(client.logEvents({ events: [] }))).rawMessage).toBe("invalid request: events: must hold at least one event");
    const big = Array.from({ length: 501 }, () => ({ kind: { case: "deviceStateChange" as const, value: { deviceId: "d", newState: "s" } } }));
    const err = await rpcError(client.logEvents({ events: big }));
    expect(err.code).toBe(Code.InvalidArgument);
    expect(err.rawMessage).toBe("invalid request: events: must hold at most 500 events (got 501)");
  });
});

describe("errors: de-duplication, resolve, regress", () => {
  it("counts a repeat, resolves, and marks the error regressed when it comes back", async () => {
    const service = await analytics(server, "service", "agent-dedup");
    const admin = await analytics(server, "admin", "agent-dedup-admin");
    const report = { category: ErrorCategory.DEVICE, errorCode: "E_FAN", errorMessage: "fan stalled", deviceId: "d-fan" };
    const first = await service.logError(report);
    expect(first).toMatchObject({ outcome: WriteOutcome.STORED, occurrenceCount: 1, regressed: false });
    const second = await service.logError(report);
    expect(second).toMatchObject({ id: first.id, outcome: WriteOutcome.DEDUPLICATED, occurrenceCount: 2 });

    const resolved = await admin.resolveError({ errorId: first.id, resolved: true });
    expect(resolved.resolved).toBe(true);
    expect(resolved.resolvedAt).toBeDefined();
    // Resolving it again keeps the time it was first resolved.
    const again = await admin.resolveError({ errorId: first.id, resolved: true });
    expect(again.resolvedAt).toEqual(resolved.resolvedAt);

    const third = await service.logError(report);
    expect(third).toMatchObject({ id: first.id, outcome: WriteOutcome.DEDUPLICATED, occurrenceCount: 3, regressed: true });
    expect(await rows(`select resolved, regressed, occurrence_count from error_logs where id = ?`, [first.id])).toEqual([
      { resolved: false, regressed: true, occurrence_count: 3 },
    ]);

    const reopened = await admin.resolveError({ errorId: first.id, resolved: false });
    expect(reopened.resolved).toBe(false);
    expect(reopened.resolvedAt).toBeUndefined();
  });

  it("answers NotFound for an unknown error and InvalidArgument for a malformed id", async () => {
    const admin = await analytics(server, "admin", "agent-resolve");
    expect((await rpcError(admin.resolveError({ errorId: crypto.randomUUID(), resolved: true }))).code).toBe(Code.NotFound);
    const bad = await rpcError(admin.resolveError({ errorId: "42", resolved: true }));
    expect(bad.code).toBe(Code.InvalidArgument);
    expect(bad.rawMessage).toBe("invalid request: error_id: must be a UUID");
  });
});

describe("limits and shutdown", () => {
  it("answers ResourceExhausted when the write buffer is full, storing nothing of the refused batch", async () => {
    const s = await start({ writerMaxBufferedRows: 3, analyticsEnabled: false });
    const client = await analytics(s, "service", "agent-full");
    const events = Array.from({ length: 4 }, (_, i) => ({ kind: { case: "deviceStateChange" as const, value: { deviceId: "d-full", newState: `s${i}` } } }));
    const err = await rpcError(client.logEvents({ events }));
    expect(err.code).toBe(Code.ResourceExhausted);
    expect(err.metadata.get("retry-after-ms")).toMatch(/^\d+$/);
    expect(err.findDetails(RetryInfoSchema).map((d) => d.retryDelay && durationMs(d.retryDelay))).toEqual([Number(err.metadata.get("retry-after-ms"))]);
    expect(await rows(`select count(*)::int as n from device_state_history where device_id = 'd-full'`, [], s)).toEqual([{ n: 0 }]);
    const ok = await client.logEvents({ events: events.slice(0, 3) });
    expect(ok.storedCount).toBe(3);
  });

  it("drains buffered request logs and finishes in-flight calls at shutdown", async () => {
    const s = await start();
    const client = await analytics(s, "service", "agent-drain");
    await Promise.all(Array.from({ length: 5 }, (_, i) => client.logDeviceStateChange({ deviceId: "d-drain", newState: `s${i}` })));
    // Nothing else pending, so the next row the writer sees is the in-flight call's: close only
    // once the server has it (a call still on the wire at close is refused, REFUSED_STREAM, as
    // HTTP/2 requires; a fixed sleep raced with that on a loaded machine).
    await s.writer.flush();
    const storedBefore = s.writer.stats().storedRows;
    const inFlight = client.logDeviceStateChange({ deviceId: "d-drain", newState: "last" });
    while (s.writer.stats().bufferedRows === 0 && s.writer.stats().storedRows === storedBefore) await new Promise((r) => setTimeout(r, 1));
    await s.close();
    await expect(inFlight).resolves.toMatchObject({ outcome: WriteOutcome.STORED });
    // Read back through a fresh server on the same database: what was drained is on disk.
    const after = await start({ dataDir: s.config.dataDir, analyticsEnabled: false });
    expect(await logsFor("agent-drain", after)()).toHaveLength(6);
    expect(await rows(`select count(*)::int as n from device_state_history where device_id = 'd-drain'`, [], after)).toEqual([{ n: 6 }]);
  });
});
