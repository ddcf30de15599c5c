/**
 * The per-method caps are derived, not picked: every string limit they use is the one its
 * validation rule enforces (the limit passes, one more fails); the widest request validation
 * accepts, in binary and in JSON, fits its method's cap (and fills most of it); a Struct never
 * takes more than 6 protobuf bytes per byte of its JSON text; and the caps table holds each
 * method to its derived size, the metrics cap, the small fixed caps and the global bound.
 */
import { create, fromJson, ScalarType, toBinary, toJsonString, type DescMessage, type JsonObject } from "@bufbuild/protobuf";
import { StructSchema, timestampNow } from "@bufbuild/protobuf/wkt";
import fc from "fast-check";
import { randomUUID } from "node:crypto";
import { describe, expect, it } from "vitest";
import {
  AnalyticsService,
  LogDeviceStateChangeRequestSchema,
  LogErrorRequestSchema,
  LogEventsRequestSchema,
  LogJobOutcomeRequestSchema,
  LogUserActivityRequestSchema,
  ResolveErrorRequestSchema,
} from "../../sdk/src/gen/analytics/v1/analytics_service_pb.js";
import { MAX_EVENTS_PER_BATCH } from "../../src/ingest/log-events.js";
import {
  largestValidMessageBytes,
  messageCaps,
  MIN_CAP_BYTES,
  PROBE_MESSAGE_BYTES,
  QUERY_MESSAGE_BYTES,
  STRING_LIMITS,
  STRUCT_BYTES_PER_JSON_BYTE,
} from "../../src/server/message-caps.js";
import { INTEGER_COLUMN_MAX, MAX_JSON_BYTES, validate, type Rules } from "../../src/validation/field-rules.js";
import {
  DEVICE_STATE_CHANGE_RULES,
  ERROR_RULES,
  JOB_OUTCOME_RULES,
  RESOLVE_ERROR_RULES,
  USER_ACTIVITY_RULES,
} from "../../src/validation/request-rules.js";

/** Each capped single-event request with its rules. */
const REQUESTS: [DescMessage, Rules<never>][] = [
  [LogUserActivityRequestSchema, USER_ACTIVITY_RULES as Rules<never>],
  [LogErrorRequestSchema, ERROR_RULES as Rules<never>],
  [LogDeviceStateChangeRequestSchema, DEVICE_STATE_CHANGE_RULES as Rules<never>],
  [LogJobOutcomeRequestSchema, JOB_OUTCOME_RULES as Rules<never>],
  [ResolveErrorRequestSchema, RESOLVE_ERROR_RULES as Rules<never>],
];

const isUuidField = (name: string) => name === "event_id" || name === "error_id";

/** A Struct whose JSON text is at most `MAX_JSON_BYTES`, built of `item` repeated in a list. */
function structOf(item: string, itemJsonBytes: number): JsonObject {
  const n = Math.floor((MAX_JSON_BYTES - '{"a":[]}'.length + 1) / (itemJsonBytes + 1));
  return { a: new Array<unknown>(n).fill(JSON.parse(item)) } as JsonObject;
}

/**
 * The widest valid request of `schema`: every string at its limit in `char`, every Struct at
 * its JSON cap (`struct`), numbers and enums at their largest accepted values.
 */
function widest(schema: DescMessage, char: string, struct: JsonObject): Record<string, unknown> {
  const init: Record<string, unknown> = {};
  for (const f of schema.fields) {
    const limit = STRING_LIMITS[`${schema.typeName}.${f.name}`];
    if (f.fieldKind === "scalar" && f.scalar === ScalarType.STRING) init[f.localName] = isUuidField(f.name) ? randomUUID() : char.repeat(limit!);
    else if (f.fieldKind === "scalar" && f.scalar === ScalarType.BOOL) init[f.localName] = true;
    else if (f.fieldKind === "scalar") init[f.localName] = INTEGER_COLUMN_MAX;
    else if (f.fieldKind === "enum") init[f.localName] = f.enum.values.at(-1)!.number;
    else if (f.fieldKind === "message" && f.message.typeName === "google.protobuf.Timestamp") init[f.localName] = timestampNow();
    else if (f.fieldKind === "message" && f.message.typeName === "google.protobuf.Struct") init[f.localName] = struct;
    else throw new Error(`no widest value for ${f.name}`);
  }
  return init;
}

/** Widest in protobuf: 3-byte characters, and a list of one-digit numbers (11 bytes per 2 of JSON). */
const binaryWidest = (schema: DescMessage) => create(schema, widest(schema, "€", structOf("0", 1)) as never);
/** Widest in JSON: characters written as 6-byte `\uXXXX` escapes, in the strings and the Struct. */
const jsonWidest = (schema: DescMessage) => create(schema, widest(schema, "\u0001", structOf('"\\u0001\\u0001\\u0001\\u0001"', 26)) as never);

describe("STRING_LIMITS", () => {
  it("has an entry for every string field of every capped request", () => {
    for (const [schema] of REQUESTS) {
      for (const f of schema.fields) {
        if (f.fieldKind === "scalar" && f.scalar === ScalarType.STRING) expect(STRING_LIMITS, `${schema.typeName}.${f.name}`).toHaveProperty([`${schema.typeName}.${f.name}`]);
      }
    }
  });

  it("holds each field to the limit its validation rule enforces: the limit passes, one more fails", () => {
    let checked = 0;
    for (const [schema, rules] of REQUESTS) {
      const base = binaryWidest(schema);
      for (const f of schema.fields) {
        const limit = STRING_LIMITS[`${schema.typeName}.${f.name}`];
        if (limit === undefined) continue;
        const at = isUuidField(f.name) ? randomUUID() : "x".repeat(limit);
        expect(at.length).toBe(limit);
        const violationsOf = (value: string) => validate({ ...base, [f.localName]: value } as never, rules).filter((v) => v.field === f.name);
        expect(violationsOf(at), `${f.name} at ${limit}`).toEqual([]);
        expect(violationsOf(at + "x"), `${f.name} at ${limit + 1}`).toHaveLength(1);
        checked++;
      }
    }
    expect(checked).toBe(Object.keys(STRING_LIMITS).length);
  });
});

describe("largestValidMessageBytes", () => {
  for (const [schema, rules] of REQUESTS) {
    it(`${schema.name}: its widest valid request fits, in binary and in JSON, and fills most of the bound`, () => {
      const bound = largestValidMessageBytes(schema);
      for (const message of [binaryWidest(schema), jsonWidest(schema)]) {
        expect(validate(message as never, rules)).toEqual([]);
        expect(toBinary(schema, message).length).toBeLessThanOrEqual(bound);
        expect(Buffer.byteLength(toJsonString(schema, message))).toBeLessThanOrEqual(bound);
      }
      // The bound is the sum of each field's wider encoding: not far above what is reachable
      // (but for ResolveError, whose UUID is ASCII where the bound counts 6 bytes a character:
      // its cap is the 1 KiB floor anyway).
      if (schema === ResolveErrorRequestSchema) return;
      const reachable = Math.max(toBinary(schema, binaryWidest(schema)).length, Buffer.byteLength(toJsonString(schema, jsonWidest(schema))));
      expect(reachable).toBeGreaterThan(0.7 * bound);
    });
  }

  it("LogEvents: 500 of the widest event of any kind", () => {
    const widestEvent = Math.max(
      ...REQUESTS.slice(0, 4).map(([schema]) => Math.max(toBinary(schema, binaryWidest(schema)).length, Buffer.byteLength(toJsonString(schema, jsonWidest(schema))))),
    );
    expect(largestValidMessageBytes(LogEventsRequestSchema)).toBeGreaterThan(MAX_EVENTS_PER_BATCH * widestEvent);
    // ~314 MB: above any global cap the config accepts (256 MiB), which so bounds LogEvents alone.
    expect(largestValidMessageBytes(LogEventsRequestSchema)).toBeGreaterThan(256 * 1024 * 1024);
  });
});

describe("Struct size", () => {
  const structBytes = (json: JsonObject) => toBinary(StructSchema, fromJson(StructSchema, json)).length;
  const jsonBytes = (json: JsonObject) => Buffer.byteLength(JSON.stringify(json));

  it(`takes at most ${STRUCT_BYTES_PER_JSON_BYTE} protobuf bytes per JSON byte (random JSON)`, () => {
    fc.assert(
      fc.property(fc.dictionary(fc.string(), fc.jsonValue({ maxDepth: 6 })), (json) => {
        const object = JSON.parse(JSON.stringify(json)) as JsonObject; // as a request would carry it (no -0)
        expect(structBytes(object)).toBeLessThanOrEqual(STRUCT_BYTES_PER_JSON_BYTE * jsonBytes(object));
      }),
      { seed: 19, numRuns: 2000 },
    );
  });

  it("comes close to it with a list of one-digit numbers", () => {
    const worst = structOf("0", 1);
    expect(jsonBytes(worst)).toBeLessThanOrEqual(MAX_JSON_BYTES);
    const ratio = structBytes(worst) / jsonBytes(worst);
    expect(ratio).toBeGreaterThan(5.4);
    expect(ratio).toBeLessThanOrEqual(STRUCT_BYTES_PER_JSON_BYTE);
  });
});

describe("messageCaps", () => {
  const path = (m: { parent: { typeName: string }; name: string }) => `/${m.parent.typeName}/${m.name}`;
  const caps = messageCaps({ maxMessageBytes: 4 * 1024 * 1024, metricsMessageBytes: 1024 * 1024 });

  it("gives each Log* call its own bound, LogEvents the global one, the metrics calls theirs", () => {
    expect(caps.get(path(AnalyticsService.method.logError))).toBe(largestValidMessageBytes(LogErrorRequestSchema));
    expect(caps.get(path(AnalyticsService.method.logUserActivity))).toBe(largestValidMessageBytes(LogUserActivityRequestSchema));
    expect(caps.get(path(AnalyticsService.method.logEvents))).toBe(4 * 1024 * 1024);
    expect(caps.get(path(AnalyticsService.method.streamDeviceMetrics))).toBe(1024 * 1024);
    expect(caps.get(path(AnalyticsService.method.ingestDeviceMetrics))).toBe(1024 * 1024);
    expect(caps.get(path(AnalyticsService.method.resolveError))).toBe(MIN_CAP_BYTES);
    expect(caps.get("/analytics.v1.MetricsService/GetDeviceMetrics")).toBe(QUERY_MESSAGE_BYTES);
    expect(caps.get("/grpc.health.v1.Health/Check")).toBe(PROBE_MESSAGE_BYTES);
    expect(caps.get("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo")).toBe(PROBE_MESSAGE_BYTES);
  });

  it("never exceeds the global cap", () => {
    const small = messageCaps({ maxMessageBytes: 100_000, metricsMessageBytes: 1024 * 1024 });
    expect(Math.max(...small.values())).toBe(100_000);
    expect(small.get(path(AnalyticsService.method.streamDeviceMetrics))).toBe(100_000);
  });
});
