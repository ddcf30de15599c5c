import { describe, expect, it } from "vitest";
import {
  create,
  fromBinary,
  fromJson,
  toBinary,
  type DescMessage,
  type JsonObject,
  type JsonValue,
  type MessageShape,
} from "@bufbuild/protobuf";
import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { ListValueSchema, StructSchema, TimestampSchema, ValueSchema, type Timestamp } from "@bufbuild/protobuf/wkt";
import { compileDecoder, WireFormatError, type MessageDecoder } from "../../src/wire/message-decoder.js";
import {
  EventResultSchema,
  EventSchema,
  IngestDeviceMetricsRequestSchema,
  LogErrorRequestSchema,
  LogEventsRequestSchema,
  LogEventsResponseSchema,
  LogJobOutcomeRequestSchema,
  LogUserActivityRequestSchema,
  MetricSampleSchema,
  SampleColumnsSchema,
  StreamDeviceMetricsRequestSchema,
  type Event,
} from "../../sdk/src/gen/analytics/v1/analytics_service_pb.js";
import { ActivityType, JobStatus } from "../../sdk/src/gen/analytics/v1/common_pb.js";
import { inspect } from "node:util";
import { concat } from "../support/bytes.js";
import { seededRandom } from "../support/seeded-random.js";
import { AllKindsSchema, generators, message, proto2Registry, randomMessage, unsupportedSchemas } from "../support/random-messages.js";

// The compiled decoder must give exactly what protobuf-es's `fromBinary` gives (minus `$unknown`),
// so every property below compares the two on the same bytes; a failure names the seed to replay.

const SEEDS = [1, 2, 3, 42, 20_260_101];

const decodeRequest = compileDecoder(LogEventsRequestSchema);
const decodeEvent = compileDecoder(EventSchema);

// ---------------------------------------------------------------------------------------------
// Helpers

const bigintSafe = (_key: string, v: unknown) => (typeof v === "bigint" ? `${v}n` : v);

/** The decoder's result on `bytes` equals `fromBinary`'s, key order (the stored JSON text) included. */
function expectSameAsProtobufEs<Desc extends DescMessage>(schema: Desc, bytes: Uint8Array, decode: MessageDecoder<Desc> = compileDecoder(schema)): MessageShape<Desc> {
  const expected = fromBinary(schema, bytes);
  const actual = decode(bytes);
  expectIdentical(actual, expected);
  return actual;
}

/**
 * Deep equality stricter than toStrictEqual: same prototypes, same own keys in the same order (the
 * stored JSON text depends on it), Object.is for values. (toStrictEqual also compares `constructor`
 * properties, which breaks on a Struct key "constructor".)
 */
function expectIdentical(actual: unknown, expected: unknown): void {
  const difference = firstDifference(actual, expected, "$");
  if (difference !== undefined) expect(actual).toEqual(expected); // a readable diff when it shows one
  expect(difference).toBeUndefined();
}

function firstDifference(a: unknown, b: unknown, path: string): string | undefined {
  if (Object.is(a, b)) return undefined;
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return `${path}: ${inspect(a)} is not ${inspect(b)}`;
  if (Object.getPrototypeOf(a) !== Object.getPrototypeOf(b)) return `${path}: different prototypes`;
  const keysA = Reflect.ownKeys(a);
  const keysB = Reflect.ownKeys(b);
  if (keysA.length !== keysB.length || keysA.some((k, i) => k !== keysB[i])) return `${path}: keys ${inspect(keysA)} are not ${inspect(keysB)}`;
  for (const k of keysA) {
    const difference = firstDifference((a as Record<PropertyKey, unknown>)[k], (b as Record<PropertyKey, unknown>)[k], `${path}.${String(k)}`);
    if (difference !== undefined) return difference;
  }
  return undefined;
}

function wireFormatErrorOf(decode: (bytes: Uint8Array) => unknown, bytes: Uint8Array): WireFormatError {
  let error: unknown;
  try {
    decode(bytes);
  } catch (err) {
    error = err;
  }
  expect(error).toBeInstanceOf(WireFormatError);
  expect((error as WireFormatError).name).toBe("WireFormatError");
  return error as WireFormatError;
}

const esThrows = (schema: DescMessage, bytes: Uint8Array): boolean => {
  try {
    fromBinary(schema, bytes);
    return false;
  } catch {
    return true;
  }
};

/**
 * On any bytes the decoder either throws WireFormatError (and then protobuf-es fails too), or
 * returns what protobuf-es returns (without `$unknown`). Returns whether the bytes decoded.
 */
function expectSameOutcome(schema: DescMessage, decode: (bytes: Uint8Array) => unknown, bytes: Uint8Array): boolean {
  let expected: unknown;
  let esError: unknown;
  try {
    expected = fromBinary(schema, bytes);
  } catch (err) {
    esError = err;
  }
  let actual: unknown;
  let ourError: unknown;
  try {
    actual = decode(bytes);
  } catch (err) {
    ourError = err;
  }
  if (ourError !== undefined) expect(ourError).toBeInstanceOf(WireFormatError);
  expect({ decoded: ourError === undefined }).toEqual({ decoded: esError === undefined });
  if (ourError === undefined) expectIdentical(actual, withoutUnknown(expected));
  return ourError === undefined;
}

/**
 * `value` as a binary round trip gives it back: a lone surrogate is encoded as U+FFFD, and one
 * leading byte order mark is dropped when decoded (protobuf-es's TextDecoder; the decoder matches it).
 * Struct keys alike (two keys may become one: the later value wins, in the first one's place).
 */
function asSentOnTheWire(value: unknown): unknown {
  const text = (s: string) => s.replace(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g, "\uFFFD").replace(/^\uFEFF/, "");
  if (typeof value === "string") return text(value);
  if (Array.isArray(value)) return value.map(asSentOnTheWire);
  if (value === null || typeof value !== "object" || value instanceof Uint8Array) return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[text(k)] = asSentOnTheWire(v);
  return out;
}

/** Drops `$unknown` from every message (protobuf-es keeps unknown fields, the decoder skips them). */
function withoutUnknown(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(withoutUnknown);
  if (value === null || typeof value !== "object" || value instanceof Uint8Array) return value;
  const isMessage = typeof (value as { $typeName?: unknown }).$typeName === "string";
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) if (!(isMessage && k === "$unknown")) out[k] = withoutUnknown(v);
  return out;
}

const bytesOf = (...b: number[]) => Uint8Array.from(b);
const w = () => new BinaryWriter();
/** Field `no` as a length-delimited payload. */
const ld = (no: number, payload: Uint8Array) => w().tag(no, WireType.LengthDelimited).bytes(payload).finish();
/** A Struct map entry (key = 1, value = 2) as field 1 of a Struct. */
const entry = (key: Uint8Array, value: Uint8Array) => ld(1, concat(ld(1, key), ld(2, value)));
const utf8 = (s: string) => new TextEncoder().encode(s);
const valueBytes = (json: JsonValue) => toBinary(ValueSchema, fromJson(ValueSchema, json));
const structBytes = (json: JsonObject) => toBinary(StructSchema, fromJson(StructSchema, json));
/** An Event holding a user activity whose extra_data (field 7) is the given Struct bytes. */
const eventWithExtraData = (struct: Uint8Array, activity: Uint8Array = new Uint8Array(0)) => ld(1, concat(activity, ld(7, struct)));
const extraDataOf = (e: Event) => (e.kind.case === "userActivity" ? e.kind.value.extraData : undefined);

/** Valid encodings of random events, small enough to cut at every byte. */
function smallEvents(seed: number, count: number): Uint8Array[] {
  const g = generators(seededRandom(seed));
  return Array.from({ length: count }, () => {
    let bytes = toBinary(EventSchema, g.event());
    while (bytes.length > 400) bytes = toBinary(EventSchema, g.event());
    return bytes;
  });
}

// ---------------------------------------------------------------------------------------------

describe("compileDecoder: same objects as fromBinary", () => {
  it("decodes random LogEventsRequest batches of every event kind exactly as fromBinary", () => {
    let events = 0;
    const kinds = new Set<string | undefined>();
    for (const seed of SEEDS) {
      const g = generators(seededRandom(seed));
      for (let n = 0; n < 30; n++) {
        const request = g.request();
        events += request.events.length;
        for (const e of request.events) kinds.add(e.kind.case);
        const bytes = toBinary(LogEventsRequestSchema, request);
        const decoded = expectSameAsProtobufEs(LogEventsRequestSchema, bytes, decodeRequest);
        // And it is the message that was encoded, not only what protobuf-es happens to return.
        expectIdentical(decoded, asSentOnTheWire(request));
      }
    }
    expect(events).toBeGreaterThan(3_000);
    expect([...kinds].sort()).toEqual(["deviceStateChange", "error", "jobOutcome", "userActivity", undefined].sort());
  });

  it("decodes random single Events exactly as fromBinary", () => {
    for (const seed of SEEDS) {
      const g = generators(seededRandom(seed * 7));
      for (let n = 0; n < 300; n++) {
        const event = g.event();
        const bytes = toBinary(EventSchema, event);
        const decoded = expectSameAsProtobufEs(EventSchema, bytes, decodeEvent) as Event;
        expect(decoded.kind.case).toBe(event.kind.case);
      }
    }
  });

  it("decodes an Event with every field set to known values", () => {
    const bytes = toBinary(
      EventSchema,
      create(EventSchema, {
        kind: {
          case: "jobOutcome",
          value: {
            jobId: "job-1", jobType: "device_restart", status: JobStatus.FAILED, deviceId: "dév-😀", durationMs: 0, errorCode: "E",
            errorMessage: "boom", retryCount: 4_000_000_000, initiatedBy: "ops", extraData: { n: 1.5, s: "x", b: false, z: null, l: [1, "a", [], {}], o: { p: { q: true } } },
            occurredAt: { seconds: -5n, nanos: 7 }, eventId: "id",
          },
        },
      }),
    );
    const decoded = decodeEvent(bytes);
    expect(decoded.kind.case).toBe("jobOutcome");
    const job = decoded.kind.value as MessageShape<typeof LogJobOutcomeRequestSchema>;
    expect(job.$typeName).toBe("analytics.v1.LogJobOutcomeRequest");
    expect(job.status).toBe(JobStatus.FAILED);
    expect(job.durationMs).toBe(0); // explicitly set 0 is kept (optional field)
    expect(job.retryCount).toBe(4_000_000_000);
    expect(job.deviceId).toBe("dév-😀");
    expect(job.extraData).toEqual({ n: 1.5, s: "x", b: false, z: null, l: [1, "a", [], {}], o: { p: { q: true } } });
    expect(job.occurredAt).toEqual(create(TimestampSchema, { seconds: -5n, nanos: 7 }));
    expect(job.occurredAt?.seconds).toBe(-5n);
    expectSameAsProtobufEs(EventSchema, bytes, decodeEvent);
  });

  it("gives defaults for an empty message, and leaves optional and message fields absent", () => {
    const empty = decodeEvent(ld(1, new Uint8Array(0)));
    expect(empty).toStrictEqual(fromBinary(EventSchema, ld(1, new Uint8Array(0))));
    const activity = empty.kind.value as MessageShape<typeof LogUserActivityRequestSchema>;
    expect(activity.pageUrl).toBe("");
    expect(activity.activityType).toBe(ActivityType.UNSPECIFIED);
    expect("durationMs" in activity).toBe(false);
    expect(activity.extraData).toBeUndefined();
    expect(decodeRequest(new Uint8Array(0))).toStrictEqual(create(LogEventsRequestSchema));
    expect(decodeEvent(new Uint8Array(0))).toStrictEqual(create(EventSchema));
  });

  it("decodes random messages of every scalar, enum, list, oneof, optional and nested kind as fromBinary", () => {
    const decode = compileDecoder(AllKindsSchema);
    for (const seed of SEEDS) {
      const random = seededRandom(seed * 13);
      for (let n = 0; n < 100; n++) {
        const bytes = toBinary(AllKindsSchema, randomMessage(AllKindsSchema, random, n % 2));
        expectSameAsProtobufEs(AllKindsSchema, bytes, decode);
      }
    }
    // Defaults of every kind, a bytes field's included (an empty Uint8Array, not {}).
    const zero = decode(new Uint8Array(0)) as Record<string, unknown>;
    expect(zero).toStrictEqual(create(AllKindsSchema));
    expect(zero.sBytes).toBeInstanceOf(Uint8Array);
    expect(zero.sInt64).toBe(0n);
    expect(zero.sInt64Str).toBe("0");
  });

  it("decodes the other analytics messages without maps (SampleColumns, EventResult, LogEventsResponse) as fromBinary", () => {
    for (const schema of [SampleColumnsSchema, EventResultSchema, LogEventsResponseSchema] as DescMessage[]) {
      const decode = compileDecoder(schema);
      const random = seededRandom(5);
      for (let n = 0; n < 200; n++) expectSameAsProtobufEs(schema, toBinary(schema, randomMessage(schema, random, 2)), decode);
    }
  });

  it("reads input that is a view into a larger buffer, and a Node Buffer", () => {
    const g = generators(seededRandom(99));
    for (let n = 0; n < 15; n++) {
      const bytes = toBinary(LogEventsRequestSchema, g.request());
      const big = new Uint8Array(bytes.length + 20).fill(0xff); // garbage around it
      big.set(bytes, 7);
      const view = big.subarray(7, 7 + bytes.length);
      expectIdentical(decodeRequest(view), fromBinary(LogEventsRequestSchema, view));
      const buffer = Buffer.concat([Buffer.from("prefix"), Buffer.from(bytes)]).subarray(6);
      expectIdentical(decodeRequest(buffer), fromBinary(LogEventsRequestSchema, buffer));
      expect(decodeRequest(buffer)).toEqual(fromBinary(LogEventsRequestSchema, bytes));
    }
  });

  it("returns a fresh object graph on every call (no defaults shared between messages)", () => {
    const bytes = toBinary(LogEventsRequestSchema, create(LogEventsRequestSchema, { events: [{ kind: { case: "error", value: { errorMessage: "x" } } }] }));
    const first = decodeRequest(bytes);
    const second = decodeRequest(bytes);
    expect(first).not.toBe(second);
    expect(first.events).not.toBe(second.events);
    first.events.push(create(EventSchema));
    (first.events[0]!.kind.value as { errorMessage: string }).errorMessage = "changed";
    expect(second.events).toHaveLength(1);
    expect((second.events[0]!.kind.value as { errorMessage: string }).errorMessage).toBe("x");
    const a = decodeRequest(new Uint8Array(0));
    a.events.push(create(EventSchema));
    expect(decodeRequest(new Uint8Array(0)).events).toEqual([]);
  });
});

describe("compileDecoder: strings", () => {
  it("decodes a genuine U+FFFD (EF BF BD) in a string field, a Struct key and a Struct value", () => {
    const text = "a\uFFFDb\uFFFD";
    const bytes = toBinary(
      EventSchema,
      create(EventSchema, { kind: { case: "userActivity", value: { pageUrl: text, extraData: { [text]: text, l: [text] } } } }),
    );
    expect(Buffer.from(bytes).includes(Buffer.from([0xef, 0xbf, 0xbd]))).toBe(true);
    const decoded = expectSameAsProtobufEs(EventSchema, bytes, decodeEvent) as Event;
    expect(decoded.kind.value).toMatchObject({ pageUrl: text, extraData: { [text]: text, l: [text] } });
  });

  it("drops one leading byte order mark from a string, as protobuf-es's TextDecoder does", () => {
    const bytes = toBinary(
      EventSchema,
      create(EventSchema, { kind: { case: "error", value: { errorMessage: "\uFEFFhi", endpoint: "\uFEFF\uFEFFx", deviceId: "a\uFEFF", context: { "\uFEFFk": "\uFEFFv" } } } }),
    );
    const decoded = expectSameAsProtobufEs(EventSchema, bytes, decodeEvent) as Event;
    expect(decoded.kind.value).toMatchObject({ errorMessage: "hi", endpoint: "\uFEFFx", deviceId: "a\uFEFF", context: { k: "v" } });
  });

  it("decodes short strings seen before to the same text, also after the bytes they came from change", () => {
    // Short strings are interned by their bytes: a later decode of other bytes in the same place
    // must give their text, never the text kept for what was there before.
    const bytes = toBinary(
      EventSchema,
      create(EventSchema, { kind: { case: "deviceStateChange", value: { deviceId: "dev-1", newState: "\uFEFFon", extraData: { region: "eu" } } } }),
    );
    const value = () => (decodeEvent(bytes).kind.value as { deviceId: string; newState: string; extraData: JsonObject });
    for (let i = 0; i < 3; i++) expect(value()).toMatchObject({ deviceId: "dev-1", newState: "on", extraData: { region: "eu" } });
    const at = Buffer.from(bytes).indexOf("dev-1");
    bytes[at] = 0x78; // "xev-1"
    expect(value()).toMatchObject({ deviceId: "xev-1", newState: "on" });
    bytes[at] = 0x64;
    expect(value()).toMatchObject({ deviceId: "dev-1", newState: "on" });
  });

  it("decodes more distinct short strings than the intern table holds, each to itself, in any order", () => {
    const ids = Array.from({ length: 10_000 }, (_, i) => `d${(i * 7919) % 100_003}-${"é".repeat(i % 3)}`);
    const encoded = ids.map((deviceId) => toBinary(EventSchema, create(EventSchema, { kind: { case: "error", value: { deviceId, errorMessage: deviceId.slice(0, 3) } } })));
    for (const order of [ids.keys(), [...ids.keys()].reverse()]) {
      for (const i of order) expect(decodeEvent(encoded[i]!).kind.value).toMatchObject({ deviceId: ids[i], errorMessage: ids[i]!.slice(0, 3) });
    }
  });

  it("refuses invalid UTF-8 in a string field, a Struct key and Struct string values", () => {
    const invalid = [
      [0xc3, 0x28], // a lead byte followed by a non-continuation
      [0x80], // a lone continuation byte
      [0xe2, 0x82], // truncated sequence at the end of the string
      [0xc0, 0xaf], // overlong encoding
      [0xed, 0xa0, 0x80], // an encoded surrogate
      [0xf4, 0x90, 0x80, 0x80], // above U+10FFFF
      [0xff],
      [0xef, 0xbf, 0xbd, 0xc3, 0x28], // a genuine U+FFFD does not excuse a broken sequence after it
    ].map((b) => concat(utf8("ok"), Uint8Array.from(b)));
    for (const bad of invalid) {
      const cases = [
        ld(1, ld(2, bad)), // LogUserActivityRequest.page_url
        ld(2, ld(4, bad)), // LogErrorRequest.error_message
        eventWithExtraData(entry(bad, valueBytes(1))), // Struct key
        eventWithExtraData(entry(utf8("k"), ld(3, bad))), // Value.string_value
        eventWithExtraData(entry(utf8("k"), ld(6, ld(1, ld(3, bad))))), // a string in a ListValue
      ];
      for (const bytes of cases) {
        expect(wireFormatErrorOf(decodeEvent, bytes).message).toMatch(/UTF-8/);
        expect(esThrows(EventSchema, bytes)).toBe(true); // protobuf-es refuses it too (proto3 strings are validated)
      }
    }
  });
});

describe("compileDecoder: unknown fields", () => {
  /** One unknown field of every wire type (groups nested), numbers the messages do not use. */
  const unknownFields = () =>
    concat(
      w().tag(100, WireType.Varint).uint64(2n ** 64n - 1n).finish(),
      w().tag(101, WireType.Bit64).fixed64(123n).finish(),
      w().tag(102, WireType.LengthDelimited).string("skipped 😀").finish(),
      w().tag(103, WireType.Bit32).fixed32(7).finish(),
      w().tag(104, WireType.StartGroup).tag(1, WireType.Varint).uint32(5).tag(2, WireType.StartGroup).tag(3, WireType.Bit32).fixed32(1).tag(2, WireType.EndGroup).tag(4, WireType.LengthDelimited).bytes(bytesOf(1, 2)).tag(104, WireType.EndGroup).finish(),
      w().tag(536_870_911, WireType.Varint).uint32(1).finish(),
      w().tag(105, WireType.LengthDelimited).bytes(new Uint8Array(0)).finish(),
    );

  it("skips unknown fields of every wire type around and between the known ones, at every level", () => {
    const g = generators(seededRandom(17));
    for (let n = 0; n < 200; n++) {
      const event = g.event();
      const known = toBinary(EventSchema, event);
      const withUnknown = [concat(unknownFields(), known), concat(known, unknownFields()), concat(unknownFields(), known, unknownFields())];
      for (const bytes of withUnknown) {
        const decoded = decodeEvent(bytes);
        expectIdentical(decoded, withoutUnknown(fromBinary(EventSchema, bytes)));
        expectIdentical(decoded, fromBinary(EventSchema, known));
        expect("$unknown" in decoded).toBe(false);
      }
    }
    // Inside the event kind's message, a Timestamp, and the request around it.
    const activity = toBinary(LogUserActivityRequestSchema, create(LogUserActivityRequestSchema, { pageUrl: "/p", durationMs: 5 }));
    const timestamp = concat(unknownFields(), toBinary(TimestampSchema, create(TimestampSchema, { seconds: 9n, nanos: 1 })), unknownFields());
    const event = ld(1, concat(unknownFields(), activity, ld(8, timestamp), unknownFields()));
    const request = concat(unknownFields(), ld(1, event), unknownFields(), ld(1, event));
    const decoded = decodeRequest(request);
    expectIdentical(decoded, withoutUnknown(fromBinary(LogEventsRequestSchema, request)));
    expect(decoded.events).toHaveLength(2);
    expect(decoded.events[1]!.kind.value).toMatchObject({ pageUrl: "/p", durationMs: 5, occurredAt: { seconds: 9n, nanos: 1 } });
    expect(JSON.stringify(decoded, bigintSafe)).not.toContain("unknown");
  });

  it("skips unknown fields inside Struct, Value and ListValue", () => {
    const unknown7 = w().tag(7, WireType.Varint).uint32(1).tag(7, WireType.LengthDelimited).string("x").finish(); // Value has fields 1-6
    const unknown2 = w().tag(2, WireType.Varint).uint32(1).tag(2, WireType.LengthDelimited).string("x").finish(); // Struct, ListValue: field 1
    const struct = concat(
      unknown2,
      entry(utf8("b"), concat(unknown7, valueBytes("x"), unknown7)),
      entry(utf8("c"), ld(6, concat(unknown2, ld(1, valueBytes(null)), unknown2))),
      unknownFields(),
      entry(utf8("a"), concat(unknownFields(), valueBytes(1), unknownFields())), // Value with unknown fields
      entry(utf8("l"), ld(6, concat(unknownFields(), ld(1, valueBytes("x")), unknownFields(), ld(1, valueBytes(true))))), // ListValue
      unknownFields(),
    );
    const bytes = eventWithExtraData(struct);
    expect(extraDataOf(decodeEvent(bytes))).toStrictEqual({ b: "x", c: [null], a: 1, l: ["x", true] });
    expect(decodeEvent(bytes)).toStrictEqual(withoutUnknown(fromBinary(EventSchema, bytes)));
  });

  it("skips unknown fields inside a Struct map entry (protobuf-es cannot: it does not skip them)", () => {
    const unknown3 = w().tag(3, WireType.LengthDelimited).string("x").tag(3, WireType.Varint).uint32(1).finish();
    const struct = ld(1, concat(ld(1, utf8("k")), unknownFields(), unknown3, ld(2, valueBytes("v")), unknownFields()));
    expect(extraDataOf(decodeEvent(eventWithExtraData(struct)))).toStrictEqual({ k: "v" });
  });

  it("takes a map entry's missing key or value as its default (\"\" and null)", () => {
    const struct = concat(ld(1, ld(2, valueBytes(1))), ld(1, ld(1, utf8("novalue"))), ld(1, new Uint8Array(0)));
    const bytes = eventWithExtraData(struct);
    expect(extraDataOf(decodeEvent(bytes))).toStrictEqual({ "": null, novalue: null });
    expect(decodeEvent(bytes)).toStrictEqual(fromBinary(EventSchema, bytes));
  });

  it("takes a Value with no kind as null, as protobuf-es does", () => {
    const bytes = eventWithExtraData(concat(entry(utf8("a"), new Uint8Array(0)), entry(utf8("l"), ld(6, ld(1, new Uint8Array(0))))));
    expect(extraDataOf(decodeEvent(bytes))).toStrictEqual({ a: null, l: [null] });
    expect(decodeEvent(bytes)).toStrictEqual(fromBinary(EventSchema, bytes));
  });
});

describe("compileDecoder: merge semantics", () => {
  it("merges random pairs of encodings exactly as fromBinary (messages merge, scalars keep the last, lists append)", () => {
    const decodeAll = compileDecoder(AllKindsSchema);
    for (const seed of SEEDS) {
      const random = seededRandom(seed * 31);
      const g = generators(random);
      for (let n = 0; n < 100; n++) {
        expectSameAsProtobufEs(EventSchema, concat(toBinary(EventSchema, g.event()), toBinary(EventSchema, g.event())), decodeEvent);
        const a = toBinary(AllKindsSchema, randomMessage(AllKindsSchema, random, 1));
        const b = toBinary(AllKindsSchema, randomMessage(AllKindsSchema, random, 1));
        expectSameAsProtobufEs(AllKindsSchema, concat(a, b, a), decodeAll);
      }
    }
  });

  it("merges a oneof member message sent twice, its Struct and its Timestamp; a scalar keeps the last value", () => {
    const first = toBinary(
      EventSchema,
      create(EventSchema, {
        kind: { case: "userActivity", value: { pageUrl: "/a", sessionId: "s", durationMs: 5, extraData: { x: 1, y: { a: 1 }, keep: "k" }, occurredAt: { seconds: 5n } } },
      }),
    );
    const second = toBinary(
      EventSchema,
      create(EventSchema, {
        kind: { case: "userActivity", value: { pageUrl: "/b", elementId: "e", durationMs: 0, extraData: { y: { b: 2 }, z: true }, occurredAt: { nanos: 7 } } },
      }),
    );
    const decoded = expectSameAsProtobufEs(EventSchema, concat(first, second), decodeEvent) as Event;
    expect(decoded.kind.case).toBe("userActivity");
    const activity = decoded.kind.value as MessageShape<typeof LogUserActivityRequestSchema>;
    expect(activity.pageUrl).toBe("/b");
    expect(activity.sessionId).toBe("s");
    expect(activity.elementId).toBe("e");
    expect(activity.durationMs).toBe(0);
    // A Struct merges as a map: keys from both, a repeated key's value replaced (not merged).
    expect(activity.extraData).toStrictEqual({ x: 1, y: { b: 2 }, keep: "k", z: true });
    expect(Object.keys(activity.extraData!)).toEqual(["x", "y", "keep", "z"]);
    expect(activity.occurredAt).toStrictEqual(create(TimestampSchema, { seconds: 5n, nanos: 7 }));
  });

  it("replaces a oneof member by a different member sent later", () => {
    const first = toBinary(EventSchema, create(EventSchema, { kind: { case: "userActivity", value: { pageUrl: "/a" } } }));
    const second = toBinary(EventSchema, create(EventSchema, { kind: { case: "error", value: { errorMessage: "m" } } }));
    const decoded = expectSameAsProtobufEs(EventSchema, concat(first, second, ld(2, ld(3, utf8("E1")))), decodeEvent) as Event;
    expect(decoded.kind).toStrictEqual({ case: "error", value: create(LogErrorRequestSchema, { errorMessage: "m", errorCode: "E1" }) });
    const back = expectSameAsProtobufEs(EventSchema, concat(second, first), decodeEvent) as Event;
    expect(back.kind).toStrictEqual({ case: "userActivity", value: create(LogUserActivityRequestSchema, { pageUrl: "/a" }) });
  });

  it("merges a Struct field sent twice in one message, and a Value's struct_value / list_value sent twice", () => {
    const valueTwice = concat(ld(5, structBytes({ a: 1, b: 1 })), ld(5, structBytes({ b: 2, c: 3 }))); // struct_value merges
    const listTwice = concat(ld(6, toBinary(ListValueSchema, fromJson(ListValueSchema, [1, "x"]))), ld(6, toBinary(ListValueSchema, fromJson(ListValueSchema, [null]))));
    const lastKindWins = concat(valueBytes(1), valueBytes("s"), valueBytes(true), valueBytes(null), valueBytes(2.5));
    const structThenString = concat(ld(5, structBytes({ a: 1 })), valueBytes("now a string"), ld(5, structBytes({ b: 2 }))); // no merge across kinds
    const struct1 = concat(entry(utf8("v"), valueTwice), entry(utf8("l"), listTwice), entry(utf8("k"), lastKindWins), entry(utf8("s"), structThenString));
    const struct2 = concat(entry(utf8("k"), valueBytes("replaced")), entry(utf8("n"), valueBytes(0)));
    const bytes = ld(1, concat(ld(7, struct1), ld(2, utf8("/p")), ld(7, struct2)));
    const decoded = expectSameAsProtobufEs(EventSchema, bytes, decodeEvent) as Event;
    expect(extraDataOf(decoded)).toStrictEqual({ v: { a: 1, b: 2, c: 3 }, l: [1, "x", null], k: "replaced", s: { b: 2 }, n: 0 });
  });

  it("decodes repeated scalars packed, unpacked and mixed, appending in wire order", () => {
    const decode = compileDecoder(SampleColumnsSchema);
    const bytes = concat(
      ld(1, utf8("cpu")),
      w().tag(3, WireType.LengthDelimited).fork().uint32(0).uint32(1000).uint32(2 ** 32 - 1).join().finish(), // offsets_ms packed
      w().tag(3, WireType.Varint).uint32(5).tag(3, WireType.Varint).uint32(300).finish(), // then unpacked
      w().tag(4, WireType.Bit64).double(1.5).finish(), // values unpacked
      w().tag(4, WireType.LengthDelimited).fork().double(-2).double(Number.NaN).join().finish(), // then packed
      w().tag(3, WireType.LengthDelimited).bytes(new Uint8Array(0)).finish(), // an empty packed run
      ld(1, utf8("temp")),
      w().tag(3, WireType.LengthDelimited).fork().uint32(7).join().finish(),
    );
    const decoded = expectSameAsProtobufEs(SampleColumnsSchema, bytes, decode) as MessageShape<typeof SampleColumnsSchema>;
    expect(decoded.metricNames).toEqual(["cpu", "temp"]);
    expect(decoded.offsetsMs).toEqual([0, 1000, 2 ** 32 - 1, 5, 300, 7]);
    expect(decoded.values).toEqual([1.5, -2, Number.NaN]);
    // An unpacked-by-declaration list read packed, and the other way round.
    const all = compileDecoder(AllKindsSchema);
    const mixed = concat(
      w().tag(33, WireType.LengthDelimited).fork().int32(-1).int32(2).join().finish(),
      w().tag(33, WireType.Varint).int32(3).finish(),
      w().tag(23, WireType.Varint).bool(true).tag(23, WireType.LengthDelimited).fork().bool(false).bool(true).join().finish(), // r_bool
      w().tag(32, WireType.LengthDelimited).fork().int32(-5).int32(42).join().finish(), // r_enum with an unknown value
      w().tag(22, WireType.Bit32).fixed32(9).finish(), // r_fixed32 unpacked
      w().tag(24, WireType.LengthDelimited).string("s1").tag(24, WireType.LengthDelimited).string("").finish(), // r_string
    );
    const m = expectSameAsProtobufEs(AllKindsSchema, mixed, all) as Record<string, unknown>;
    expect(m).toMatchObject({ rInt32Unpacked: [-1, 2, 3], rBool: [true, false, true], rEnum: [-5, 42], rFixed32: [9], rString: ["s1", ""] });
  });
});

describe("compileDecoder: malformed input throws WireFormatError", () => {
  it("at every cut point of valid encodings: throws WireFormatError exactly when fromBinary fails, else equals it", () => {
    let decodedCuts = 0;
    let failedCuts = 0;
    for (const seed of SEEDS) {
      for (const bytes of smallEvents(seed, 8)) {
        for (let cut = 0; cut < bytes.length; cut++) {
          if (expectSameOutcome(EventSchema, decodeEvent, bytes.subarray(0, cut))) decodedCuts++;
          else failedCuts++;
        }
      }
    }
    // A batch cut between events is a valid shorter batch.
    const g = generators(seededRandom(4));
    const request = toBinary(LogEventsRequestSchema, create(LogEventsRequestSchema, { events: Array.from({ length: 4 }, g.event) }));
    for (let cut = 0; cut <= request.length; cut++) {
      if (expectSameOutcome(LogEventsRequestSchema, decodeRequest, request.subarray(0, cut))) decodedCuts++;
      else failedCuts++;
    }
    expect(decodedCuts).toBeGreaterThan(10);
    expect(failedCuts).toBeGreaterThan(1000);
  });

  it("never throws anything but WireFormatError on corrupted encodings, and agrees with fromBinary when it decodes", () => {
    let decoded = 0;
    let failed = 0;
    for (const seed of SEEDS) {
      const random = seededRandom(seed * 101);
      const int = (n: number) => Math.floor(random() * n);
      for (const valid of smallEvents(seed + 1000, 60)) {
        for (let n = 0; n < 20; n++) {
          const bytes = Uint8Array.from(valid);
          for (let k = 1 + int(3); k > 0; k--) {
            const at = int(bytes.length);
            bytes[at] = random() < 0.5 ? int(256) : bytes[at]! ^ (1 << int(8));
          }
          let actual: unknown;
          let error: unknown;
          try {
            actual = decodeEvent(bytes);
          } catch (err) {
            error = err;
          }
          if (error !== undefined) {
            expect(error).toBeInstanceOf(WireFormatError);
            failed++;
            continue;
          }
          decoded++;
          let expected: unknown;
          try {
            expected = withoutUnknown(fromBinary(EventSchema, bytes));
          } catch {
            continue; // protobuf-es fails on some input the decoder reads (see the map entry tests)
          }
          expectIdentical(actual, expected);
        }
      }
    }
    expect(decoded).toBeGreaterThan(100);
    expect(failed).toBeGreaterThan(100);
  });

  it("refuses a length that runs past the end of the input", () => {
    const cases: [string, Uint8Array, RegExp][] = [
      ["message", bytesOf(0x0a, 0x05, 0x12, 0x01), /LogUserActivityRequest: length 5 runs past the end/],
      ["message, huge length", bytesOf(0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x00), /LogUserActivityRequest: length 4294967295 runs past the end/],
      ["string", ld(1, bytesOf(0x12, 0x0a, 0x61, 0x62)), /string of 10 bytes runs past the end/],
      ["string, huge length", ld(1, bytesOf(0x12, 0xff, 0xff, 0xff, 0xff, 0x0f)), /string of 4294967295 bytes runs past the end/],
      ["Struct", ld(1, bytesOf(0x3a, 0x09, 0x0a, 0x00)), /google\.protobuf\.Struct: length 9 runs past the end/],
      ["Struct entry", ld(1, ld(7, bytesOf(0x0a, 0x09, 0x0a, 0x01, 0x6b))), /Struct\.fields: entry runs past the end/],
      ["Value", eventWithExtraData(bytesOf(0x0a, 0x04, 0x12, 0x07, 0x11, 0x00)), /google\.protobuf\.Value: length 7 runs past the end/],
      ["ListValue", eventWithExtraData(entry(utf8("k"), bytesOf(0x32, 0x08, 0x0a, 0x00))), /google\.protobuf\.ListValue: length 8 runs past the end/],
      ["Timestamp", ld(1, bytesOf(0x42, 0x04, 0x08)), /google\.protobuf\.Timestamp: length 4 runs past the end/],
      ["unknown length-delimited field", bytesOf(0xa2, 0x06, 0x05, 0x01), /analytics\.v1\.Event: premature EOF/],
      ["unknown fixed64 field", bytesOf(0xa1, 0x06, 0x01, 0x02), /premature EOF/],
      ["unknown fixed32 field", bytesOf(0xa5, 0x06, 0x01), /premature EOF/],
      ["unknown varint field", bytesOf(0xa0, 0x06, 0x81), /premature EOF/],
      ["bytes of a double in a Value", eventWithExtraData(entry(utf8("k"), bytesOf(0x11, 0x00, 0x00))), /cannot decode analytics\.v1\.Event/],
      ["a varint of 11 bytes", ld(1, bytesOf(0x30, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01)), /invalid varint/],
    ];
    for (const [what, bytes, message] of cases) {
      expect(wireFormatErrorOf(decodeEvent, bytes).message, what).toMatch(message);
      expect(esThrows(EventSchema, bytes), what).toBe(true);
    }
    const packed = bytesOf(0x1a, 0x05, 0x01); // SampleColumns.offsets_ms
    expect(() => compileDecoder(SampleColumnsSchema)(packed)).toThrow(WireFormatError);
    const bytesField = bytesOf(0x62, 0x03, 0x01); // AllKinds.s_bytes
    expect(() => compileDecoder(AllKindsSchema)(bytesField)).toThrow(WireFormatError);
  });

  it("refuses a nested message, Struct or packed run that overruns its parent's length (within the input)", () => {
    const overruns = [
      concat(bytesOf(0x0a, 0x03, 0x12, 0x05), utf8("hello"), ld(2, new Uint8Array(0))), // page_url overruns the activity
      bytesOf(0x0a, 0x04, 0x3a, 0x02, 0x0a, 0x03, 0x0a, 0x01, 0x6b), // a Struct entry (key "k") overruns the Struct
      concat(bytesOf(0x0a, 0x06, 0x3a, 0x04, 0x0a, 0x02, 0x0a, 0x03), utf8("abc")), // a key overruns its entry
      concat(eventWithExtraData(entry(utf8("k"), bytesOf(0x32, 0x01, 0x0a, 0x00))), bytesOf(0x0a, 0x00)), // ListValue overrun
    ];
    for (const bytes of overruns) expect(wireFormatErrorOf(decodeEvent, bytes).message).toMatch(/runs past/);
    // A key overrunning its entry while the entry still ends on the Struct's end: only the entry
    // knows (protobuf-es does not check, and reads the key "abc").
    const keyOverrun = eventWithExtraData(concat(bytesOf(0x0a, 0x02, 0x0a, 0x03), utf8("abc")));
    expect(wireFormatErrorOf(decodeEvent, keyOverrun).message).toMatch(/an entry runs past its length/);
    const decode = compileDecoder(SampleColumnsSchema);
    // offsets_ms packed with a length of 1 around a 2-byte varint; values packed with 4 bytes for an 8-byte double.
    expect(wireFormatErrorOf(decode, bytesOf(0x1a, 0x01, 0x80, 0x01, 0x0a, 0x00)).message).toMatch(/overrun/);
    expect(wireFormatErrorOf(decode, concat(bytesOf(0x22, 0x04), new Uint8Array(8), ld(1, utf8("x")))).message).toMatch(/overrun/);
  });

  it("refuses a known field with the wrong wire type, at every level", () => {
    const vt = (no: number, v = 1) => w().tag(no, WireType.Varint).uint32(v).finish();
    const f32 = (no: number) => w().tag(no, WireType.Bit32).fixed32(1).finish();
    const f64 = (no: number) => w().tag(no, WireType.Bit64).fixed64(1).finish();
    const cases: [string, Uint8Array][] = [
      ["Event.user_activity as varint", vt(1)],
      ["Event.job_outcome as fixed32", f32(4)],
      ["page_url as varint", ld(1, vt(2))],
      ["activity_type as length-delimited", ld(1, ld(1, bytesOf(1)))],
      ["duration_ms as fixed32", ld(1, f32(6))],
      ["retry_count as fixed64", ld(4, f64(8))],
      ["extra_data as varint", ld(1, vt(7))],
      ["occurred_at as fixed64", ld(1, f64(8))],
      ["Timestamp.seconds as fixed64", ld(1, ld(8, f64(1)))],
      ["Timestamp.nanos as length-delimited", ld(1, ld(8, ld(2, bytesOf(1))))],
      ["Struct.fields as varint", eventWithExtraData(vt(1))],
      ["Struct entry key as varint", eventWithExtraData(ld(1, concat(vt(1, 1), ld(2, valueBytes(1)))))],
      ["Struct entry value as fixed64", eventWithExtraData(ld(1, concat(ld(1, utf8("k")), f64(2))))],
      ["Value.null_value as length-delimited", eventWithExtraData(entry(utf8("k"), ld(1, bytesOf())))],
      ["Value.number_value as varint", eventWithExtraData(entry(utf8("k"), vt(2)))],
      ["Value.string_value as varint", eventWithExtraData(entry(utf8("k"), vt(3)))],
      ["Value.bool_value as fixed32", eventWithExtraData(entry(utf8("k"), f32(4)))],
      ["Value.struct_value as varint", eventWithExtraData(entry(utf8("k"), vt(5)))],
      ["Value.list_value as fixed32", eventWithExtraData(entry(utf8("k"), f32(6)))],
      ["ListValue.values as varint", eventWithExtraData(entry(utf8("k"), ld(6, vt(1))))],
      ["a known field as an end-group tag", bytesOf(0x0c)],
      ["a known field as a start-group", bytesOf(0x0b, 0x0c)],
    ];
    // The decoder names the wire type (not some later symptom of reading the field the wrong way).
    for (const [what, bytes] of cases) expect(wireFormatErrorOf(decodeEvent, bytes).message, what).toMatch(/wire type/);
    const columns = compileDecoder(SampleColumnsSchema);
    expect(wireFormatErrorOf(columns, f32(3)).message).toMatch(/SampleColumns\.offsets_ms: wire type 5, expected 0/);
    expect(wireFormatErrorOf(columns, vt(4)).message).toMatch(/SampleColumns\.values: wire type 0, expected 1/);
    expect(wireFormatErrorOf(columns, vt(1)).message).toMatch(/SampleColumns\.metric_names: wire type 0, expected 2/);
    const all = compileDecoder(AllKindsSchema);
    expect(wireFormatErrorOf(all, vt(1)).message).toMatch(/s_double: wire type 0/);
    expect(wireFormatErrorOf(all, f64(2)).message).toMatch(/s_float: wire type 1/);
    expect(wireFormatErrorOf(all, vt(52)).message).toMatch(/c_child: wire type 0/); // oneof message
    expect(wireFormatErrorOf(all, vt(61)).message).toMatch(/children: wire type 0/); // repeated message
    expect(wireFormatErrorOf(all, f32(50)).message).toMatch(/c_int32: wire type 5/); // oneof scalar
    expect(wireFormatErrorOf(all, f32(63)).message).toMatch(/struct: wire type 5/);
  });

  it("refuses illegal tags: field number 0, wire types 6 and 7, an overflowing tag, a stray or mismatched end group", () => {
    const cases: [string, Uint8Array][] = [
      ["field 0 varint", bytesOf(0x00, 0x00)],
      ["field 0 length-delimited", bytesOf(0x02, 0x00)],
      ["wire type 6", bytesOf(0x0e)],
      ["wire type 7", bytesOf(0x0f)],
      ["tag overflowing uint32", bytesOf(0xff, 0xff, 0xff, 0xff, 0x1f, 0x00)],
      ["tag of an unknown field 100 with bits above 32", bytesOf(0xa0, 0x86, 0x80, 0x80, 0x10, 0x00)],
      ["tag of 6 bytes", bytesOf(0x88, 0x80, 0x80, 0x80, 0x80, 0x00, 0x00)],
      ["stray end group of an unknown field", bytesOf(0x2c)],
      ["unterminated group", bytesOf(0x4b, 0x08, 0x01)],
      ["mismatched end group", bytesOf(0x4b, 0x54)],
      ["field 0 in a message", ld(1, bytesOf(0x00, 0x00))],
      ["field 0 in a Struct", eventWithExtraData(bytesOf(0x00, 0x00))],
      ["field 0 in a map entry", eventWithExtraData(ld(1, bytesOf(0x00, 0x00)))],
      ["field 0 in a Value", eventWithExtraData(entry(utf8("k"), bytesOf(0x00, 0x00)))],
      ["field 0 in a ListValue", eventWithExtraData(entry(utf8("k"), ld(6, bytesOf(0x00, 0x00))))],
      ["wire type 7 in a Value", eventWithExtraData(entry(utf8("k"), bytesOf(0x3f)))],
    ];
    for (const [what, bytes] of cases) {
      expect(() => decodeEvent(bytes), what).toThrow(WireFormatError);
      expect(esThrows(EventSchema, bytes), what).toBe(true);
    }
    expect(wireFormatErrorOf(decodeEvent, bytesOf(0x00, 0x00)).message).toMatch(/illegal tag/);
  });

  it("refuses nesting deeper than 100 at exactly the depth protobuf-es refuses it", () => {
    const nestedObject = (depth: number): JsonObject => (depth === 0 ? {} : { a: nestedObject(depth - 1) });
    const nestedList = (depth: number): JsonValue => (depth === 0 ? [] : [nestedList(depth - 1)]);
    for (const make of [nestedObject, (d: number) => ({ l: nestedList(d) })]) {
      let decoded = 0;
      let refused = 0;
      for (let depth = 40; depth <= 56; depth++) {
        const bytes = toBinary(
          LogEventsRequestSchema,
          create(LogEventsRequestSchema, { events: [{ kind: { case: "userActivity", value: { extraData: make(depth) as JsonObject } } }] }),
        );
        if (expectSameOutcome(LogEventsRequestSchema, decodeRequest, bytes)) decoded++;
        else {
          refused++;
          expect(wireFormatErrorOf(decodeRequest, bytes).message).toMatch(/deeper than 100/);
        }
      }
      expect(decoded).toBeGreaterThan(3);
      expect(refused).toBeGreaterThan(3);
    }
    // A recursive message type.
    const all = compileDecoder(AllKindsSchema);
    let child = toBinary(AllKindsSchema, create(AllKindsSchema, { sString: "leaf" } as never));
    const outcomes: boolean[] = [];
    for (let depth = 2; depth <= 102; depth++) {
      child = ld(depth % 2 === 0 ? 60 : 52, child);
      if (depth >= 96) outcomes.push(expectSameOutcome(AllKindsSchema, all, child));
    }
    expect(outcomes).toEqual([true, true, true, true, true, false, false]);
  });

  it("refuses hostile nesting far past the limit without overflowing the stack", () => {
    // 5 000 nested ListValues (built inside out, without protobuf-es, which would recurse).
    let value = new Uint8Array(0);
    for (let n = 0; n < 5_000; n++) value = ld(6, ld(1, value));
    expect(wireFormatErrorOf(decodeEvent, eventWithExtraData(entry(utf8("k"), value))).message).toMatch(/deeper than 100/);
    // 5 000 nested groups in an unknown field.
    const groups = concat(
      ...Array.from({ length: 5_000 }, () => bytesOf(0xa3, 0x06)), // field 100, start group
      ...Array.from({ length: 5_000 }, () => bytesOf(0xa4, 0x06)), // field 100, end group
    );
    expect(() => decodeEvent(groups)).toThrow(WireFormatError);
    expect(() => decodeEvent(ld(1, groups))).toThrow(WireFormatError);
    // Groups in an unknown field use what is left of the nesting budget, as in protobuf-es: in the
    // user activity (depth 3 from the request), 97 nested groups are the most accepted.
    const outcomes: boolean[] = [];
    for (let k = 94; k <= 100; k++) {
      const nested = concat(...Array.from({ length: k }, () => bytesOf(0xa3, 0x06)), ...Array.from({ length: k }, () => bytesOf(0xa4, 0x06)));
      outcomes.push(expectSameOutcome(LogEventsRequestSchema, decodeRequest, ld(1, ld(1, nested))));
    }
    expect(outcomes).toEqual([true, true, true, true, false, false, false]);
    // A few nested groups are skipped.
    const shallow = concat(...Array.from({ length: 10 }, () => bytesOf(0xa3, 0x06)), ...Array.from({ length: 10 }, () => bytesOf(0xa4, 0x06)));
    expect(decodeEvent(concat(shallow, ld(2, ld(4, utf8("m")))))).toStrictEqual(create(EventSchema, { kind: { case: "error", value: { errorMessage: "m" } } }));
  });
});

describe("compileDecoder: a Struct key \"__proto__\"", () => {
  it("is kept as an own data property and never changes the object's prototype", () => {
    const struct = concat(
      entry(utf8("__proto__"), ld(5, structBytes({ polluted: true }))),
      entry(utf8("a"), valueBytes(1)),
      entry(utf8("nested"), ld(5, concat(entry(utf8("__proto__"), valueBytes("text")), entry(utf8("b"), valueBytes(2))))),
      entry(utf8("list"), ld(6, ld(1, ld(5, entry(utf8("__proto__"), ld(6, new Uint8Array(0))))))),
    );
    const data = extraDataOf(decodeEvent(eventWithExtraData(struct)))!;
    expect(Object.getPrototypeOf(data)).toBe(Object.prototype);
    expect(Object.keys(data)).toEqual(["__proto__", "a", "nested", "list"]);
    expect(Object.getOwnPropertyDescriptor(data, "__proto__")).toEqual({ value: { polluted: true }, enumerable: true, writable: true, configurable: true });
    expect((data as { polluted?: unknown }).polluted).toBeUndefined();
    expect(({} as { polluted?: unknown }).polluted).toBeUndefined();
    const nested = data.nested as JsonObject;
    expect(Object.getPrototypeOf(nested)).toBe(Object.prototype);
    expect(Object.getOwnPropertyDescriptor(nested, "__proto__")?.value).toBe("text");
    const inList = (data.list as JsonObject[])[0]!;
    expect(Object.getPrototypeOf(inList)).toBe(Object.prototype);
    expect(Object.getOwnPropertyDescriptor(inList, "__proto__")?.value).toEqual([]);
    expect(JSON.stringify(data)).toBe('{"__proto__":{"polluted":true},"a":1,"nested":{"__proto__":"text","b":2},"list":[{"__proto__":[]}]}');
  });

  it("is replaced, not merged, by a later entry with the same key (a Struct sent twice)", () => {
    const first = entry(utf8("__proto__"), ld(5, structBytes({ x: 1 })));
    const second = entry(utf8("__proto__"), valueBytes(2));
    const merged = extraDataOf(decodeEvent(ld(1, concat(ld(7, first), ld(7, second)))))!; // extra_data sent twice
    expect(Object.getPrototypeOf(merged)).toBe(Object.prototype);
    expect(Object.keys(merged)).toEqual(["__proto__"]);
    expect(Object.getOwnPropertyDescriptor(merged, "__proto__")?.value).toBe(2);
  });
});

describe("compileDecoder: refused at compile time", () => {
  const refusal = (schema: DescMessage): Error => {
    let error: unknown;
    try {
      compileDecoder(schema);
    } catch (err) {
      error = err;
    }
    expect(error, schema.typeName).toBeInstanceOf(Error);
    expect(error, schema.typeName).not.toBeInstanceOf(WireFormatError); // a programming error, not bad input
    return error as Error;
  };

  it("refuses maps (Struct itself, analytics messages that reach one), wrapper types, Value and ListValue fields, Struct in a list or oneof, groups, also when reached indirectly", () => {
    for (const [schema, says] of unsupportedSchemas(StructSchema, ValueSchema, ListValueSchema)) expect(refusal(schema).message, schema.typeName).toMatch(says);
    expect(refusal(MetricSampleSchema).message).toMatch(/MetricSample\.metrics: a map field/);
    expect(refusal(StreamDeviceMetricsRequestSchema).message).toMatch(/map field/);
    expect(refusal(IngestDeviceMetricsRequestSchema).message).toMatch(/map field/);
  });

  it("refuses proto2 messages, whose defaults live on a prototype the decoder does not build", () => {
    const plain = message(proto2Registry, "test.decoder2.Plain");
    expect((create(plain) as unknown as { s: string }).s).toBe("dflt"); // what the decoder would have to reproduce
    expect(refusal(plain).message).toMatch(/test\.decoder2\.Plain/);
  });

  it("compiles every schema it supports", () => {
    for (const schema of [LogEventsRequestSchema, EventSchema, SampleColumnsSchema, EventResultSchema, LogEventsResponseSchema, TimestampSchema, AllKindsSchema]) {
      expect(typeof compileDecoder(schema)).toBe("function");
    }
  });
});
