import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { fromBinary, toBinary, type DescMessage } from "@bufbuild/protobuf";
import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { AnalyticsService, EventSchema } from "../../sdk/src/gen/analytics/v1/analytics_service_pb.js";
import { isBinaryFastPathRequest } from "../../src/wire/log-events-wire.js";
import { fromUnaryWire, UNARY_WIRE_METHODS, unaryWireMethod } from "../../src/wire/unary-log-wire.js";
import { concat } from "../support/bytes.js";
import { seededRandom } from "../support/seeded-random.js";
import { generators } from "../support/random-messages.js";

// The unary Log* requests read through their wire types must be exactly what protobuf-es's
// `fromBinary` of the generated types gives, merges included (a message sent as two encodings
// one after the other merges: scalars keep the last, Struct fields merge their keys).

const SEEDS = [1, 2, 3, 42, 20_260_101];

/** Through the wire type, as the server reads a binary unary call. */
function viaWire(schema: DescMessage, bytes: Uint8Array): unknown {
  const method = UNARY_WIRE_METHODS.find((m) => m.input === schema)!;
  return fromUnaryWire(schema, fromBinary(unaryWireMethod(method).input, bytes));
}

/** Random requests of the four methods, each as its generated schema and encoding. */
function randomRequests(seed: number, count: number): [DescMessage, Uint8Array][] {
  const g = generators(seededRandom(seed));
  const out: [DescMessage, Uint8Array][] = [];
  while (out.length < count) {
    const event = g.event();
    if (event.kind.case === undefined) continue;
    // An event's oneof member is field `n` of Event: its bytes are the request's encoding.
    const schema = UNARY_WIRE_METHODS.find((m) => m.input.typeName === event.kind.value!.$typeName)!.input;
    out.push([schema, toBinary(schema, event.kind.value as never)]);
  }
  return out;
}

describe("unary Log* wire types", () => {
  it("cover the four unary methods with a Struct field, on their own paths, for binary encodings only", () => {
    expect(UNARY_WIRE_METHODS.map((m) => m.name)).toEqual(["LogUserActivity", "LogError", "LogDeviceStateChange", "LogJobOutcome"]);
    for (const m of UNARY_WIRE_METHODS) {
      const wire = unaryWireMethod(m);
      expect(wire.name).toBe(m.name);
      expect(wire.parent).toBe(AnalyticsService);
      // Every field but the Struct ones keeps its name, number and kind.
      for (const field of m.input.fields) {
        const same = wire.input.fields.find((f) => f.number === field.number)!;
        expect(same.localName).toBe(field.localName);
        expect(same.fieldKind).toBe(field.message?.typeName === "google.protobuf.Struct" ? "list" : field.fieldKind);
      }
      const path = `/analytics.v1.AnalyticsService/${m.name}`;
      expect(isBinaryFastPathRequest("POST", path, "application/proto")).toBe(true);
      expect(isBinaryFastPathRequest("POST", path, "application/grpc+proto")).toBe(true);
      expect(isBinaryFastPathRequest("POST", path, "application/json")).toBe(false);
      expect(isBinaryFastPathRequest("GET", path, "application/proto")).toBe(false);
    }
    expect(isBinaryFastPathRequest("POST", "/analytics.v1.AnalyticsService/ResolveError", "application/proto")).toBe(false);
    expect(isBinaryFastPathRequest("POST", "/analytics.v1.AnalyticsService/LogEvents", "application/grpc")).toBe(true);
  });

  it("decode random requests exactly as fromBinary, alone and merged in pairs", () => {
    for (const seed of SEEDS) {
      const requests = randomRequests(seed, 200);
      for (const [schema, bytes] of requests) expect(viaWire(schema, bytes)).toEqual(fromBinary(schema, bytes));
      for (let i = 0; i + 1 < requests.length; i++) {
        const [schema, first] = requests[i]!;
        const second = requests.slice(i + 1).find(([s]) => s === schema)?.[1];
        if (second === undefined) continue;
        const both = concat(first, second);
        expect(viaWire(schema, both)).toEqual(fromBinary(schema, both));
      }
    }
  });

  it("merge a Struct field sent many times as fromBinary does, keys replaced in place, __proto__ never a prototype", () => {
    const schema = AnalyticsService.method.logError.input;
    const w = new BinaryWriter().tag(4, WireType.LengthDelimited).string("boom");
    for (let i = 0; i < 50; i++) {
      // context (field 8): { k<i % 7>: i, "__proto__": i }
      const entry = (key: string, x: number) =>
        new BinaryWriter()
          .tag(1, WireType.LengthDelimited)
          .bytes(new BinaryWriter().tag(1, WireType.LengthDelimited).string(key).tag(2, WireType.LengthDelimited).bytes(new BinaryWriter().tag(2, WireType.Bit64).double(x).finish()).finish())
          .finish();
      w.tag(8, WireType.LengthDelimited).bytes(concat(entry(`k${i % 7}`, i), entry("__proto__", i)));
    }
    const bytes = w.finish();
    const expected = fromBinary(schema, bytes);
    const actual = viaWire(schema, bytes) as typeof expected;
    // protobuf-es assigns each key, so "__proto__" sets (and here, with a number, fails to set)
    // the prototype and is lost; the wire path keeps it as data, as the LogEvents fast path does.
    const { context, ...rest } = actual;
    const { context: expectedContext, ...expectedRest } = expected;
    expect(rest).toEqual(expectedRest);
    expect(Object.keys(context!).filter((k) => k !== "__proto__")).toEqual(Object.keys(expectedContext!));
    for (const key of Object.keys(expectedContext!)) expect(context![key]).toEqual(expectedContext![key]);
    expect(Object.getPrototypeOf(context)).toBe(Object.prototype);
    expect(Object.hasOwn(context!, "__proto__")).toBe(true);
    expect(Object.getOwnPropertyDescriptor(context, "__proto__")?.value).toBe(49);
  });

  it("refuse a malformed Struct occurrence as InvalidArgument naming the field (protobuf-es: Internal, before any handler)", () => {
    const schema = AnalyticsService.method.logError.input;
    // context (field 8): a map entry whose length runs past the Struct's end
    const bytes = new BinaryWriter().tag(4, WireType.LengthDelimited).string("boom").tag(8, WireType.LengthDelimited).bytes(Uint8Array.of(0x0a, 0x7f, 0x01)).finish();
    expect(() => fromBinary(schema, bytes)).toThrow();
    let caught: unknown;
    try {
      viaWire(schema, bytes);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(ConnectError);
    expect((caught as ConnectError).code).toBe(Code.InvalidArgument);
    expect((caught as ConnectError).rawMessage).toMatch(/context/);
  });

  it("leave a request without its Struct field without it", () => {
    const schema = AnalyticsService.method.logJobOutcome.input;
    const bytes = new BinaryWriter().tag(1, WireType.LengthDelimited).string("job").finish();
    const actual = viaWire(schema, bytes) as Record<string, unknown>;
    expect("extraData" in actual).toBe(false);
    expect(actual.$typeName).toBe("analytics.v1.LogJobOutcomeRequest");
  });
});

// EventSchema's oneof members are the four request types: keeps this file honest if one is added.
it("the four request types are Event's kinds", () => {
  expect(EventSchema.oneofs[0]!.fields.map((f) => f.message!.typeName).sort()).toEqual(UNARY_WIRE_METHODS.map((m) => m.input.typeName).sort());
});
