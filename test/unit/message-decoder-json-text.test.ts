import { describe, expect, it } from "vitest";
import { create, fromJson, toBinary, type JsonObject, type JsonValue } from "@bufbuild/protobuf";
import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { ListValueSchema, StructSchema, ValueSchema } from "@bufbuild/protobuf/wkt";
import { compileDecoder, WireFormatError } from "../../src/wire/message-decoder.js";
import { EventSchema, LogEventsRequestSchema, type Event } from "../../sdk/src/gen/analytics/v1/analytics_service_pb.js";
import { JsonText, jsonTextOf } from "../../src/util/json-text.js";
import { jsonPayload, MAX_JSON_BYTES } from "../../src/validation/field-rules.js";
import { inspect } from "node:util";
import { concat } from "../support/bytes.js";
import { seededRandom } from "../support/seeded-random.js";
import { generators } from "../support/random-messages.js";

// `structs: "json-text"` must store what the object decoder stores: every Struct field becomes a
// JsonText whose JSON value is the object's JSON value (as `JSON.stringify` writes the object and
// as jsonb keeps it), and every input the object decoder refuses is refused alike.

const SEEDS = [1, 2, 3, 42, 20_260_101];

const objects = { event: compileDecoder(EventSchema), request: compileDecoder(LogEventsRequestSchema) };
const texts = {
  event: compileDecoder(EventSchema, { structs: "json-text" }),
  request: compileDecoder(LogEventsRequestSchema, { structs: "json-text" }),
};

// ---------------------------------------------------------------------------------------------
// Helpers

/**
 * `value` with every payload as the JSON value it stores: a JsonText parsed, an object decoder's
 * JsonObject through `JSON.stringify` (NaN and ±Infinity become null, -0 becomes 0, as stored).
 * Counts the JsonTexts seen in `seen`.
 */
function stored(value: unknown, seen = { texts: 0 }, inPayload = false): unknown {
  if (value instanceof JsonText) {
    seen.texts++;
    expect(typeof value.text).toBe("string");
    return JSON.parse(value.text);
  }
  if (inPayload) return value;
  if (Array.isArray(value)) return value.map((v) => stored(v, seen));
  if (value === null || typeof value !== "object" || value instanceof Uint8Array) return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    const payload = k === "extraData" || k === "context";
    out[k] = payload && v !== undefined && !(v instanceof JsonText) ? JSON.parse(JSON.stringify(v)) : stored(v, seen, false);
  }
  return out;
}

/** Both decoders on `bytes`: the same outcome, and the same stored values when they decode. */
function expectSameStored(decodeObject: (b: Uint8Array) => unknown, decodeText: (b: Uint8Array) => unknown, bytes: Uint8Array): boolean {
  const outcome = (decode: (b: Uint8Array) => unknown) => {
    try {
      return { value: decode(bytes) };
    } catch (err) {
      expect(err).toBeInstanceOf(WireFormatError);
      return { error: (err as Error).message };
    }
  };
  const a = outcome(decodeObject);
  const b = outcome(decodeText);
  expect("error" in b ? b.error : "decoded").toBe("error" in a ? a.error : "decoded");
  if ("error" in a) return false;
  expect(stored(b.value)).toEqual(stored(a.value));
  return true;
}

/** Strict deep equality (same keys in the same order, Object.is), with a readable message. */
function expectIdentical(actual: unknown, expected: unknown): void {
  expect(inspect(actual, { depth: null, sorted: false })).toBe(inspect(expected, { depth: null, sorted: false }));
}

const w = () => new BinaryWriter();
const ld = (no: number, payload: Uint8Array) => w().tag(no, WireType.LengthDelimited).bytes(payload).finish();
const utf8 = (s: string) => new TextEncoder().encode(s);
const entry = (key: string, value: Uint8Array) => ld(1, concat(ld(1, utf8(key)), ld(2, value)));
const valueBytes = (json: JsonValue) => toBinary(ValueSchema, fromJson(ValueSchema, json));
const numberValue = (n: number) => w().tag(2, WireType.Bit64).double(n).finish();
const structBytes = (json: JsonObject) => toBinary(StructSchema, fromJson(StructSchema, json));
/** An Event holding a user activity whose extra_data (field 7) is the given Struct bytes. */
const eventWithExtraData = (struct: Uint8Array) => ld(1, ld(7, struct));
const payloadOf = (e: Event): JsonText => {
  const v = e.kind.case === "userActivity" ? e.kind.value.extraData : undefined;
  expect(v).toBeInstanceOf(JsonText);
  return v as unknown as JsonText;
};
const textOf = (struct: Uint8Array) => payloadOf(texts.event(eventWithExtraData(struct))).text;
/** The object decoder's payload of the same event. */
const objectOf = (struct: Uint8Array) => {
  const e = objects.event(eventWithExtraData(struct));
  return e.kind.case === "userActivity" ? e.kind.value.extraData : undefined;
};

// ---------------------------------------------------------------------------------------------

describe("compileDecoder structs: \"json-text\"", () => {
  it("stores what the object decoder stores, for random batches of every event kind", () => {
    const seen = { texts: 0 };
    for (const seed of SEEDS) {
      const g = generators(seededRandom(seed));
      for (let n = 0; n < 20; n++) {
        const bytes = toBinary(LogEventsRequestSchema, g.request());
        const expected = stored(objects.request(bytes));
        const actual = stored(texts.request(bytes), seen);
        expect(actual).toEqual(expected);
      }
    }
    expect(seen.texts).toBeGreaterThan(1_000);
  });

  it("writes the text JSON.stringify writes for the object, for payloads without repeated keys", () => {
    const payloads: JsonObject[] = [
      {},
      { attempt: 1, region: "eu-west" },
      { n: 1.5, neg: -2, big: 1e21, tiny: 5e-324, max: Number.MAX_VALUE, s: "x", b: false, t: true, z: null, l: [1, "a", [], {}, [null, [true]]], o: { p: { q: true } } },
      { quote: 'say "hi"', backslash: "a\\b", control: "\n\t\r\b\f\u0001\u001f", del: "\u007f", sep: "\u2028\u2029", emoji: "😀 dév", bom: "x\ufeff", fffd: "\ufffd" },
      { "": "empty key", "1": "integer-like", "a.b": 0, constructor: "c", $typeName: "t", 'k"q': "quoted key" },
      { long: "x".repeat(1_000), longKey: { ["k".repeat(40)]: "y".repeat(33) } },
    ];
    for (const payload of payloads) {
      const text = textOf(structBytes(payload));
      // Wire order is insertion order, except that JavaScript objects put integer-like keys first.
      expect(JSON.parse(text)).toEqual(payload);
      if (!("1" in payload)) expect(text).toBe(JSON.stringify(payload));
    }
  });

  it("writes NaN and ±Infinity as null and -0 as 0, as JSON.stringify does", () => {
    const struct = concat(entry("nan", numberValue(Number.NaN)), entry("inf", numberValue(Infinity)), entry("ninf", numberValue(-Infinity)), entry("nzero", numberValue(-0)));
    expect(textOf(struct)).toBe('{"nan":null,"inf":null,"ninf":null,"nzero":0}');
    expect(textOf(struct)).toBe(JSON.stringify(objectOf(struct)));
  });

  it("writes a key sent twice twice, which JSON readers (jsonb among them) read as the last value, like the object", () => {
    const struct = concat(entry("k", valueBytes(1)), entry("other", valueBytes(true)), entry("k", valueBytes("last")));
    const text = textOf(struct);
    expect(text).toBe('{"k":1,"other":true,"k":"last"}');
    expectIdentical(JSON.parse(text), objectOf(struct));
  });

  it("keeps a key \"__proto__\" as data", () => {
    const text = textOf(concat(entry("__proto__", ld(5, structBytes({ polluted: true }))), entry("a", valueBytes(1))));
    expect(text).toBe('{"__proto__":{"polluted":true},"a":1}');
    const parsed = JSON.parse(text) as Record<string, unknown>;
    expect(Object.getPrototypeOf(parsed)).toBe(Object.prototype);
    expect(Object.keys(parsed)).toEqual(["__proto__", "a"]);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it("writes strings past the literal cache's bound and more distinct strings than it holds, each as itself", () => {
    for (let round = 0; round < 2; round++) {
      for (let n = 0; n < 10_000; n += 7) {
        const key = `key-${n}`;
        const value = n % 2 ? `v"${n}\\` : `value-${n}-${"z".repeat(n % 40)}`;
        expect(JSON.parse(textOf(concat(entry(key, valueBytes(value)), entry("same", valueBytes("same")))))).toEqual({ [key]: value, same: "same" });
      }
    }
  });

  it("decodes encodings that need protobuf's merge rules as the object decoder, and stores the same", () => {
    const valueTwice = concat(ld(5, structBytes({ a: 1, b: 1 })), ld(5, structBytes({ b: 2, c: 3 })));
    const listTwice = concat(ld(6, toBinary(ListValueSchema, fromJson(ListValueSchema, [1, "x"]))), ld(6, toBinary(ListValueSchema, fromJson(ListValueSchema, [null]))));
    const lastKindWins = concat(valueBytes(1), valueBytes("s"), valueBytes(true), valueBytes(null), valueBytes(2.5));
    const deep = entry("deep", ld(5, structBytes({ x: { y: [1] } }))); // the merge is deep inside
    const nested = entry("n", ld(5, concat(entry("inner", valueTwice), deep)));
    // A map entry's value sent twice: the last one, not a merge (map entries do not merge in
    // protobuf-es or the object decoder).
    const entryValueTwice = ld(1, concat(ld(1, utf8("e")), ld(2, ld(5, structBytes({ a: 1 }))), ld(2, ld(5, structBytes({ b: 2 })))));
    const struct1 = concat(entry("v", valueTwice), entry("l", listTwice), entry("k", lastKindWins), nested, entryValueTwice);
    const struct2 = concat(entry("k", valueBytes("replaced")), entry("n2", valueBytes(0)));
    // A Struct field sent twice in one message, and the whole event sent twice.
    const event = ld(1, concat(ld(7, struct1), ld(2, utf8("/p")), ld(7, struct2)));
    // Each case alone (one case needing the object would take the whole Struct there).
    const alone = [entry("v", valueTwice), entry("l", listTwice), entry("k", lastKindWins), nested, entryValueTwice].map(eventWithExtraData);
    expect(alone.map((bytes) => JSON.parse(payloadOf(texts.event(bytes)).text))).toEqual([
      { v: { a: 1, b: 2, c: 3 } }, { l: [1, "x", null] }, { k: 2.5 }, { n: { inner: { a: 1, b: 2, c: 3 }, deep: { x: { y: [1] } } } }, { e: { b: 2 } },
    ]);
    for (const bytes of [...alone, event, concat(event, event), eventWithExtraData(struct1)]) {
      expect(expectSameStored(objects.event, texts.event, bytes)).toBe(true);
    }
    expect(JSON.parse(payloadOf(texts.event(event)).text)).toEqual({
      v: { a: 1, b: 2, c: 3 }, l: [1, "x", null], k: "replaced", n: { inner: { a: 1, b: 2, c: 3 }, deep: { x: { y: [1] } } }, e: { b: 2 }, n2: 0,
    });
    // Merged random events, each sent twice.
    const g = generators(seededRandom(99));
    for (let n = 0; n < 200; n++) {
      expect(expectSameStored(objects.event, texts.event, concat(toBinary(EventSchema, g.event()), toBinary(EventSchema, g.event())))).toBe(true);
    }
  });

  it("skips unknown fields inside Struct, Value, ListValue and a map entry, and takes a missing key, value or kind as \"\" / null", () => {
    const unknown = concat(w().tag(9, WireType.Varint).uint32(1).finish(), w().tag(9, WireType.LengthDelimited).string("x").finish(), w().tag(9, WireType.Bit32).fixed32(1).finish());
    const struct = concat(
      unknown,
      entry("b", concat(unknown, valueBytes("x"), unknown)),
      entry("l", ld(6, concat(unknown, ld(1, valueBytes(null)), unknown, ld(1, new Uint8Array(0))))),
      ld(1, concat(ld(1, utf8("k")), unknown, ld(2, valueBytes("v")), unknown)),
      ld(1, ld(2, valueBytes(1))), // no key
      ld(1, ld(1, utf8("novalue"))), // no value
      entry("nokind", new Uint8Array(0)),
      unknown,
    );
    expect(JSON.parse(textOf(struct))).toEqual({ b: "x", l: [null, null], k: "v", "": 1, novalue: null, nokind: null });
    expect(expectSameStored(objects.event, texts.event, eventWithExtraData(struct))).toBe(true);
  });

  it("refuses malformed input as the object decoder does, with the same message, at every cut point and on corrupted bytes", () => {
    let decoded = 0;
    let refused = 0;
    for (const seed of SEEDS) {
      const g = generators(seededRandom(seed + 500));
      const random = seededRandom(seed * 101);
      const int = (n: number) => Math.floor(random() * n);
      for (let n = 0; n < 12; n++) {
        let valid = toBinary(EventSchema, g.event());
        while (valid.length > 400) valid = toBinary(EventSchema, g.event());
        for (let cut = 0; cut < valid.length; cut++) {
          if (expectSameStored(objects.event, texts.event, valid.subarray(0, cut))) decoded++;
          else refused++;
        }
        for (let k = 0; k < 20; k++) {
          const bytes = Uint8Array.from(valid);
          for (let flips = 1 + int(3); flips > 0; flips--) {
            const at = int(bytes.length);
            bytes[at] = random() < 0.5 ? int(256) : bytes[at]! ^ (1 << int(8));
          }
          if (expectSameStored(objects.event, texts.event, bytes)) decoded++;
          else refused++;
        }
      }
    }
    expect(decoded).toBeGreaterThan(100);
    expect(refused).toBeGreaterThan(1_000);
  });

  it("refuses nesting deeper than 100 and invalid UTF-8 as the object decoder does", () => {
    const nested = (depth: number): JsonObject => (depth === 0 ? {} : { a: nested(depth - 1) });
    const outcomes: boolean[] = [];
    for (let depth = 44; depth <= 52; depth++) {
      const bytes = toBinary(LogEventsRequestSchema, create(LogEventsRequestSchema, { events: [{ kind: { case: "userActivity", value: { extraData: nested(depth) } } }] }));
      outcomes.push(expectSameStored(objects.request, texts.request, bytes));
    }
    expect(outcomes).toContain(true);
    expect(outcomes).toContain(false);
    let hostile = new Uint8Array(0);
    for (let n = 0; n < 5_000; n++) hostile = ld(6, ld(1, hostile));
    expect(() => texts.event(eventWithExtraData(entry("k", hostile)))).toThrow(/deeper than 100/);
    const badKey = ld(1, concat(ld(1, Uint8Array.from([0x61, 0xff])), ld(2, valueBytes(1))));
    const badValue = entry("k", ld(3, Uint8Array.from([0xc3])));
    for (const struct of [badKey, badValue]) {
      expect(() => texts.event(eventWithExtraData(struct))).toThrow(WireFormatError);
      expect(() => texts.event(eventWithExtraData(struct))).toThrow(/invalid UTF-8/);
    }
  });
});

describe("a payload decoded as text, where it is used", () => {
  it("is returned as it is by jsonTextOf, and measured by the jsonPayload rule", () => {
    const payload = payloadOf(texts.event(eventWithExtraData(structBytes({ a: 1 }))));
    expect(jsonTextOf(payload)).toBe(payload);
    expect(jsonPayload(payload as unknown as JsonObject)).toBeUndefined();
    const nul = payloadOf(texts.event(eventWithExtraData(structBytes({ k: "a\u0000b" }))));
    expect(nul.text).toBe('{"k":"a\\u0000b"}');
    expect(jsonPayload(nul as unknown as JsonObject)).toMatch(/NUL/);
    const big = payloadOf(texts.event(eventWithExtraData(structBytes({ k: "é".repeat(MAX_JSON_BYTES / 2) }))));
    expect(jsonPayload(big as unknown as JsonObject)).toMatch(/at most 65536 bytes of JSON \(got 65544\)/);
  });

  it("serializes as its value in JSON (a log line, a JSON parameter)", () => {
    const payload = payloadOf(texts.event(eventWithExtraData(structBytes({ a: [1, "x"] }))));
    expect(JSON.stringify({ extraData: payload })).toBe('{"extraData":{"a":[1,"x"]}}');
  });
});
