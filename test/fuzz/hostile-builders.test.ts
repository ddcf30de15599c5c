/**
 * The fuzz suite's byte builders make what their labels say: a nested `Value` of the stated depth,
 * a `Struct` field repeated so that its merge grows, invalid UTF-8 where strings were, envelopes
 * with the stated length. Without this, a builder bug would make the fuzz suite pass vacuously.
 */
import { fromBinary, toBinary, fromJson } from "@bufbuild/protobuf";
import { StructSchema, ValueSchema, type Value } from "@bufbuild/protobuf/wkt";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { LogEventsRequestSchema } from "../../sdk/src/gen/analytics/v1/analytics_service_pb.js";
import { deepValueBinary, FUZZ_TARGETS, rawCases, structPath } from "../support/hostile-messages.js";
import { concat, envelope, lenField, wrapFields } from "../support/hostile-wire.js";

function depthOf(value: Value): number {
  let depth = 0;
  let v: Value | undefined = value;
  while (v !== undefined) {
    const k: Value["kind"] = v.kind;
    if (k.case === "structValue") v = k.value.fields.a;
    else if (k.case === "listValue") v = k.value.values[0];
    else break;
    depth++;
  }
  return depth;
}

describe("hostile builders", () => {
  it("nest a Value exactly as deep as asked, in binary protobuf-es reads back", () => {
    // protobuf-es reads at most 100 message levels (a Struct level is three).
    for (const depth of [1, 2, 7, 30]) {
      expect(depthOf(fromBinary(ValueSchema, deepValueBinary(depth)))).toBe(depth);
    }
    // Linear in depth: 100k levels is a few bytes per level.
    expect(deepValueBinary(100_000).length).toBeLessThan(100_000 * 16);
  });

  it("find the Struct inside LogEvents and send it repeated, each repeat adding keys", () => {
    const path = structPath(LogEventsRequestSchema);
    expect(path?.names).toEqual(["events", "userActivity", "extraData"]);
    const repeats = Array.from({ length: 100 }, (_, i) => lenField(path!.numbers[2]!, toBinary(StructSchema, fromJson(StructSchema, { [`k${i}`]: i }))));
    const message = fromBinary(LogEventsRequestSchema, wrapFields(path!.numbers.slice(0, -1), concat(repeats)));
    const event = message.events[0]!.kind;
    expect(event.case).toBe("userActivity");
    expect(Object.keys(event.case === "userActivity" ? (event.value.extraData ?? {}) : {})).toHaveLength(100);
  });

  it("write the envelope's length as declared", () => {
    const e = envelope(Uint8Array.of(1, 2, 3), 1, 0x7fffffff);
    expect([...e.subarray(0, 5)]).toEqual([1, 0x7f, 0xff, 0xff, 0xff]);
    expect([...e.subarray(5)]).toEqual([1, 2, 3]);
  });

  it("generate every byte-level class for every RPC, and invalid UTF-8 that is invalid", () => {
    const seen = new Set<string>();
    for (const [i, target] of FUZZ_TARGETS.entries()) {
      for (const [j, encoding] of (["binary", "json"] as const).entries()) {
        fc.assert(
          fc.property(rawCases(target, encoding, { messageBytes: 4096 }, true), (c) => {
            seen.add(c.cls);
            if (c.cls === "invalid-utf8" && c.kind === "bytes") {
              expect(() => new TextDecoder("utf-8", { fatal: true }).decode(c.payload)).toThrow();
            }
            if (c.cls.startsWith("oversize") && c.kind === "bytes") expect(c.payload.length).toBeGreaterThan(4096);
            // Lone surrogates written as JSON escapes: well-formed JSON that holds one.
            if (c.cls === "lone-surrogate" && c.kind === "bytes") {
              expect(JSON.stringify(JSON.parse(new TextDecoder().decode(c.payload)))).toMatch(/\\ud[89abcdef]/);
            }
          }),
          { seed: i * 2 + j, numRuns: 60 },
        );
      }
    }
    expect([...seen].sort()).toEqual(
      [
        "deep-nesting",
        "deep-struct",
        "envelope-lie",
        "escape-run",
        "huge-repeats",
        "invalid-utf8",
        "lone-surrogate",
        "nul",
        "oversize-just-over",
        "oversize-way-over",
        "random-bytes",
        "truncation",
        "valid",
        "wrong-type",
      ].sort(),
    );
  });
});
