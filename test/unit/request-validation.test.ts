import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, type ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import {
  LogDeviceStateChangeRequestSchema,
  LogErrorRequestSchema,
  LogJobOutcomeRequestSchema,
  LogUserActivityRequestSchema,
} from "../../sdk/src/gen/analytics/v1/analytics_service_pb.js";
import { ActivityType, ErrorCategory, JobStatus } from "../../sdk/src/gen/analytics/v1/common_pb.js";
import { BadRequestSchema } from "../../sdk/src/gen/google/rpc/error_details_pb.js";
import { assertValid, field, MAX_JSON_BYTES, rules, validate, type Check } from "../../src/validation/field-rules.js";
import {
  DEVICE_STATE_CHANGE_RULES,
  ERROR_RULES,
  JOB_OUTCOME_RULES,
  LIMITS,
  USER_ACTIVITY_RULES,
} from "../../src/validation/request-rules.js";

const fields = (v: { field: string }[]) => v.map((x) => x.field);

describe("LogError rules", () => {
  it("accepts a minimal error (category and severity default)", () => {
    expect(validate(create(LogErrorRequestSchema, { errorMessage: "boom" }), ERROR_RULES)).toEqual([]);
  });
  it("requires error_message, and a blank one is missing", () => {
    expect(validate(create(LogErrorRequestSchema, { errorMessage: "  " }), ERROR_RULES)).toEqual([
      { field: "error_message", description: "is required" },
    ]);
  });
  it("caps lengths", () => {
    const v = validate(
      create(LogErrorRequestSchema, { errorMessage: "x".repeat(LIMITS.message + 1), stackTrace: "s".repeat(LIMITS.stackTrace + 1) }),
      ERROR_RULES,
    );
    expect(fields(v)).toEqual(["error_message", "stack_trace"]);
    expect(v[0]!.description).toBe(`must be at most ${LIMITS.message} characters (got ${LIMITS.message + 1})`);
  });
  it("rejects unknown enum values", () => {
    expect(fields(validate(create(LogErrorRequestSchema, { errorMessage: "x", category: 42 as ErrorCategory }), ERROR_RULES))).toEqual(["category"]);
  });
  it("rejects oversized context", () => {
    const v = validate(create(LogErrorRequestSchema, { errorMessage: "x", context: { blob: "x".repeat(MAX_JSON_BYTES) } }), ERROR_RULES);
    expect(fields(v)).toEqual(["context"]);
  });
});

describe("LogUserActivity rules", () => {
  it("requires an activity type", () => {
    expect(fields(validate(create(LogUserActivityRequestSchema, {}), USER_ACTIVITY_RULES))).toEqual(["activity_type"]);
  });
  it("checks event_id is a UUID and occurred_at is sane", () => {
    const v = validate(
      create(LogUserActivityRequestSchema, {
        activityType: ActivityType.CLICK,
        eventId: "123",
        occurredAt: timestampFromMs(Date.UTC(1999, 0, 1)),
      }),
      USER_ACTIVITY_RULES,
    );
    expect(v).toEqual([
      { field: "occurred_at", description: "must be after 2000-01-01" },
      { field: "event_id", description: "must be a UUID" },
    ]);
  });
  it("accepts times up to 24 hours ahead (client clock skew)", () => {
    const ok = create(LogUserActivityRequestSchema, { activityType: ActivityType.CLICK, occurredAt: timestampFromMs(Date.now() + 3600_000) });
    expect(validate(ok, USER_ACTIVITY_RULES)).toEqual([]);
  });
});

describe("LogDeviceStateChange and LogJobOutcome rules", () => {
  it("require their required fields", () => {
    expect(fields(validate(create(LogDeviceStateChangeRequestSchema, {}), DEVICE_STATE_CHANGE_RULES))).toEqual(["device_id", "new_state"]);
    expect(fields(validate(create(LogJobOutcomeRequestSchema, {}), JOB_OUTCOME_RULES))).toEqual(["job_id", "job_type", "status"]);
  });
  it("accept complete messages", () => {
    expect(validate(create(LogJobOutcomeRequestSchema, { jobId: "j", jobType: "t", status: JobStatus.FAILED }), JOB_OUTCOME_RULES)).toEqual([]);
  });
});

describe("uint32 fields stored in integer columns", () => {
  it("accept up to 2^31 - 1 and name the field above it (the column would refuse the row, and its batch)", () => {
    const job = (init: object) => validate(create(LogJobOutcomeRequestSchema, { jobId: "j", jobType: "t", status: JobStatus.SUCCESS, ...init }), JOB_OUTCOME_RULES);
    expect(job({ durationMs: 2_147_483_647, retryCount: 2_147_483_647 })).toEqual([]);
    expect(job({ durationMs: 2_147_483_648, retryCount: 4_294_967_295 })).toEqual([
      { field: "duration_ms", description: "must be at most 2147483647 (got 2147483648)" },
      { field: "retry_count", description: "must be at most 2147483647 (got 4294967295)" },
    ]);
    const activity = (durationMs: number | undefined) => validate(create(LogUserActivityRequestSchema, { activityType: ActivityType.CLICK, durationMs }), USER_ACTIVITY_RULES);
    expect(activity(undefined)).toEqual([]);
    expect(activity(0)).toEqual([]);
    expect(fields(activity(3_000_000_000))).toEqual(["duration_ms"]);
  });
});

describe("NUL characters (PostgreSQL's text and jsonb cannot store U+0000)", () => {
  it("names every text field holding one", () => {
    const v = validate(
      create(LogErrorRequestSchema, { errorMessage: "a\u0000", errorCode: "\u0000", endpoint: "/x\u0000y", deviceId: "d", stackTrace: "ok" }),
      ERROR_RULES,
    );
    expect(v).toEqual([
      { field: "error_code", description: "must not contain the NUL character (U+0000)" },
      { field: "error_message", description: "must not contain the NUL character (U+0000)" },
      { field: "endpoint", description: "must not contain the NUL character (U+0000)" },
    ]);
    expect(fields(validate(create(LogDeviceStateChangeRequestSchema, { deviceId: "d\u0000", newState: "on" }), DEVICE_STATE_CHANGE_RULES))).toEqual(["device_id"]);
  });

  it("finds one in a JSON payload's keys and strings, at any depth, and not in a literal backslash-u0000", () => {
    const payload = (extraData: object) =>
      validate(create(LogJobOutcomeRequestSchema, { jobId: "j", jobType: "t", status: JobStatus.SUCCESS, extraData: extraData as never }), JOB_OUTCOME_RULES);
    const nul = [{ field: "extra_data", description: "must not contain the NUL character (U+0000) in a key or string" }];
    expect(payload({ k: "a\u0000" })).toEqual(nul);
    expect(payload({ "\u0000": 1 })).toEqual(nul);
    expect(payload({ a: [{ b: ["x", "\\\u0000"] }] })).toEqual(nul); // a backslash, then a NUL
    expect(payload({ k: "\\u0000" })).toEqual([]); // a backslash, then "u0000": six ordinary characters
    expect(payload({ k: "\\\\u0000", "\\u0000": "\\" })).toEqual([]);
    expect(payload({ k: "\u0001\u001f" })).toEqual([]); // other control characters are stored fine
  });
});

describe("size checks", () => {
  it("come before content checks: an oversized value is refused for its size, whatever it holds", () => {
    const outcome = (fields: object) => validate(create(LogErrorRequestSchema, { errorMessage: "m", ...fields }), ERROR_RULES);
    expect(outcome({ errorCode: "\u0000".repeat(LIMITS.id + 1) })).toEqual([
      { field: "error_code", description: `must be at most ${LIMITS.id} characters (got ${LIMITS.id + 1})` },
    ]);
    expect(outcome({ errorMessage: " ".repeat(LIMITS.message + 1) })).toEqual([
      { field: "error_message", description: `must be at most ${LIMITS.message} characters (got ${LIMITS.message + 1})` },
    ]);
    const run = "\\".repeat(MAX_JSON_BYTES / 2); // each backslash is two characters of JSON
    expect(outcome({ context: { k: run + "\u0000" } })).toEqual([
      { field: "context", description: `must encode to at most ${MAX_JSON_BYTES} bytes of JSON (got ${MAX_JSON_BYTES + 14})` },
    ]);
    // Within the limits, the content is judged.
    expect(outcome({ errorCode: "\u0000", context: { k: run.slice(100) + "\u0000" } })).toEqual([
      { field: "error_code", description: "must not contain the NUL character (U+0000)" },
      { field: "context", description: "must not contain the NUL character (U+0000) in a key or string" },
    ]);
  });
});

describe("assertValid", () => {
  it("throws InvalidArgument naming each field, in words and as google.rpc.BadRequest field violations", () => {
    try {
      assertValid(create(LogJobOutcomeRequestSchema, { jobType: "t" }), JOB_OUTCOME_RULES);
      expect.unreachable();
    } catch (err) {
      expect(err).toMatchObject({ code: Code.InvalidArgument, rawMessage: "invalid request: job_id: is required; status: is required" });
      expect((err as ConnectError).findDetails(BadRequestSchema).flatMap((d) => d.fieldViolations)).toMatchObject([
        { field: "job_id", description: "is required" },
        { field: "status", description: "is required" },
      ]);
    }
  });
});

describe("rules (compiled)", () => {
  interface M {
    a: string;
    b: number;
    c: string;
  }
  const calls: string[] = [];
  const spy =
    <V>(name: string, problem?: string): Check<V> =>
    () => {
      calls.push(name);
      return problem;
    };

  it("reads each field once and runs its checks in order, stopping at the field's first problem", () => {
    const set = rules<M>(
      field("a", (m) => m.a, spy("a1"), spy("a2", "bad a"), spy("a3", "never")),
      field("b", (m) => m.b, spy("b1")),
      field("c", (m) => m.c, spy("c1", "bad c")),
    );
    calls.length = 0;
    expect(validate({ a: "", b: 0, c: "" }, set)).toEqual([
      { field: "a", description: "bad a" },
      { field: "c", description: "bad c" },
    ]);
    expect(calls).toEqual(["a1", "a2", "b1", "c1"]);
    expect(set.fields.map((f) => f.field)).toEqual(["a", "b", "c"]);
  });

  it("passes each check the field's value, places the paths after a prefix, and skips fields without checks", () => {
    const seen: unknown[] = [];
    const set = rules<M>(
      field("a", (m) => m.a),
      field("b", (m) => m.b, (v) => (seen.push(v), v > 1 ? `too big (${v})` : undefined)),
    );
    expect(validate({ a: "x", b: 2, c: "" }, set, "events[3].job.")).toEqual([{ field: "events[3].job.b", description: "too big (2)" }]);
    expect(validate({ a: "x", b: 1, c: "" }, set)).toEqual([]);
    expect(seen).toEqual([2, 1]);
    expect(validate({ a: "", b: 0, c: "" }, rules<M>())).toEqual([]);
  });

  it("takes any field name as a literal, quotes and backslashes included", () => {
    const name = 'odd"name\\`${x}\n';
    const set = rules<M>(field(name, (m) => m.a, () => "wrong"));
    expect(validate({ a: "", b: 0, c: "" }, set)).toEqual([{ field: name, description: "wrong" }]);
  });

  it("gives a fresh list on every call", () => {
    const set = rules<M>(field("a", (m) => m.a, (v) => (v === "" ? "is required" : undefined)));
    const first = validate({ a: "", b: 0, c: "" }, set);
    first.push({ field: "x", description: "y" });
    expect(validate({ a: "", b: 0, c: "" }, set)).toEqual([{ field: "a", description: "is required" }]);
    expect(validate({ a: "ok", b: 0, c: "" }, set)).not.toBe(validate({ a: "ok", b: 0, c: "" }, set));
  });
});
