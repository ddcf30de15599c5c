/**
 * The security interceptors in-process (createRouterTransport), with handlers made to misbehave:
 * principal in the context, per-message stream checks, masking of unexpected errors, the
 * deadline cap and per-principal rate limits with a fake clock.
 */
import { create } from "@bufbuild/protobuf";
import { durationMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient, createRouterTransport, type ConnectRouter, type Interceptor } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import {
  AnalyticsService,
  LogErrorResponseSchema,
  LogUserActivityResponseSchema,
  StreamDeviceMetricsResponseSchema,
  type StreamDeviceMetricsRequest,
} from "../../sdk/src/gen/analytics/v1/analytics_service_pb.js";
import { RetryInfoSchema } from "../../sdk/src/gen/google/rpc/error_details_pb.js";
import { createAuthInterceptor } from "../../src/auth/auth-interceptor.js";
import { mintToken } from "../../src/auth/mint-token.js";
import { kPrincipal, type Role } from "../../src/auth/principal.js";
import { RETRY_AFTER_HEADER, createRateLimitInterceptor } from "../../src/auth/rate-limit-interceptor.js";
import { createTokenBuckets } from "../../src/auth/token-bucket.js";
import { createTokenVerifier } from "../../src/auth/token-verifier.js";
import { createDeadlineInterceptor } from "../../src/server/deadline-interceptor.js";
import { createErrorMaskInterceptor } from "../../src/server/error-mask-interceptor.js";
import type { Logger } from "../../src/util/logger.js";
import { bearer } from "../support/auth.js";
import { rpcError } from "../support/rpc-error.js";

const secret = new TextEncoder().encode("in-process-secret-in-process-secret");
const token = (role: Role, sub: string) => mintToken(secret, { role, sub, ttlSeconds: 600 });

function capturingLog(): Logger & { lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const at = (level: string) => (msg: string, fields?: Record<string, unknown>) => void lines.push({ level, msg, ...fields });
  return { lines, debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error") };
}

let handlerAborted: unknown;

function routes(router: ConnectRouter): void {
  router.service(AnalyticsService, {
    logUserActivity(_req, ctx) {
      const p = ctx.values.get(kPrincipal);
      return create(LogUserActivityResponseSchema, { id: `${p?.role}:${p?.subject}` });
    },
    logError(req) {
      if (req.errorMessage === "sql") throw new Error('insert into "error_logs" ("id") values ($1) - relation "error_logs" does not exist');
      if (req.errorMessage === "unknown") throw ConnectError.from(new Error("duplicate key value violates unique constraint \"secret_idx\""));
      if (req.errorMessage === "deliberate") throw new ConnectError("error_message: is too long", Code.InvalidArgument);
      return create(LogErrorResponseSchema, { id: "ok" });
    },
    async logJobOutcome(_req, ctx) {
      await new Promise<void>((resolve) => {
        ctx.signal.addEventListener("abort", () => {
          handlerAborted = ctx.signal.reason;
          resolve();
        });
      });
      return {};
    },
    async *streamDeviceMetrics(requests: AsyncIterable<StreamDeviceMetricsRequest>) {
      for await (const r of requests) {
        if (r.deviceId === "boom") throw new TypeError("Cannot read properties of undefined (reading 'rows')");
        yield create(StreamDeviceMetricsResponseSchema, { sequence: r.sequence });
      }
    },
  });
}

function transport(interceptors: Interceptor[]) {
  return createRouterTransport(routes, { router: { interceptors } });
}

describe("auth interceptor (in-process)", () => {
  const auth = createAuthInterceptor({ verify: createTokenVerifier({ secret }), corsOrigins: [] });

  it("puts the verified principal in the context before the handler runs", async () => {
    const client = createClient(AnalyticsService, transport([auth]));
    const res = await client.logUserActivity({}, { headers: { authorization: `Bearer ${await token("user", "u-42")}` } });
    expect(res.id).toBe("user:u-42");
  });

  it("checks every message of a client stream, ending the stream at the first foreign device id", async () => {
    const client = createClient(AnalyticsService, transport([auth]));
    const t = await token("device", "d-1");
    async function* send() {
      yield { sequence: 1n, deviceId: "d-1" };
      yield { sequence: 2n, deviceId: "d-2" };
      yield { sequence: 3n, deviceId: "d-1" };
    }
    const acks: number[] = [];
    const err = await rpcError(
      (async () => {
        for await (const res of client.streamDeviceMetrics(send(), { headers: { authorization: `Bearer ${t}` } })) acks.push(Number(res.sequence));
      })(),
    );
    expect(acks).toEqual([1]);
    expect(err.code).toBe(Code.PermissionDenied);
    expect(err.rawMessage).toBe('permission denied: device_id: a device may only write data for its own device_id "d-1"');
  });
});

describe("error masking", () => {
  it.each([
    ["a raw driver error", "sql"],
    ["ConnectError.from(raw error) (code Unknown)", "unknown"],
  ])("turns %s into Internal with a correlation id, logged with the original", async (_name, errorMessage) => {
    const log = capturingLog();
    const client = createClient(AnalyticsService, transport([createErrorMaskInterceptor({ log })]));
    const err = await rpcError(client.logError({ errorMessage }));
    expect(err.code).toBe(Code.Internal);
    expect(err.rawMessage).toMatch(/^internal error \(correlation id [0-9a-f-]{36}\)$/);
    const id = /correlation id ([0-9a-f-]+)/.exec(err.rawMessage)![1];
    const line = log.lines.find((l) => l.correlationId === id);
    expect(line).toMatchObject({ level: "error", procedure: "analytics.v1.AnalyticsService/LogError" });
    expect(String(line?.error)).toMatch(/error_logs|secret_idx/);
    expect(String(line?.stack)).toContain("auth-interceptors.test.ts");
  });

  it("lets deliberate errors through unchanged", async () => {
    const client = createClient(AnalyticsService, transport([createErrorMaskInterceptor({ log: capturingLog() })]));
    const err = await rpcError(client.logError({ errorMessage: "deliberate" }));
    expect(err.code).toBe(Code.InvalidArgument);
    expect(err.rawMessage).toBe("error_message: is too long");
  });

  it("masks a failure in the middle of a response stream", async () => {
    const log = capturingLog();
    const client = createClient(AnalyticsService, transport([createErrorMaskInterceptor({ log })]));
    async function* send() {
      yield { sequence: 1n, deviceId: "ok" };
      yield { sequence: 2n, deviceId: "boom" };
    }
    const err = await rpcError(
      (async () => {
        for await (const _ of client.streamDeviceMetrics(send())) void _;
      })(),
    );
    expect(err.code).toBe(Code.Internal);
    expect(err.rawMessage).not.toContain("rows");
    expect(log.lines).toHaveLength(1);
  });
});

describe("deadline cap", () => {
  it("fails a unary call that runs past the cap and aborts the handler's signal", async () => {
    handlerAborted = undefined;
    const client = createClient(AnalyticsService, transport([createDeadlineInterceptor({ maxMs: 100 })]));
    const started = Date.now();
    const err = await rpcError(client.logJobOutcome({}));
    expect(err.code).toBe(Code.DeadlineExceeded);
    expect(err.rawMessage).toBe("the call took longer than the server's limit of 100 ms");
    expect(Date.now() - started).toBeLessThan(2000);
    await new Promise((r) => setTimeout(r, 10));
    expect(handlerAborted).toBeDefined();
  });

  it("leaves fast calls alone", async () => {
    const client = createClient(AnalyticsService, transport([createDeadlineInterceptor({ maxMs: 1000 })]));
    expect((await client.logError({ errorMessage: "fine" })).id).toBe("ok");
  });
});

describe("rate limiting per principal", () => {
  it("limits one principal with a retry hint and leaves the others alone", async () => {
    let now = 0;
    const limiter = createRateLimitInterceptor({
      limits: { admin: undefined, service: { perSecond: 100, burst: 100 }, user: { perSecond: 1, burst: 2 }, device: undefined },
      buckets: createTokenBuckets({ now: () => now }),
    });
    const auth = createAuthInterceptor({ verify: createTokenVerifier({ secret }), corsOrigins: [] });
    const t = transport([auth, limiter]);
    const as = async (role: Role, sub: string) => ({ client: createClient(AnalyticsService, t), headers: { authorization: `Bearer ${await token(role, sub)}` } });
    const alice = await as("user", "alice");
    const bob = await as("user", "bob");
    const svc = await as("service", "billing");
    await alice.client.logUserActivity({}, { headers: alice.headers });
    await alice.client.logUserActivity({}, { headers: alice.headers });
    const err = await rpcError(alice.client.logUserActivity({}, { headers: alice.headers }));
    expect(err.code).toBe(Code.ResourceExhausted);
    expect(err.rawMessage).toBe('rate limit exceeded for user "alice" (1/s, burst 2): retry in 1000 ms');
    expect(err.metadata.get(RETRY_AFTER_HEADER)).toBe("1000");
    expect(err.findDetails(RetryInfoSchema).map((d) => d.retryDelay && durationMs(d.retryDelay))).toEqual([1000]);
    // Others are unaffected.
    expect((await bob.client.logUserActivity({}, { headers: bob.headers })).id).toBe("user:bob");
    for (let i = 0; i < 10; i++) await svc.client.logUserActivity({}, { headers: svc.headers });
    // Alice gets a token back after the hinted wait.
    now += 1000;
    expect((await alice.client.logUserActivity({}, { headers: alice.headers })).id).toBe("user:alice");
  });

  it("does not limit calls without a principal", async () => {
    const limiter = createRateLimitInterceptor({
      limits: { admin: { perSecond: 1, burst: 1 }, service: { perSecond: 1, burst: 1 }, user: { perSecond: 1, burst: 1 }, device: { perSecond: 1, burst: 1 } },
    });
    const client = createClient(AnalyticsService, transport([limiter]));
    for (let i = 0; i < 3; i++) expect((await client.logError({ errorMessage: "x" })).id).toBe("ok");
  });
});

// Keep the helper's client interceptor honest too.
describe("test helper bearer()", () => {
  it("sends the token", async () => {
    const auth = createAuthInterceptor({ verify: createTokenVerifier({ secret }), corsOrigins: [] });
    const client = createClient(AnalyticsService, createRouterTransport(routes, { router: { interceptors: [auth] }, transport: { interceptors: [bearer(await token("admin", "root"))] } }));
    expect((await client.logUserActivity({})).id).toBe("admin:root");
  });
});
