/**
 * Per-method read caps on the real server with the default configuration: each method reads at
 * most what its largest valid request takes (`message-caps.ts`), not the global 4 MiB. One byte
 * over is ResourceExhausted naming the cap, in binary and JSON, over Connect and gRPC; exactly
 * the cap is read and handled.
 */
import { create, toJsonString } from "@bufbuild/protobuf";
import { Code, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { describe, expect, it } from "vitest";
import { AnalyticsService, LogErrorRequestSchema } from "../../sdk/src/gen/analytics/v1/analytics_service_pb.js";
import { MetricsService } from "../../sdk/src/gen/analytics/v1/metrics_service_pb.js";
import { Health, HealthCheckRequestSchema } from "../../sdk/src/gen/grpc/health/v1/health_pb.js";
import { GetDeviceMetricsRequestSchema } from "../../sdk/src/gen/analytics/v1/metrics_service_pb.js";
import { messageCaps } from "../../src/server/message-caps.js";
import { bearer, mintTestToken } from "../support/auth.js";
import { rpcError } from "../support/rpc-error.js";
import { sizedMessage } from "../support/sized-message.js";
import { useTestServer } from "../support/test-server.js";

const t = useTestServer();
const capOf = (path: string) => messageCaps({ maxMessageBytes: t.server.config.maxMessageBytes, metricsMessageBytes: t.server.config.metricsMaxMessageBytes }).get(path)!;

const LOG_ERROR = `/${AnalyticsService.typeName}/LogError`;

describe("LogError", () => {
  const request = create(LogErrorRequestSchema, { errorMessage: "cap test", errorCode: "E_CAP" });

  it("has a cap of its own, well under the global one", () => {
    expect(capOf(LOG_ERROR)).toBeLessThan(t.server.config.maxMessageBytes / 4);
  });

  it("over gRPC: one byte over is ResourceExhausted naming the cap; the cap itself is stored", async () => {
    const cap = capOf(LOG_ERROR);
    const client = createClient(AnalyticsService, createGrpcTransport({ baseUrl: t.server.url(), interceptors: [bearer(await mintTestToken(t.server.config))] }));
    const over = await rpcError(client.logError(sizedMessage(LogErrorRequestSchema, request, cap + 1)));
    expect(over.code).toBe(Code.ResourceExhausted);
    expect(over.rawMessage).toBe(`message size ${cap + 1} is larger than configured readMaxBytes ${cap}`);
    const at = await client.logError(sizedMessage(LogErrorRequestSchema, request, cap));
    expect(at.id).not.toBe("");
  });

  it("over Connect JSON: the same cap on the JSON text", async () => {
    const cap = capOf(LOG_ERROR);
    const headers = { "content-type": "application/json", authorization: `Bearer ${await mintTestToken(t.server.config)}` };
    const json = toJsonString(LogErrorRequestSchema, request);
    const padded = (bytes: number) => json.slice(0, -1) + " ".repeat(bytes - json.length) + "}";
    const over = await fetch(`${t.server.url()}${LOG_ERROR}`, { method: "POST", headers, body: padded(cap + 1) });
    expect(over.status).toBe(429);
    expect(await over.json()).toEqual({ code: "resource_exhausted", message: `message size ${cap + 1} is larger than configured readMaxBytes ${cap}` });
    const at = await fetch(`${t.server.url()}${LOG_ERROR}`, { method: "POST", headers, body: padded(cap) });
    expect(at.status).toBe(200);
  });
});

describe("small requests", () => {
  it("health checks (open): 4 KiB", async () => {
    const client = createClient(Health, createGrpcTransport({ baseUrl: t.server.url() }));
    const cap = capOf("/grpc.health.v1.Health/Check");
    expect(cap).toBe(4096);
    const over = await rpcError(client.check(sizedMessage(HealthCheckRequestSchema, create(HealthCheckRequestSchema, { service: "nope" }), cap + 1)));
    expect(over.code).toBe(Code.ResourceExhausted);
    const at = await rpcError(client.check(sizedMessage(HealthCheckRequestSchema, create(HealthCheckRequestSchema, { service: "nope" }), cap)));
    expect(at.code).toBe(Code.NotFound);
  });

  it("metrics queries: 16 KiB", async () => {
    const client = createClient(MetricsService, createGrpcTransport({ baseUrl: t.server.url(), interceptors: [bearer(await mintTestToken(t.server.config, "admin"))] }));
    const cap = capOf("/analytics.v1.MetricsService/GetDeviceMetrics");
    expect(cap).toBe(16 * 1024);
    const request = create(GetDeviceMetricsRequestSchema, { deviceId: "cap-device" });
    const over = await rpcError(client.getDeviceMetrics(sizedMessage(GetDeviceMetricsRequestSchema, request, cap + 1)));
    expect(over.code).toBe(Code.ResourceExhausted);
    const at = await client.getDeviceMetrics(sizedMessage(GetDeviceMetricsRequestSchema, request, cap));
    expect(at.samples).toEqual([]);
  });
});
