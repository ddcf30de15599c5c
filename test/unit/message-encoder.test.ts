import { describe, expect, it } from "vitest";
import { create, toBinary, type DescMessage, type JsonObject, type MessageShape } from "@bufbuild/protobuf";
import { WireType } from "@bufbuild/protobuf/wire";
import { ListValueSchema, StructSchema, TimestampSchema, ValueSchema } from "@bufbuild/protobuf/wkt";
import { compileEncoder } from "../../sdk/src/wire/message-encoder.js";
import {
  EventResultSchema,
  EventSchema,
  IngestDeviceMetricsRequestSchema,
  LogEventsRequestSchema,
  LogEventsResponseSchema,
  MetricSampleSchema,
  SampleColumnsSchema,
  StreamDeviceMetricsRequestSchema,
} from "../../sdk/src/gen/analytics/v1/analytics_service_pb.js";
import { seededRandom } from "../support/seeded-random.js";
import { AllKindsSchema, generators, message, proto2Registry, randomMessage, unsupportedSchemas } from "../support/random-messages.js";

// The compiled encoder must write exactly the bytes protobuf-es's `toBinary` writes, so every
// property below compares the two on the same message; a failure names the seed to replay.

const SEEDS = [1, 2, 3, 42, 20_260_101];

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

/** The encoder's bytes equal `toBinary`'s, or both throw the same error. */
function expectSameAsToBinary<Desc extends DescMessage>(schema: Desc, msg: MessageShape<Desc>, label = ""): void {
  const encode = encoders.get(schema) ?? compileEncoder(schema);
  encoders.set(schema, encode);
  let expected: Uint8Array | Error;
  try {
    expected = toBinary(schema, msg);
  } catch (err) {
    expected = err as Error;
  }
  let actual: Uint8Array | Error;
  try {
    actual = encode(msg as never);
  } catch (err) {
    actual = err as Error;
  }
  if (expected instanceof Error) {
    expect(actual, label).toBeInstanceOf(Error);
    expect((actual as Error).message, label).toBe(expected.message);
  } else {
    expect(actual, label).toBeInstanceOf(Uint8Array);
    expect(hex(actual as Uint8Array), label).toBe(hex(expected));
  }
}
const encoders = new Map<DescMessage, (m: never) => Uint8Array>();

describe("compileEncoder: the same bytes as toBinary", () => {
  it("encodes random LogEventsRequest batches of every event kind exactly as toBinary", () => {
    for (const seed of SEEDS) {
      const g = generators(seededRandom(seed));
      for (let i = 0; i < 60; i++) expectSameAsToBinary(LogEventsRequestSchema, g.request(), `seed ${seed} #${i}`);
    }
  });

  it("encodes random messages of every scalar, enum, list, oneof, optional, nested and well-known kind as toBinary", () => {
    for (const seed of SEEDS) {
      const random = seededRandom(seed);
      for (let i = 0; i < 150; i++) expectSameAsToBinary(AllKindsSchema, randomMessage(AllKindsSchema, random, 3), `seed ${seed} #${i}`);
    }
  });

  it("encodes the other analytics messages without maps as toBinary", () => {
    for (const seed of SEEDS) {
      const random = seededRandom(seed);
      for (const schema of [SampleColumnsSchema, EventResultSchema, LogEventsResponseSchema, TimestampSchema]) {
        for (let i = 0; i < 20; i++) expectSameAsToBinary(schema as DescMessage, randomMessage(schema, random, 2), `${schema.typeName} seed ${seed} #${i}`);
      }
    }
  });

  it("writes lengths at every varint boundary, for strings, nested messages and Struct payloads", () => {
    for (const n of [0, 1, 127, 128, 129, 16_383, 16_384, 16_385, 2_097_151, 2_097_152]) {
      const s = "x".repeat(n);
      const event = create(EventSchema, { kind: { case: "error", value: { errorMessage: s, context: { k: s, l: [s, { m: s }] } } } });
      expectSameAsToBinary(EventSchema, event, `${n} bytes`);
      expectSameAsToBinary(LogEventsRequestSchema, create(LogEventsRequestSchema, { events: [event, event] }), `${n} bytes, two events`);
    }
  });

  it("encodes Struct payloads as protobuf-es does: key order, empty keys, nesting, and values JSON has no form for", () => {
    const payloads: JsonObject[] = [
      {},
      { b: 1, a: 2, "10": 3, "2": 4, "": 5, "-1": 6 }, // integer-like keys first, as Object.entries gives them
      { n: null, t: true, f: false, z: 0, nz: -0, nan: Number.NaN, inf: -Infinity, big: 1e308, tiny: 5e-324 },
      { list: [], nested: { a: { b: { c: [[], [[]], {}, null] } } } },
      { "é😀\uFEFF": "\uD800 lone", "\u0000": "\n\t\"\\" },
      // Not JSON, but what a caller may pass: protobuf-es writes an empty Value or an empty Struct.
      { u: undefined as never, f: (() => 1) as never, big: 10n as never, d: new Date(0) as never, m: new Map([["a", 1]]) as never, s: Symbol("s") as never },
      null as never, // an empty Struct
    ];
    const event = (extraData: unknown) => create(EventSchema, { kind: { case: "deviceStateChange", value: { deviceId: "d", extraData: extraData as never } } });
    for (const extraData of payloads) expectSameAsToBinary(EventSchema, event(extraData), Object.keys(extraData ?? {}).join(","));
    // Not an object where a Struct belongs: both refuse it (protobuf-es with an error of its own).
    const encode = compileEncoder(EventSchema);
    for (const bad of [[1, "two"], "text", 5, true]) {
      expect(() => toBinary(EventSchema, event(bad))).toThrow();
      expect(() => encode(event(bad))).toThrow(/LogDeviceStateChangeRequest\.extra_data to binary: a google\.protobuf\.Struct must be a JSON object/);
    }
  });

  it("writes -0 for a double or float field (only +0 is its zero) and 0 in a oneof or an optional field", () => {
    for (const init of [{ sDouble: -0 }, { sFloat: -0 }, { cInt32: 0 }, { cString: "" }, { oInt32: 0 }, { oString: "" }, { oBytes: new Uint8Array(0) }, { sEnum: 0 }]) {
      const { cInt32, cString, ...rest } = init as Record<string, unknown>;
      const shaped = cInt32 !== undefined ? { choice: { case: "cInt32", value: cInt32 } } : cString !== undefined ? { choice: { case: "cString", value: cString } } : rest;
      expectSameAsToBinary(AllKindsSchema, create(AllKindsSchema, shaped as never), JSON.stringify(init));
    }
  });

  it("keeps unknown fields, after the known ones, as toBinary does", () => {
    const msg = create(EventSchema, { kind: { case: "error", value: { errorMessage: "x" } } });
    (msg as { $unknown?: unknown }).$unknown = [
      { no: 99, wireType: WireType.Varint, data: Uint8Array.of(0x96, 0x01) },
      { no: 100, wireType: WireType.LengthDelimited, data: Uint8Array.of(2, 0x61, 0x62) },
    ];
    (msg.kind.value as { $unknown?: unknown }).$unknown = [{ no: 77, wireType: WireType.Bit32, data: Uint8Array.of(1, 2, 3, 4) }];
    expectSameAsToBinary(EventSchema, msg);
  });

  it("encodes and refuses values of the wrong JavaScript type exactly as toBinary", () => {
    const odd: Record<string, unknown[]> = {
      sInt32: [1.5, 2 ** 31, -(2 ** 31) - 1, "7", "x", Number.NaN, 3n, true],
      sUint32: [-1, 2 ** 32, 1.5, "9", null],
      sSint32: [2 ** 31, -5, "3"],
      sFixed32: [-1, 2 ** 32, 7],
      sSfixed32: [2 ** 31, -7],
      sFloat: [1e39, -1e39, Number.NaN, Infinity, "1.5", "x", 0.1],
      sDouble: ["2.5", true, null],
      sInt64: [1, -1, "12", "-9223372036854775808", "x", 1.5, 2n ** 63n, 2n ** 32n - 1n, 2n ** 32n, 2n ** 53n - 1n, 2n ** 53n, 2n ** 35n + 127n],
      sUint64: [-1n, "18446744073709551615", 5, 2n ** 32n, 2n ** 53n - 1n, 2n ** 53n, 2n ** 64n - 1n],
      sString: [5, null, {}],
      sBool: [1, "false", 0, ""],
      sBytes: ["abc", [1, 2]],
      sEnum: [1.5, 2 ** 31, "1", -5],
    };
    for (const [field, values] of Object.entries(odd)) {
      for (const value of values) {
        const msg = create(AllKindsSchema);
        (msg as Record<string, unknown>)[field] = value;
        expectSameAsToBinary(AllKindsSchema, msg, `${field} = ${String(value)}`);
        const list = create(AllKindsSchema);
        const listField = "r" + field.slice(1);
        if (listField in list) {
          (list as Record<string, unknown>)[listField] = [value, value];
          expectSameAsToBinary(AllKindsSchema, list, `${listField} = [${String(value)}, ...]`);
        }
      }
    }
  });

  it("gives a fresh result each time (the output buffer is reused, the result is not), and recovers after a refusal", () => {
    const encode = compileEncoder(EventSchema);
    const a = encode(create(EventSchema, { kind: { case: "error", value: { errorMessage: "first" } } }));
    const copy = Uint8Array.from(a);
    expect(() => encode(create(EventSchema, { kind: { case: "userActivity", value: { durationMs: -1 } } }))).toThrow(/invalid uint32/);
    const b = encode(create(EventSchema, { kind: { case: "error", value: { errorMessage: "second" } } }));
    expect(hex(a)).toBe(hex(copy));
    expectSameAsToBinary(EventSchema, create(EventSchema, { kind: { case: "error", value: { errorMessage: "second" } } }));
    expect(hex(b)).toBe(hex(toBinary(EventSchema, create(EventSchema, { kind: { case: "error", value: { errorMessage: "second" } } }))));
  });
});

describe("compileEncoder: refused at compile time", () => {
  const refusal = (schema: DescMessage): Error => {
    let error: unknown;
    try {
      compileEncoder(schema);
    } catch (err) {
      error = err;
    }
    expect(error, schema.typeName).toBeInstanceOf(Error);
    return error as Error;
  };

  it("refuses maps (Struct itself, analytics messages that reach one), wrapper types, Value and ListValue fields, Struct in a list or oneof, groups, proto2, also when reached indirectly", () => {
    for (const [schema, says] of unsupportedSchemas(StructSchema, ValueSchema, ListValueSchema)) expect(refusal(schema).message, schema.typeName).toMatch(says);
    for (const schema of [MetricSampleSchema, StreamDeviceMetricsRequestSchema, IngestDeviceMetricsRequestSchema]) expect(refusal(schema).message).toMatch(/a map field/);
    expect(refusal(message(proto2Registry, "test.decoder2.Plain")).message).toMatch(/test\.decoder2\.Plain.*proto2/);
  });
});
