import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import {
  AnalyticsService,
  IngestDeviceMetricsRequestSchema,
  LogDeviceStateChangeRequestSchema,
  LogErrorRequestSchema,
  LogJobOutcomeRequestSchema,
  LogUserActivityRequestSchema,
  StreamDeviceMetricsRequestSchema,
} from "../../sdk/src/gen/analytics/v1/analytics_service_pb.js";
import { MetricsService } from "../../sdk/src/gen/analytics/v1/metrics_service_pb.js";
import { Health } from "../../sdk/src/gen/grpc/health/v1/health_pb.js";
import { ServerReflection as ReflectionV1 } from "../../sdk/src/gen/grpc/reflection/v1/reflection_pb.js";
import { ServerReflection as ReflectionV1Alpha } from "../../sdk/src/gen/grpc/reflection/v1alpha/reflection_pb.js";
import { accessRule, assertMayWriteDevice, authorizeEvent, checkRole } from "../../src/auth/access-policy.js";
import { ROLES, type Principal, type Role } from "../../src/auth/principal.js";

// The matrix as the issue states it, written independently of the implementation's table.
const A = ["admin"];
const SA = ["admin", "service"];
const ALL = ["admin", "service", "user", "device"];
const DEV = ["admin", "service", "device"];
const EXPECTED: Record<string, string[] | "open"> = {
  "analytics.v1.AnalyticsService/LogUserActivity": ALL,
  "analytics.v1.AnalyticsService/LogError": ALL,
  "analytics.v1.AnalyticsService/LogDeviceStateChange": SA,
  "analytics.v1.AnalyticsService/LogJobOutcome": SA,
  "analytics.v1.AnalyticsService/LogEvents": ALL,
  "analytics.v1.AnalyticsService/StreamDeviceMetrics": DEV,
  "analytics.v1.AnalyticsService/IngestDeviceMetrics": DEV,
  "analytics.v1.AnalyticsService/ResolveError": A,
  ...Object.fromEntries(MetricsService.methods.map((m) => [`${MetricsService.typeName}/${m.name}`, A])),
  ...Object.fromEntries([Health, ReflectionV1, ReflectionV1Alpha].flatMap((s) => s.methods.map((m) => [`${s.typeName}/${m.name}`, "open" as const]))),
};

const who = (role: Role, subject = `${role}-1`): Principal => ({ role, subject });

describe("the role × RPC matrix", () => {
  const services = [AnalyticsService, MetricsService, Health, ReflectionV1, ReflectionV1Alpha];
  const cells = services.flatMap((s) => s.methods.map((m) => [`${s.typeName}/${m.name}`, s.typeName, m.name] as const));

  it("has an expectation for every method of every served service", () => {
    expect(cells.map(([p]) => p).sort()).toEqual(Object.keys(EXPECTED).sort());
  });

  for (const [procedure, service, method] of cells) {
    it(`${procedure}`, () => {
      const rule = accessRule(service, method);
      const expected = EXPECTED[procedure]!;
      if (expected === "open") {
        expect(rule.allow).toBe("open");
        return;
      }
      for (const role of ROLES) {
        const denial = checkRole(rule, who(role), procedure);
        if (expected.includes(role)) expect(denial, `${role} on ${procedure}`).toBeUndefined();
        else expect(denial?.reason, `${role} on ${procedure}`).toBe(`role "${role}" may not call ${procedure} (allowed: ${expected.join(", ")})`);
      }
    });
  }

  it("makes an unknown procedure admin-only", () => {
    const rule = accessRule("analytics.v1.NewService", "Anything");
    expect(rule.allow).toEqual(["admin"]);
  });
});

describe("per-message rules", () => {
  const activity = accessRule(AnalyticsService.typeName, "LogUserActivity");
  const error = accessRule(AnalyticsService.typeName, "LogError");
  const ingest = accessRule(AnalyticsService.typeName, "IngestDeviceMetrics");
  const stream = accessRule(AnalyticsService.typeName, "StreamDeviceMetrics");

  it("lets a user log activity only as itself", () => {
    const own = create(LogUserActivityRequestSchema, { userId: "u-1" });
    const other = create(LogUserActivityRequestSchema, { userId: "u-2" });
    const none = create(LogUserActivityRequestSchema, {});
    expect(activity.check!(who("user", "u-1"), own)).toBeUndefined();
    expect(activity.check!(who("user", "u-1"), none)).toBeUndefined();
    expect(activity.check!(who("user", "u-1"), other)).toEqual({
      field: "user_id",
      reason: 'a user may only log its own activity (user_id must be empty or "u-1")',
    });
    expect(activity.check!(who("device", "d-1"), other)?.field).toBe("user_id");
    expect(activity.check!(who("service"), other)).toBeUndefined();
    expect(activity.check!(who("admin"), other)).toBeUndefined();
  });

  it("lets a device log errors only for its own device id", () => {
    const m = (deviceId: string) => create(LogErrorRequestSchema, { deviceId, errorMessage: "x" });
    expect(error.check!(who("device", "d-1"), m("d-1"))).toBeUndefined();
    expect(error.check!(who("device", "d-1"), m(""))).toBeUndefined();
    expect(error.check!(who("device", "d-1"), m("d-2"))).toEqual({ field: "device_id", reason: 'a device may only write data for its own device_id "d-1"' });
    for (const role of ["user", "service", "admin"] as const) expect(error.check!(who(role), m("d-2"))).toBeUndefined();
  });

  it("lets a device send metrics only for itself, unary and streamed", () => {
    expect(ingest.check!(who("device", "d-1"), create(IngestDeviceMetricsRequestSchema, { deviceId: "d-1" }))).toBeUndefined();
    expect(ingest.check!(who("device", "d-1"), create(IngestDeviceMetricsRequestSchema, { deviceId: "d-2" }))?.field).toBe("device_id");
    expect(stream.check!(who("device", "d-1"), create(StreamDeviceMetricsRequestSchema, { deviceId: "d-2" }))?.field).toBe("device_id");
    expect(stream.check!(who("service"), create(StreamDeviceMetricsRequestSchema, { deviceId: "d-2" }))).toBeUndefined();
  });
});

describe("authorizeEvent (LogEvents items)", () => {
  const activity = (userId: string) => create(LogUserActivityRequestSchema, { userId });
  const state = create(LogDeviceStateChangeRequestSchema, { deviceId: "d-1", newState: "online" });
  const job = create(LogJobOutcomeRequestSchema, { jobId: "j", jobType: "t" });

  it("applies the unary RPC's role row to each kind", () => {
    expect(authorizeEvent(who("user"), "deviceStateChange", state)).toEqual({
      field: "device_state_change",
      reason: 'role "user" may not log device_state_change events (allowed: admin, service)',
    });
    expect(authorizeEvent(who("device"), "jobOutcome", job)?.field).toBe("job_outcome");
    expect(authorizeEvent(who("service"), "jobOutcome", job)).toBeUndefined();
    expect(authorizeEvent(who("admin"), "deviceStateChange", state)).toBeUndefined();
  });

  it("applies the unary RPC's per-message rule to each item", () => {
    expect(authorizeEvent(who("user", "u-1"), "userActivity", activity("u-2"))?.field).toBe("user_id");
    expect(authorizeEvent(who("user", "u-1"), "userActivity", activity("u-1"))).toBeUndefined();
    const err = create(LogErrorRequestSchema, { deviceId: "d-2", errorMessage: "x" });
    expect(authorizeEvent(who("device", "d-1"), "error", err)?.field).toBe("device_id");
    expect(authorizeEvent(who("user"), "error", err)).toBeUndefined();
  });

  it("leaves empty items and principal-less (in-process) calls to others", () => {
    expect(authorizeEvent(who("user"), undefined, undefined)).toBeUndefined();
    expect(authorizeEvent(undefined, "jobOutcome", job)).toBeUndefined();
  });
});

describe("assertMayWriteDevice", () => {
  const code = (f: () => void) => {
    try {
      f();
      return undefined;
    } catch (err) {
      return (err as ConnectError).code;
    }
  };
  it("allows a device only its own id, service and admin any, user none", () => {
    expect(code(() => assertMayWriteDevice(who("device", "d-1"), "d-1"))).toBeUndefined();
    expect(code(() => assertMayWriteDevice(who("device", "d-1"), "d-2"))).toBe(Code.PermissionDenied);
    expect(code(() => assertMayWriteDevice(who("service"), "d-2"))).toBeUndefined();
    expect(code(() => assertMayWriteDevice(who("admin"), "d-2"))).toBeUndefined();
    expect(code(() => assertMayWriteDevice(who("user"), "d-2"))).toBe(Code.PermissionDenied);
    expect(code(() => assertMayWriteDevice(undefined, "d-2"))).toBe(Code.Unauthenticated);
  });
  it("says why", () => {
    expect(() => assertMayWriteDevice(who("device", "d-1"), "d-2")).toThrowError(/device_id: a device may only write data for its own device_id "d-1"/);
  });
});
