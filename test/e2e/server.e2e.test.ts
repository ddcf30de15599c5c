/**
 * The real server on port 0, against a real database, called by real clients on ONE port:
 * gRPC (connect-node), Connect JSON over HTTP/1.1 with plain fetch, gRPC-Web, Connect over HTTP/2,
 * @grpc/grpc-js with the repo's .proto files, and buf curl through reflection.
 */
import { fromBinary } from "@bufbuild/protobuf";
import { base64Decode } from "@bufbuild/protobuf/wire";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import { beforeAll, describe, expect, it } from "vitest";
import { AnalyticsService } from "../../sdk/src/gen/analytics/v1/analytics_service_pb.js";
import {
  ActivityType,
  ErrorCategory,
  JobStatus,
  Severity,
  WriteOutcome,
} from "../../sdk/src/gen/analytics/v1/common_pb.js";
import { MetricsService } from "../../sdk/src/gen/analytics/v1/metrics_service_pb.js";
import { Health, HealthCheckResponse_ServingStatus } from "../../sdk/src/gen/grpc/health/v1/health_pb.js";
import { BadRequestSchema } from "../../sdk/src/gen/google/rpc/error_details_pb.js";
import { bearer, mintTestToken } from "../support/auth.js";
import { rpcError } from "../support/rpc-error.js";
import { loadAnalyticsServiceClient } from "../support/grpc-js-service.js";
import { bufCurl } from "../support/buf-curl.js";
import { badRequestJson, grpcJsErrorDetails } from "../support/error-details.js";
import { useTestServer } from "../support/test-server.js";

const t = useTestServer();
let baseUrl: string;
/** Every protected RPC needs a token: these tests call as a backend service (admin for queries). */
let token: string;
let adminToken: string;
let auth: { authorization: string };

beforeAll(async () => {
  baseUrl = t.server.url();
  token = await mintTestToken(t.server.config, "service", "e2e-service");
  adminToken = await mintTestToken(t.server.config, "admin", "e2e-admin");
  auth = { authorization: `Bearer ${token}` };
});

describe("one port, every protocol", () => {
  it("stores a LogError sent over gRPC (HTTP/2) and reads it back", async () => {
    const client = createClient(AnalyticsService, createGrpcTransport({ baseUrl, interceptors: [bearer(token)] }));
    const res = await client.logError({
      category: ErrorCategory.DATABASE,
      severity: Severity.CRITICAL,
      errorCode: "E_DB_DOWN",
      errorMessage: "connection refused",
      deviceId: "device-1",
      context: { attempt: 3, host: "db-1" },
      occurredAt: timestampFromMs(Date.UTC(2026, 0, 2, 3, 4, 5)),
    });
    expect(res.outcome).toBe(WriteOutcome.STORED);
    const [row] = await t.rows(`select * from error_logs where id = ?`, [res.id]);
    expect(row).toMatchObject({
      category: "database",
      severity: "critical",
      error_code: "E_DB_DOWN",
      error_message: "connection refused",
      device_id: "device-1",
      context: { attempt: 3, host: "db-1" },
      occurrence_count: 1,
      resolved: false,
    });
    expect(new Date(row!.occurred_at as string).toISOString()).toBe("2026-01-02T03:04:05.000Z");
  });

  it("stores a LogUserActivity sent as Connect JSON over HTTP/1.1 with plain fetch", async () => {
    const response = await fetch(`${baseUrl}/analytics.v1.AnalyticsService/LogUserActivity`, {
      method: "POST",
      headers: { "content-type": "application/json", ...auth },
      body: JSON.stringify({
        activityType: "ACTIVITY_TYPE_SEARCH",
        pageUrl: "/devices",
        searchQuery: "offline",
        sessionId: "s-1",
        durationMs: 1500,
        userId: "user-7",
        extraData: { filters: ["online", "offline"] },
      }),
    });
    expect(response.status).toBe(200);
    const body = (await response.json()) as { id: string; outcome: string };
    expect(body.outcome).toBe("WRITE_OUTCOME_STORED");
    const [row] = await t.rows(`select * from user_activities where id = ?`, [body.id]);
    expect(row).toMatchObject({
      activity_type: "search",
      page_url: "/devices",
      search_query: "offline",
      session_id: "s-1",
      duration_ms: 1500,
      user_id: "user-7",
      extra_data: { filters: ["online", "offline"] },
    });
  });

  it("stores a LogDeviceStateChange sent over gRPC-Web (HTTP/1.1)", async () => {
    const client = createClient(AnalyticsService, createGrpcWebTransport({ baseUrl, httpVersion: "1.1", interceptors: [bearer(token)] }));
    const res = await client.logDeviceStateChange({ deviceId: "device-9", previousState: "online", newState: "offline", reason: "Network timeout" });
    const [row] = await t.rows(`select * from device_state_history where id = ?`, [res.id]);
    expect(row).toMatchObject({ device_id: "device-9", previous_state: "online", new_state: "offline", changed_by: "e2e-service", reason: "Network timeout" });
  });

  it("stores a LogJobOutcome sent over the Connect protocol on HTTP/2", async () => {
    const client = createClient(AnalyticsService, createConnectTransport({ baseUrl, httpVersion: "2", interceptors: [bearer(token)] }));
    const res = await client.logJobOutcome({ jobId: "job-456", jobType: "device_restart", status: JobStatus.SUCCESS, deviceId: "device-123", durationMs: 5000, initiatedBy: "user@example.com" });
    const [row] = await t.rows(`select * from job_outcomes where id = ?`, [res.id]);
    expect(row).toMatchObject({ job_id: "job-456", job_type: "device_restart", status: "success", duration_ms: 5000, retry_count: 0, initiated_by: "user@example.com" });
  });

  it("serves @grpc/grpc-js clients built from the repo's .proto files", async () => {
    const AnalyticsServiceClient = await loadAnalyticsServiceClient();
    const client = new AnalyticsServiceClient(new URL(baseUrl).host, grpc.credentials.createInsecure());
    const metadata = new grpc.Metadata();
    metadata.set("authorization", `Bearer ${token}`);
    try {
      const call = (method: string, req: object) =>
        new Promise<Record<string, unknown>>((resolve, reject) =>
          (client as unknown as Record<string, Function>)[method]!(req, metadata, (err: grpc.ServiceError | null, res: Record<string, unknown>) => (err ? reject(err) : resolve(res))),
        );
      const res = await call("LogJobOutcome", { job_id: "job-grpcjs", job_type: "firmware_update", status: "JOB_STATUS_TIMEOUT", retry_count: 2 });
      expect(res.outcome).toBe("WRITE_OUTCOME_STORED");
      const [row] = await t.rows(`select * from job_outcomes where id = ?`, [res.id]);
      expect(row).toMatchObject({ job_id: "job-grpcjs", status: "timeout", retry_count: 2 });

      const err = (await call("LogError", { error_message: "" }).catch((e: unknown) => e)) as grpc.ServiceError;
      expect(err.code).toBe(grpc.status.INVALID_ARGUMENT);
      expect(err.details).toContain("error_message");
      // The field, for a program: google.rpc.BadRequest in grpc-status-details-bin.
      expect(grpcJsErrorDetails(err).findDetails(BadRequestSchema).flatMap((d) => d.fieldViolations)).toMatchObject([
        { field: "error_message", description: "is required" },
      ]);
    } finally {
      client.close();
    }
  });
});

describe("bad input", () => {
  it("answers InvalidArgument naming every bad field, over gRPC", async () => {
    const client = createClient(AnalyticsService, createGrpcTransport({ baseUrl, interceptors: [bearer(token)] }));
    const err = await rpcError(client.logJobOutcome({ jobId: "", jobType: "x", status: 0, eventId: "not-a-uuid" }));
    expect(err.code).toBe(Code.InvalidArgument);
    expect(err.rawMessage).toBe("invalid request: job_id: is required; status: is required; event_id: must be a UUID");
  });

  it("carries a google.rpc.BadRequest detail per bad field, read by connect-node's clients (findDetails) and buf curl", async () => {
    const violations = [
      { field: "error_message", description: "is required" },
      { field: "event_id", description: "must be a UUID" },
    ];
    const fieldsOf = (err: ConnectError) => err.findDetails(BadRequestSchema).flatMap((d) => d.fieldViolations.map((v) => ({ field: v.field, description: v.description })));
    // gRPC in binary takes the unary wire path, Connect JSON the generated one.
    const transports = [
      createGrpcTransport({ baseUrl, interceptors: [bearer(token)] }),
      createConnectTransport({ baseUrl, httpVersion: "1.1", interceptors: [bearer(token)] }),
    ];
    for (const transport of transports) {
      const err = await rpcError(createClient(AnalyticsService, transport).logError({ errorMessage: "", eventId: "not-a-uuid", context: { attempt: 1 } }));
      expect(err.code).toBe(Code.InvalidArgument);
      expect(err.rawMessage).toBe("invalid request: error_message: is required; event_id: must be a UUID");
      expect(fieldsOf(err)).toEqual(violations);
    }

    const failed = (await bufCurl(
      "-H",
      `authorization: Bearer ${token}`,
      "-d",
      '{"errorMessage":"","eventId":"not-a-uuid"}',
      `${baseUrl}/analytics.v1.AnalyticsService/LogError`,
    ).catch((e: unknown) => e)) as { stderr: string };
    // buf curl prints the error as Connect JSON: the detail's type and bytes (and, when buf
    // knows the type, a readable `debug` copy).
    const printed = JSON.parse(failed.stderr) as { code: string; message: string; details: { type: string; value: string }[] };
    expect(printed).toMatchObject({ code: "invalid_argument", message: "invalid request: error_message: is required; event_id: must be a UUID" });
    expect(printed.details.map((d) => d.type)).toEqual(["google.rpc.BadRequest"]);
    expect(fromBinary(BadRequestSchema, base64Decode(printed.details[0]!.value)).fieldViolations).toMatchObject(violations);
  });

  it("answers InvalidArgument over Connect JSON, with HTTP 400", async () => {
    const response = await fetch(`${baseUrl}/analytics.v1.AnalyticsService/LogDeviceStateChange`, {
      method: "POST",
      headers: { "content-type": "application/json", ...auth },
      body: JSON.stringify({ deviceId: "d-1" }),
    });
    expect(response.status).toBe(400);
    expect(await response.json()).toEqual({
      code: "invalid_argument",
      message: "invalid request: new_state: is required",
      details: [badRequestJson({ field: "new_state", description: "is required" })],
    });
  });

  it("answers InvalidArgument for malformed JSON without crashing", async () => {
    const response = await fetch(`${baseUrl}/analytics.v1.AnalyticsService/LogError`, {
      method: "POST",
      headers: { "content-type": "application/json", ...auth },
      body: "{not json",
    });
    expect(response.status).toBe(400);
    const body = (await response.json()) as { code: string };
    expect(body.code).toBe("invalid_argument");
  });

  it("rejects an unknown activity type and a far-future time", async () => {
    const client = createClient(AnalyticsService, createGrpcTransport({ baseUrl, interceptors: [bearer(token)] }));
    const err = await rpcError(client.logUserActivity({ activityType: 99 as ActivityType, occurredAt: timestampFromMs(Date.now() + 3 * 86400_000) }));
    expect(err.code).toBe(Code.InvalidArgument);
    expect(err.rawMessage).toContain("activity_type: has unknown value 99");
    expect(err.rawMessage).toContain("occurred_at: must not be more than 24 hours in the future");
  });
});

describe("idempotent event_id", () => {
  it("stores one row for concurrent duplicates and answers all with the same id", async () => {
    const client = createClient(AnalyticsService, createGrpcTransport({ baseUrl, interceptors: [bearer(token)] }));
    const eventId = crypto.randomUUID();
    const results = await Promise.all(
      Array.from({ length: 8 }, () => client.logDeviceStateChange({ deviceId: "device-idem", newState: "online", eventId })),
    );
    expect(new Set(results.map((r) => r.id)).size).toBe(1);
    expect(results.filter((r) => r.outcome === WriteOutcome.STORED)).toHaveLength(1);
    expect(results.filter((r) => r.outcome === WriteOutcome.REPLAYED)).toHaveLength(7);
    const stored = await t.rows(`select id from device_state_history where event_id = ?`, [eventId]);
    expect(stored).toHaveLength(1);
  });
});

describe("health, reflection and not-yet-implemented RPCs", () => {
  it("answers SERVING", async () => {
    const client = createClient(Health, createGrpcTransport({ baseUrl }));
    expect((await client.check({})).status).toBe(HealthCheckResponse_ServingStatus.SERVING);
    expect((await client.check({ service: "analytics.v1.AnalyticsService" })).status).toBe(HealthCheckResponse_ServingStatus.SERVING);
  });

  it.each(["grpc-v1", "grpc-v1alpha"])("buf curl lists services through reflection (%s) without a schema", async (protocol) => {
    const { stdout } = await bufCurl("--reflect-protocol", protocol, "--list-services", baseUrl);
    expect(stdout.trim().split("\n").sort()).toEqual([
      "analytics.v1.AnalyticsService",
      "analytics.v1.MetricsService",
      "grpc.health.v1.Health",
      "grpc.reflection.v1.ServerReflection",
      "grpc.reflection.v1alpha.ServerReflection",
    ]);
  });

  it("buf curl calls LogError and Health/Check through reflection", async () => {
    const logged = await bufCurl("-H", `authorization: Bearer ${token}`, "-d", '{"category":"ERROR_CATEGORY_API","errorMessage":"from buf curl"}', `${baseUrl}/analytics.v1.AnalyticsService/LogError`);
    const body = JSON.parse(logged.stdout) as { id: string; outcome: string };
    expect(body.outcome).toBe("WRITE_OUTCOME_STORED");
    expect(await t.rows(`select error_message from error_logs where id = ?`, [body.id])).toEqual([{ error_message: "from buf curl" }]);
    const health = await bufCurl(`${baseUrl}/grpc.health.v1.Health/Check`);
    expect(JSON.parse(health.stdout)).toEqual({ status: "SERVING" });
  });

  it("answers an admin's MetricsService call (Unimplemented until its issue lands)", async () => {
    const client = createClient(MetricsService, createGrpcTransport({ baseUrl, interceptors: [bearer(adminToken)] }));
    const err = await client.getApiPerformance({}).then(
      () => undefined,
      (e: unknown) => ConnectError.from(e),
    );
    if (err) expect(err.code).toBe(Code.Unimplemented);
  });
});
