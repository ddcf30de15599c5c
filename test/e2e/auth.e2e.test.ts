/**
 * Authentication, authorisation and browser access on the real server (port 0, real database):
 * the whole role × RPC matrix, bad tokens, cookie auth and CORS over HTTP/1.1 Connect, per-device
 * rules, rate-limit isolation, oversize messages, no internals in client-visible errors, the
 * token CLI, and reflection switched off.
 */
import { execFile } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import type { DescMethod } from "@bufbuild/protobuf";
import { durationMs, timestampNow } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { base64url, SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AnalyticsService } from "../../sdk/src/gen/analytics/v1/analytics_service_pb.js";
import { ActivityType, JobStatus, WriteOutcome } from "../../sdk/src/gen/analytics/v1/common_pb.js";
import { MetricsService } from "../../sdk/src/gen/analytics/v1/metrics_service_pb.js";
import { Health, HealthCheckResponse_ServingStatus } from "../../sdk/src/gen/grpc/health/v1/health_pb.js";
import { RetryInfoSchema } from "../../sdk/src/gen/google/rpc/error_details_pb.js";
import type { Role } from "../../src/auth/principal.js";
import { buildServer, type AnalyticsServer } from "../../src/server/build-server.js";
import { createLogger } from "../../src/util/logger.js";
import { bearer, mintTestToken } from "../support/auth.js";
import { rpcError } from "../support/rpc-error.js";
import { createTestDatabase, type TestDatabase } from "../support/test-database.js";
import { bufCurl } from "../support/buf-curl.js";

const root = join(dirname(fileURLToPath(import.meta.url)), "../..");
const run = promisify(execFile);

const APP = "https://app.example.com";
const EVIL = "https://evil.example.net";
const AUDIENCE = "analytics-e2e";
const ISSUER = "https://auth.example.com";
const MAX_BYTES = 64 * 1024;

let db: TestDatabase;
let server: AnalyticsServer;
let baseUrl: string;
const serverLog: string[] = [];
/** Every error message a client received in this file, checked for leaks at the end. */
const clientMessages: string[] = [];

const token = (role: Role, sub: string) => mintTestToken(server.config, role, sub);
const grpcClient = <S extends typeof AnalyticsService | typeof MetricsService>(service: S, t?: string): Client<S> =>
  createClient(service, createGrpcTransport({ baseUrl, interceptors: t === undefined ? [] : [bearer(t)] }));

async function failure(call: Promise<unknown>): Promise<ConnectError> {
  const err = await rpcError(call);
  clientMessages.push(err.rawMessage);
  return err;
}

/** Connect JSON over HTTP/1.1 with plain fetch, as a browser would send it. */
async function connectPost(procedure: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> {
  const res = await fetch(`${baseUrl}/${procedure}`, {
    method: "POST",
    headers: { "content-type": "application/json", "connect-protocol-version": "1", ...headers },
    body: JSON.stringify(body),
  });
  return res;
}

async function jsonError(res: Response): Promise<{ code: string; message: string }> {
  const body = (await res.json()) as { code: string; message: string };
  clientMessages.push(JSON.stringify(body));
  return body;
}

async function rows<T = Record<string, unknown>>(sql: string, params: unknown[] = []): Promise<T[]> {
  return server.db.orm.em.fork().getConnection().execute<T[]>(sql, params, "all");
}

beforeAll(async () => {
  db = await createTestDatabase({
    corsOrigins: [APP],
    jwtAudience: AUDIENCE,
    jwtIssuer: ISSUER,
    maxMessageBytes: MAX_BYTES,
    rateLimits: { admin: { perSecond: 100, burst: 200 }, service: { perSecond: 100, burst: 200 }, user: { perSecond: 0.5, burst: 3 }, device: { perSecond: 100, burst: 200 } },
  });
});

afterAll(async () => {
  await db?.drop();
});

describe("on a server with auth", () => {
  beforeAll(async () => {
    server = await buildServer(db.config, { log: createLogger("info", (line) => serverLog.push(line)) });
    await server.listen();
    baseUrl = server.url();
  });
  afterAll(async () => {
    await server?.close();
  });

  describe("the role × RPC matrix, cell by cell", () => {
    const ALLOWED: Record<string, readonly Role[]> = {
      LogUserActivity: ["admin", "service", "user", "device"],
      LogError: ["admin", "service", "user", "device"],
      LogDeviceStateChange: ["admin", "service"],
      LogJobOutcome: ["admin", "service"],
      LogEvents: ["admin", "service", "user", "device"],
      StreamDeviceMetrics: ["admin", "service", "device"],
      IngestDeviceMetrics: ["admin", "service", "device"],
      ResolveError: ["admin"],
    };
    const samples = () => [{ occurredAt: timestampNow(), metrics: { cpu: 0.5 } }];
    /** A request that passes the per-message rules for `sub` (a device names itself). */
    const request = (method: string, sub: string): Record<string, unknown> =>
      ({
        LogUserActivity: { activityType: ActivityType.PAGE_VIEW, pageUrl: "/matrix" },
        LogError: { errorMessage: "matrix", deviceId: sub },
        LogDeviceStateChange: { deviceId: sub, newState: "online" },
        LogJobOutcome: { jobId: `job-${sub}`, jobType: "matrix", status: JobStatus.SUCCESS },
        LogEvents: { events: [{ kind: { case: "userActivity", value: { activityType: ActivityType.CLICK } } }] },
        IngestDeviceMetrics: { deviceId: sub, samples: samples() },
        ResolveError: { errorId: crypto.randomUUID(), resolved: true },
      })[method] ?? {};

    async function outcome(service: typeof AnalyticsService | typeof MetricsService, method: DescMethod, t: string | undefined, sub: string): Promise<Code | "ok"> {
      const client = grpcClient(service, t) as unknown as Record<string, (...args: unknown[]) => unknown>;
      try {
        if (method.methodKind === "bidi_streaming") {
          async function* requests() {
            yield { sequence: 1n, deviceId: sub, samples: samples() };
          }
          for await (const _ of client[method.localName]!(requests()) as AsyncIterable<unknown>) void _;
        } else {
          await client[method.localName]!(request(method.name, sub));
        }
        return "ok";
      } catch (err) {
        const e = ConnectError.from(err);
        clientMessages.push(e.rawMessage);
        return e.code;
      }
    }

    const cells = [
      ...AnalyticsService.methods.map((m) => [AnalyticsService, m, ALLOWED[m.name]!] as const),
      ...MetricsService.methods.map((m) => [MetricsService, m, ["admin"] as readonly Role[]] as const),
    ];
    it("covers every RPC of both services", () => {
      expect(cells.every(([, , allowed]) => Array.isArray(allowed))).toBe(true);
      expect(cells).toHaveLength(AnalyticsService.methods.length + MetricsService.methods.length);
    });

    for (const [service, method, allowed] of cells) {
      it(`${service.name}/${method.name}`, async () => {
        const got: Record<string, Code | "ok"> = {};
        const want: Record<string, string> = {};
        got.none = await outcome(service, method, undefined, "nobody");
        want.none = "Unauthenticated";
        for (const role of ["admin", "service", "user", "device"] as const) {
          // A subject per cell, so rate limits never mix cells up.
          const sub = `${role}-${method.name}`;
          got[role] = await outcome(service, method, await token(role, sub), sub);
          want[role] = allowed.includes(role) ? "passes auth" : "PermissionDenied";
        }
        const seen = Object.fromEntries(
          Object.entries(got).map(([who, c]) => [who, c === Code.Unauthenticated ? "Unauthenticated" : c === Code.PermissionDenied ? "PermissionDenied" : "passes auth"]),
        );
        expect(seen, JSON.stringify(got)).toEqual(want);
      });
    }

    it("keeps health and reflection open", async () => {
      const health = createClient(Health, createGrpcTransport({ baseUrl }));
      expect((await health.check({})).status).toBe(HealthCheckResponse_ServingStatus.SERVING);
      const { stdout } = await bufCurl("--list-services", baseUrl);
      expect(stdout).toContain("analytics.v1.AnalyticsService");
    });

    it("works for buf curl with a bearer header", async () => {
      const t = await token("service", "buf-curl");
      const { stdout } = await bufCurl("-H", `authorization: Bearer ${t}`, "-d", '{"errorMessage":"via buf"}', `${baseUrl}/analytics.v1.AnalyticsService/LogError`);
      expect(JSON.parse(stdout)).toMatchObject({ outcome: "WRITE_OUTCOME_STORED" });
      const denied = await bufCurl("-d", '{"errorMessage":"via buf"}', `${baseUrl}/analytics.v1.AnalyticsService/LogError`).catch((e: { stderr: string }) => e);
      expect((denied as { stderr: string }).stderr).toContain('"code": "unauthenticated"');
    });
  });

  describe("bad tokens", () => {
    const NOW = () => Math.floor(Date.now() / 1000);
    const signWith = (claims: Record<string, unknown>, key = new TextEncoder().encode("not-the-server-secret-not-the-server-secret")) =>
      new SignJWT(claims).setProtectedHeader({ alg: "HS256" }).sign(key);
    const cases: [string, () => Promise<string>, RegExp][] = [
      ["forged (another secret)", () => signWith({ sub: "x", role: "admin", exp: NOW() + 600, aud: AUDIENCE, iss: ISSUER }), /^invalid token: signature verification failed$/],
      ["expired", () => mintTestToken(server.config, "admin", "late", { ttlSeconds: 60, nowMs: Date.now() - 3600_000 }), /^invalid token: expired at /],
      ["alg none", async () => `${base64url.encode('{"alg":"none"}')}.${base64url.encode(JSON.stringify({ sub: "x", role: "admin", exp: NOW() + 600, aud: AUDIENCE, iss: ISSUER }))}.`, /^invalid token: unsigned tokens \(alg none\) are not accepted$/],
      ["for another audience", async () => {
        const { mintToken } = await import("../../src/auth/mint-token.js");
        const { loadSigningSecret } = await import("../../src/auth/signing-secret.js");
        const secret = await loadSigningSecret(server.config);
        return mintToken(secret.key, { role: "admin", sub: "x", ttlSeconds: 600, issuer: ISSUER, audience: "billing" });
      }, /^invalid token: audience not accepted$/],
      ["malformed", async () => "eyJhbGciOiJIUzI1NiJ9.garbage", /^invalid token: malformed JWT$/],
    ];

    for (const [name, make, message] of cases) {
      it(`refuses the ${name} token: Unauthenticated with a clear message (gRPC and Connect)`, async () => {
        const t = await make();
        const err = await failure(grpcClient(MetricsService, t).getErrorTrends({}));
        expect(err.code).toBe(Code.Unauthenticated);
        expect(err.rawMessage).toMatch(message);
        const res = await connectPost("analytics.v1.AnalyticsService/LogUserActivity", { activityType: "ACTIVITY_TYPE_CLICK" }, { authorization: `Bearer ${t}` });
        expect(res.status).toBe(401);
        const body = await jsonError(res);
        expect(body.code).toBe("unauthenticated");
        expect(body.message).toMatch(message);
      });
    }

    it("says what is missing without a token", async () => {
      const res = await connectPost("analytics.v1.AnalyticsService/LogError", { errorMessage: "x" });
      expect(res.status).toBe(401);
      expect(await jsonError(res)).toEqual({ code: "unauthenticated", message: 'missing credentials: send "authorization: Bearer <token>" or an access_token cookie' });
    });
  });

  describe("per-principal rules", () => {
    it("refuses a device writing another device's errors and metrics", async () => {
      const client = grpcClient(AnalyticsService, await token("device", "device-a"));
      const own = await client.logError({ errorMessage: "own", deviceId: "device-a" });
      expect((await rows(`select device_id, user_id from error_logs where id = ?`, [own.id]))[0]).toEqual({ device_id: "device-a", user_id: "device-a" });
      const err = await failure(client.logError({ errorMessage: "theirs", deviceId: "device-b" }));
      expect(err.code).toBe(Code.PermissionDenied);
      expect(err.rawMessage).toBe('permission denied: device_id: a device may only write data for its own device_id "device-a"');
      const metrics = await failure(client.ingestDeviceMetrics({ deviceId: "device-b", samples: [{ occurredAt: timestampNow(), metrics: { cpu: 1 } }] }));
      expect(metrics.code).toBe(Code.PermissionDenied);
      async function* stream() {
        yield { sequence: 1n, deviceId: "device-b", samples: [{ occurredAt: timestampNow(), metrics: { cpu: 1 } }] };
      }
      const streamed = await failure((async () => {
        for await (const _ of client.streamDeviceMetrics(stream())) void _;
      })());
      expect(streamed.code).toBe(Code.PermissionDenied);
      expect(await rows(`select 1 from device_metrics where device_id = 'device-b'`)).toEqual([]);
    });

    it("stores the token's user for a user, and the named user for a service", async () => {
      const user = grpcClient(AnalyticsService, await token("user", "user-own"));
      const denied = await failure(user.logUserActivity({ activityType: ActivityType.CLICK, userId: "someone-else" }));
      expect(denied.code).toBe(Code.PermissionDenied);
      expect(denied.rawMessage).toContain("user_id");
      const mine = await user.logUserActivity({ activityType: ActivityType.CLICK });
      const service = grpcClient(AnalyticsService, await token("service", "web-backend"));
      const onBehalf = await service.logUserActivity({ activityType: ActivityType.CLICK, userId: "user-42" });
      const stored = await rows<{ id: string; user_id: string }>(`select id, user_id from user_activities where id in (?, ?)`, [mine.id, onBehalf.id]);
      expect(Object.fromEntries(stored.map((r) => [r.id, r.user_id]))).toEqual({ [mine.id]: "user-own", [onBehalf.id]: "user-42" });
    });
  });

  describe("LogEvents items, each by the row of its kind", () => {
    it("rejects the items a principal may not write and stores the rest", async () => {
      const user = grpcClient(AnalyticsService, await token("user", "batch-user"));
      const res = await user.logEvents({
        events: [
          { kind: { case: "userActivity", value: { activityType: ActivityType.CLICK, pageUrl: "/batch" } } },
          { kind: { case: "jobOutcome", value: { jobId: "j-1", jobType: "t", status: JobStatus.SUCCESS } } },
          { kind: { case: "deviceStateChange", value: { deviceId: "d-1", newState: "online" } } },
          { kind: { case: "error", value: { errorMessage: "frontend", deviceId: "any-device" } } },
          { kind: { case: "userActivity", value: { activityType: ActivityType.CLICK, userId: "someone-else" } } },
        ],
      });
      expect(res.results.map((r) => WriteOutcome[r.outcome])).toEqual(["STORED", "REJECTED", "REJECTED", "STORED", "REJECTED"]);
      // Judged as sent, like the unary call: a user may not write for another user id.
      expect(res.results[4]!.violations[0]!.field).toBe("events[4].user_activity.user_id");
      expect(res.results[1]!.violations[0]!.field).toBe("events[1].job_outcome");
      expect(res.results[1]!.violations[0]!.description).toBe('permission denied: role "user" may not log job_outcome events (allowed: admin, service)');
      expect(res.results[2]!.violations[0]!.description).toContain('role "user" may not log device_state_change events');
      const device = grpcClient(AnalyticsService, await token("device", "batch-device"));
      const mixed = await device.logEvents({
        events: [
          { kind: { case: "error", value: { errorMessage: "own", deviceId: "batch-device" } } },
          { kind: { case: "error", value: { errorMessage: "theirs", deviceId: "other-device" } } },
        ],
      });
      expect(mixed.results.map((r) => WriteOutcome[r.outcome])).toEqual(["STORED", "REJECTED"]);
      expect(mixed.results[1]!.violations[0]).toMatchObject({
        field: "events[1].error.device_id",
        description: 'permission denied: a device may only write data for its own device_id "batch-device"',
      });
      expect(await rows(`select 1 from error_logs where device_id = 'other-device'`)).toEqual([]);
    });
  });

  describe("browsers: cookie auth and CORS over HTTP/1.1 Connect", () => {
    const PROC = "analytics.v1.AnalyticsService/LogUserActivity";
    const preflight = (origin: string) =>
      fetch(`${baseUrl}/${PROC}`, {
        method: "OPTIONS",
        headers: { origin, "access-control-request-method": "POST", "access-control-request-headers": "content-type,connect-protocol-version" },
      });

    it("answers a preflight from an allowed origin, with credentials and a cache time", async () => {
      const res = await preflight(APP);
      expect(res.status).toBe(204);
      expect(res.headers.get("access-control-allow-origin")).toBe(APP);
      expect(res.headers.get("access-control-allow-credentials")).toBe("true");
      expect(res.headers.get("access-control-allow-methods")).toBe("POST, GET");
      const allowHeaders = res.headers.get("access-control-allow-headers")!.toLowerCase();
      for (const h of ["content-type", "connect-protocol-version", "connect-timeout-ms", "x-grpc-web", "authorization"]) expect(allowHeaders).toContain(h);
      expect(res.headers.get("access-control-max-age")).toBe("7200");
      expect(res.headers.get("vary")).toContain("Origin");
    });

    it("refuses a preflight from any other origin", async () => {
      const res = await preflight(EVIL);
      expect(res.status).toBe(403);
      expect(res.headers.get("access-control-allow-origin")).toBeNull();
      expect(res.headers.get("access-control-allow-credentials")).toBeNull();
    });

    it("authenticates with the cookie from an allowed origin and lets the page read the answer", async () => {
      const t = await token("user", "browser-user");
      const res = await connectPost(PROC, { activityType: "ACTIVITY_TYPE_PAGE_VIEW", pageUrl: "/dashboard" }, { origin: APP, cookie: `theme=dark; access_token=${t}` });
      expect(res.status).toBe(200);
      expect(res.headers.get("access-control-allow-origin")).toBe(APP);
      expect(res.headers.get("access-control-allow-credentials")).toBe("true");
      expect(res.headers.get("access-control-expose-headers")).toContain("Grpc-Status");
      const { id } = (await res.json()) as { id: string };
      expect(await rows(`select user_id, page_url from user_activities where id = ?`, [id])).toEqual([{ user_id: "browser-user", page_url: "/dashboard" }]);
    });

    it("ignores the cookie on a request from another origin, and gives that origin no CORS headers", async () => {
      const t = await token("user", "browser-victim");
      const res = await connectPost(PROC, { activityType: "ACTIVITY_TYPE_CLICK", pageUrl: "/forged" }, { origin: EVIL, cookie: `access_token=${t}` });
      expect(res.status).toBe(401);
      expect(res.headers.get("access-control-allow-origin")).toBeNull();
      expect(await jsonError(res)).toEqual({
        code: "unauthenticated",
        message: `the access_token cookie is not accepted from origin ${EVIL}: it is not in ANALYTICS_CORS_ORIGINS`,
      });
      expect(await rows(`select 1 from user_activities where page_url = '/forged'`)).toEqual([]);
    });

    it("accepts the cookie from a non-browser client (no Origin)", async () => {
      const res = await connectPost(PROC, { activityType: "ACTIVITY_TYPE_CLICK" }, { cookie: `access_token=${await token("user", "cli-user")}` });
      expect(res.status).toBe(200);
      expect(res.headers.get("access-control-allow-origin")).toBeNull();
    });

    it("answers a gRPC-Web preflight (x-grpc-web, x-user-agent, authorization)", async () => {
      const res = await fetch(`${baseUrl}/${PROC}`, {
        method: "OPTIONS",
        headers: { origin: APP, "access-control-request-method": "POST", "access-control-request-headers": "x-grpc-web,x-user-agent,content-type,authorization" },
      });
      expect(res.status).toBe(204);
      expect(res.headers.get("access-control-allow-origin")).toBe(APP);
      let allowOrigin: string | null = null;
      const fromApp: Interceptor = (next) => async (req) => {
        req.header.set("origin", APP);
        const answer = await next(req);
        allowOrigin = answer.header.get("access-control-allow-origin");
        return answer;
      };
      const t = await token("user", "grpc-web-user");
      const client = createClient(AnalyticsService, createGrpcWebTransport({ baseUrl, httpVersion: "1.1", interceptors: [bearer(t), fromApp] }));
      await client.logUserActivity({ activityType: ActivityType.CLICK });
      expect(allowOrigin).toBe(APP);
    });
  });

  describe("abuse limits", () => {
    it("limits one principal with a retry hint while others carry on", async () => {
      const noisy = { authorization: `Bearer ${await token("user", "noisy-user")}` };
      const statuses: number[] = [];
      let limited: Response | undefined;
      for (let i = 0; i < 4; i++) {
        const res = await connectPost("analytics.v1.AnalyticsService/LogUserActivity", { activityType: "ACTIVITY_TYPE_CLICK" }, noisy);
        statuses.push(res.status);
        if (res.status !== 200) limited = res;
        else await res.body?.cancel();
      }
      expect(statuses).toEqual([200, 200, 200, 429]);
      expect(Number(limited!.headers.get("retry-after-ms"))).toBeGreaterThan(0);
      const body = await jsonError(limited!);
      expect(body.code).toBe("resource_exhausted");
      expect(body.message).toMatch(/^rate limit exceeded for user "noisy-user" \(0.5\/s, burst 3\): retry in \d+ ms$/);
      // Over gRPC the hint is in the trailers, i.e. the error metadata.
      const grpcErr = await failure(grpcClient(AnalyticsService, noisy.authorization.slice(7)).logUserActivity({ activityType: ActivityType.CLICK }));
      expect(grpcErr.code).toBe(Code.ResourceExhausted);
      expect(Number(grpcErr.metadata.get("retry-after-ms"))).toBeGreaterThan(0);
      // And as a google.rpc.RetryInfo detail, the same wait.
      expect(grpcErr.findDetails(RetryInfoSchema).map((d) => d.retryDelay && durationMs(d.retryDelay))).toEqual([Number(grpcErr.metadata.get("retry-after-ms"))]);
      // Another user and a service are unaffected.
      const quiet = grpcClient(AnalyticsService, await token("user", "quiet-user"));
      await quiet.logUserActivity({ activityType: ActivityType.CLICK });
      const svc = grpcClient(AnalyticsService, await token("service", "busy-service"));
      for (let i = 0; i < 10; i++) await svc.logUserActivity({ activityType: ActivityType.CLICK, userId: "noisy-user" });
    });

    it("refuses oversize messages with ResourceExhausted (gRPC and Connect)", async () => {
      const t = await token("service", "big-sender");
      const huge = "x".repeat(MAX_BYTES + 1024);
      const err = await failure(grpcClient(AnalyticsService, t).logError({ errorMessage: "big", stackTrace: huge }));
      expect(err.code).toBe(Code.ResourceExhausted);
      const res = await connectPost("analytics.v1.AnalyticsService/LogError", { errorMessage: "big", stackTrace: huge }, { authorization: `Bearer ${t}` });
      expect(res.status).toBe(429);
      expect((await jsonError(res)).code).toBe("resource_exhausted");
      // Just under the limit is decoded (and then judged by validation).
      const fits = await failure(grpcClient(AnalyticsService, t).logError({ errorMessage: "big", stackTrace: "x".repeat(40 * 1024) }));
      expect(fits.code).toBe(Code.InvalidArgument);
    });
  });

  describe("errors never leak internals", () => {
    it("answers a storage failure with a generic message whose correlation id is in the server log", async () => {
      const t = await token("service", "leak-probe");
      await rows(`alter table error_logs rename to error_logs_away`);
      let err: ConnectError;
      let body: { code: string; message: string };
      try {
        err = await failure(grpcClient(AnalyticsService, t).logError({ errorMessage: "probe", errorCode: "E_PROBE", eventId: crypto.randomUUID() }));
        body = await jsonError(await connectPost("analytics.v1.AnalyticsService/LogError", { errorMessage: "probe 2", errorCode: "E_PROBE2" }, { authorization: `Bearer ${t}` }));
      } finally {
        await rows(`alter table error_logs_away rename to error_logs`);
      }
      expect([Code.Internal, Code.Unavailable]).toContain(err.code);
      expect(["internal", "unavailable"]).toContain(body.code);
      const id = /correlation id ([0-9a-f-]{36})/.exec(err.rawMessage)?.[1];
      if (err.code === Code.Internal) {
        expect(id).toBeDefined();
        expect(serverLog.some((line) => line.includes(id!))).toBe(true);
      }
    }, 60_000);

    it("no error a client received in this file carries a stack trace, SQL or file paths", () => {
      expect(clientMessages.length).toBeGreaterThan(20);
      for (const message of clientMessages) {
        expect(message).not.toMatch(/\n\s+at |\bat [^\s(]*\s?\(?[^\s()]+:\d+:\d+\)?$|\(\S+:\d+:\d+\)|node_modules|\.ts:\d+|\/work\/|\bselect\b.+\bfrom\b|\binsert into\b|\brelation\b|\bsyntax error\b|error_logs|SQLSTATE|duplicate key/i);
      }
    });
  });

  describe("the token CLI", () => {
    const cli = (args: string[]) =>
      run(process.execPath, ["--import", "tsx", join(root, "src/main.ts"), ...args], {
        cwd: root,
        env: {
          PATH: process.env.PATH,
          ANALYTICS_DATA_DIR: server.config.dataDir,
          ANALYTICS_JWT_AUDIENCE: AUDIENCE,
          ANALYTICS_JWT_ISSUER: ISSUER,
          LOG_LEVEL: "warn",
        },
        timeout: 30_000,
      });

    it("mints a token the server accepts, with the requested role and subject", async () => {
      const { stdout } = await cli(["token", "--role", "device", "--sub", "device-123", "--ttl", "30d"]);
      const t = stdout.trim();
      expect(t.split(".")).toHaveLength(3);
      const payload = JSON.parse(new TextDecoder().decode(base64url.decode(t.split(".")[1]!))) as Record<string, number | string>;
      expect(payload).toMatchObject({ role: "device", sub: "device-123", aud: AUDIENCE, iss: ISSUER });
      expect((payload.exp as number) - (payload.iat as number)).toBe(30 * 86400);
      const res = await grpcClient(AnalyticsService, t).logError({ errorMessage: "from a CLI token", deviceId: "device-123" });
      expect(res.id).not.toBe("");
    }, 60_000);

    it("refuses a bad role with usage", async () => {
      const err = (await cli(["token", "--role", "root", "--sub", "x"]).catch((e: unknown) => e)) as { code: number; stderr: string };
      expect(err.code).toBe(2);
      expect(err.stderr).toContain("token needs --role, one of admin, service, user, device");
    }, 60_000);
  });
});

describe("on a server with reflection switched off", () => {
  beforeAll(async () => {
    server = await buildServer({ ...db.config, reflection: false });
    await server.listen();
    baseUrl = server.url();
  });
  afterAll(async () => {
    await server?.close();
  });

  it("does not serve reflection, and still serves health", async () => {
    const listed = await bufCurl("--list-services", baseUrl).catch((e: { stderr: string }) => e);
    expect((listed as { stderr: string }).stderr).toMatch(/unimplemented|not implemented|404/i);
    const health = createClient(Health, createGrpcTransport({ baseUrl }));
    expect((await health.check({})).status).toBe(HealthCheckResponse_ServingStatus.SERVING);
  });
});
