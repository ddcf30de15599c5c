import { describe, expect, it } from "vitest";
import { Code, ConnectError } from "@connectrpc/connect";
import { createMethodSerializationLookup } from "@connectrpc/connect/protocol";
import { fromBinary, type DescMethodUnary, type JsonObject } from "@bufbuild/protobuf";
import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { AnalyticsService, EventSchema, type Event } from "../../sdk/src/gen/analytics/v1/analytics_service_pb.js";
import { JsonText, jsonHasNul, jsonTextOf, wellFormedJson } from "../../src/util/json-text.js";
import { jsonPayload, MAX_JSON_BYTES } from "../../src/validation/field-rules.js";
import { compileDecoder } from "../../src/wire/message-decoder.js";
import { isTransientStorageError } from "../../src/storage/storage-errors.js";
import { concat } from "../support/bytes.js";

// Probes that keep caller-controlled work linear in its input (docs/HARDENING.md, "Linear
// costs"). Each hostile input is timed at sizes n/16 and n/4 first, each against a budget
// proportional to its size (with a floor for timer noise), judged before the next size is built:
// quadratic code fails there in about a second instead of running for minutes. Then n and 4n are
// timed in turns: the best time at 4n must stay under its budget and under 8 times the best at n
// (linear code gives ~4, quadratic ~16). Times are CPU times, and every figure is the best of
// several runs: a size passes as soon as its best does. Linear code gets there within a few runs;
// quadratic code never does, its best time being its true cost.

/**
 * CPU milliseconds (user and system, this process's threads: the collector's included) `work`
 * takes once. CPU time, not wall time: on a shared box the time spent waiting for a core is the
 * other processes' noise, not this code's cost.
 */
function timeMs(work: () => unknown): number {
  const start = process.cpuUsage();
  work();
  const { user, system } = process.cpuUsage(start);
  return (user + system) / 1000;
}

/** Times under which no size is judged (timer resolution, a scheduler tick, a scavenge). */
const FLOOR_MS = 20;
/** The least time at n a ratio is taken against: below it, noise decides the ratio. */
const RATIO_FLOOR_MS = 2;
/** A ratio a linear cost stays under for 4x the input, with room for noise (quadratic: ~16). */
const MAX_RATIO = 8;
/** Most runs of a size (or turns at n and 4n) before the best is judged as it is. */
const MAX_RUNS = 8;
/** A run this many times over its budget is not noise: judged at once (quadratic code fails fast). */
const FAR_OVER = 4;

/**
 * Runs `work(make(size))` at sizes n/16, n/4, n and 4n: each must take at most `budgetMsAt4n`
 * scaled to its size (at least {@link FLOOR_MS}), and the time at 4n at most {@link MAX_RATIO}
 * times the time at n.
 */
function expectLinear<T>(make: (size: number) => T, work: (input: T) => unknown, n: number, budgetMsAt4n: number): void {
  const budget = (size: number) => Math.max(FLOOR_MS, (budgetMsAt4n * size) / (4 * n));
  work(make(Math.round(n / 16))); // warm-up: compiled code, not the interpreter, is what is measured
  for (const size of [Math.round(n / 16), Math.round(n / 4)]) {
    const input = make(size);
    let best = Infinity;
    for (let run = 0; run < MAX_RUNS; run++) {
      best = Math.min(best, timeMs(() => work(input)));
      if (best < budget(size) || best >= FAR_OVER * budget(size)) break;
    }
    expect(best, `size ${size}: best ${best.toFixed(1)} ms, budget ${budget(size).toFixed(1)} ms`).toBeLessThan(budget(size));
  }
  const small = make(n);
  const large = make(4 * n);
  let atN = Infinity;
  let at4n = Infinity;
  const ratio = () => at4n / Math.max(atN, RATIO_FLOOR_MS);
  for (let run = 0; run < MAX_RUNS; run++) {
    atN = Math.min(atN, timeMs(() => work(small)));
    at4n = Math.min(at4n, timeMs(() => work(large)));
    if (run >= 2 && atN < budget(n) && at4n < budget(4 * n) && ratio() < MAX_RATIO) break;
    if (atN >= FAR_OVER * budget(n) || at4n >= FAR_OVER * budget(4 * n)) break;
  }
  if (process.env.LINEAR_COST_LOG) console.log(`n ${n}: ${atN.toFixed(1)} ms, 4n: ${at4n.toFixed(1)} ms`);
  expect(atN, `size ${n}: best ${atN.toFixed(1)} ms`).toBeLessThan(budget(n));
  expect(at4n, `size ${4 * n}: best ${at4n.toFixed(1)} ms`).toBeLessThan(budget(4 * n));
  expect(ratio(), `4n / n = ${at4n.toFixed(1)} / ${atN.toFixed(1)} ms`).toBeLessThan(MAX_RATIO);
}

// ---------------------------------------------------------------------------------------------
// Protobuf encodings of hostile events

const w = () => new BinaryWriter();
/** Field `no` as a length-delimited payload. */
const ld = (no: number, payload: Uint8Array) => w().tag(no, WireType.LengthDelimited).bytes(payload).finish();
const utf8 = (s: string) => new TextEncoder().encode(s);
/** A Struct map entry (key = 1, value = 2) as field 1 of a Struct. */
const entry = (key: string, value: Uint8Array) => ld(1, concat(ld(1, utf8(key)), ld(2, value)));
/** `Value { number_value: x }`. */
const numberValue = (x: number) => w().tag(2, WireType.Bit64).double(x).finish();
/** `Struct { key: x }`. */
const structOf = (key: string, x: number) => entry(key, numberValue(x));
/** `part(0)`, …, `part(n - 1)` one after the other (not through a spread: n may exceed the stack). */
function times(n: number, part: (i: number) => Uint8Array): Uint8Array {
  const writer = new BinaryWriter();
  for (let i = 0; i < n; i++) writer.raw(part(i));
  return writer.finish();
}
/** `activity_type = 1` of a LogUserActivityRequest. */
const ACTIVITY = w().tag(1, WireType.Varint).int32(1).finish();

/** One event whose user activity carries extra_data `n` times, each with a key of its own (they merge). */
const repeatedExtraData = (n: number) => ld(1, concat(ACTIVITY, times(n, (i) => ld(7, structOf(`k${i}`, i)))));
/** One event whose user_activity member is sent `n` times, each with an extra_data of its own (they merge). */
const repeatedMember = (n: number) => times(n, (i) => ld(1, concat(ACTIVITY, ld(7, structOf(`k${i}`, i)))));
/** extra_data holding one Value whose struct_value is sent `n` times (they merge). */
const repeatedStructValue = (n: number) => ld(1, concat(ACTIVITY, ld(7, entry("a", times(n, (i) => ld(5, structOf(`k${i}`, i)))))));
/** extra_data holding one Value whose list_value is sent `n` times (they append). */
const repeatedListValue = (n: number) => ld(1, concat(ACTIVITY, ld(7, entry("a", times(n, (i) => ld(6, ld(1, numberValue(i))))))));
/** extra_data with the same key `n` times (the last one wins). */
const duplicateKeys = (n: number) => ld(1, concat(ACTIVITY, ld(7, times(n, (i) => entry("k", numberValue(i))))));

const decodeAsText = compileDecoder(EventSchema, { structs: "json-text" });
const decodeAsObject = compileDecoder(EventSchema);

/** The stored JSON value of an event's extra_data. */
function extraData(event: Event): unknown {
  if (event.kind.case !== "userActivity") throw new Error(`not a user activity: ${event.kind.case}`);
  const payload = event.kind.value.extraData as JsonObject | JsonText | undefined;
  return payload instanceof JsonText ? payload.parse() : payload;
}

// ---------------------------------------------------------------------------------------------

describe("escape scans of JSON text are linear", () => {
  /** `{"k":"\\\\…\\\\\u0000"}`: `n` backslashes (2n characters of JSON), then U+0000. */
  const backslashesThenNul = (n: number) => JSON.stringify({ k: "\\".repeat(n) + "\u0000" });

  it("finds U+0000 after a run of escaped backslashes (512 Ki of them: 1 MiB of JSON, in under 200 ms)", () => {
    expectLinear(backslashesThenNul, (json) => expect(jsonHasNul(json)).toBe(true), 128 * 1024, 200);
    // Parity, not presence, decides: an escaped backslash before "u0000" is text.
    expect(jsonHasNul(JSON.stringify({ k: "\\".repeat(1 << 20) + "u0000" }))).toBe(false);
  });

  it("replaces a lone surrogate after a run of escaped backslashes, and a run of lone surrogates", () => {
    const loneAfterRun = (n: number) => JSON.stringify({ k: "\\".repeat(n) + "\ud800" });
    expectLinear(loneAfterRun, (json) => expect(wellFormedJson(json).endsWith('\\ufffd"}')).toBe(true), 128 * 1024, 200);
    const loneRun = (n: number) => JSON.stringify({ k: "\udc00".repeat(n) });
    expectLinear(loneRun, (json) => expect(wellFormedJson(json).length).toBe(json.length), 64 * 1024, 200);
    expect(wellFormedJson(loneRun(3))).toBe('{"k":"\\ufffd\\ufffd\\ufffd"}');
  });

  it("measures a Struct payload before it scans it: an oversized one is refused for its size, at once", () => {
    // Just over the cap (each backslash is two characters of JSON) by n backslashes.
    const oversized = (n: number) => ({ k: "\\".repeat(MAX_JSON_BYTES / 2 + n) + "\u0000" });
    expectLinear(oversized, (payload) => expect(jsonPayload(payload)).toMatch(/^must encode to at most 65536 bytes of JSON/), 128 * 1024, 200);
    // Within the size cap, the NUL is found, in time linear in the run.
    expect(jsonPayload({ k: "\\".repeat(MAX_JSON_BYTES / 2 - 16) + "\u0000" })).toBe("must not contain the NUL character (U+0000) in a key or string");
  });

  it("makes the stored text of a payload with a long escape run in linear time", () => {
    const payload = (n: number) => ({ k: "\\".repeat(n) + "\ud800" });
    expectLinear(payload, (p) => expect(jsonTextOf(p).text.endsWith('\\ufffd"}')).toBe(true), 128 * 1024, 200);
  });
});

describe("the binary decoder's cost is linear in its input", () => {
  // Each probe's result equals protobuf-es's at a small size (the differential tests in
  // message-decoder*.test.ts cover merges at random).
  // n: 4n repeats make ~350 KB (merges) or ~0.9 MB (list values, keys) of event.
  const cases: [string, (n: number) => Uint8Array, number][] = [
    ["extra_data sent n times in one event", repeatedExtraData, 4000],
    ["the oneof member sent n times, each with extra_data", repeatedMember, 4000],
    ["a Value's struct_value sent n times", repeatedStructValue, 4000],
    ["a Value's list_value sent n times", repeatedListValue, 16_000],
    ["one Struct key sent n times", duplicateKeys, 16_000],
  ];
  for (const [what, make, n] of cases) {
    it(`json-text mode: ${what}`, () => {
      const small = make(40);
      expect(extraData(decodeAsText(small))).toEqual(JSON.parse(JSON.stringify(extraData(fromBinary(EventSchema, small)))));
      expectLinear(make, (bytes) => decodeAsText(bytes), n, 300);
    });
    it(`object mode: ${what}`, () => {
      const small = make(40);
      expect(extraData(decodeAsObject(small))).toEqual(extraData(fromBinary(EventSchema, small)));
      expectLinear(make, (bytes) => decodeAsObject(bytes), n, 300);
    });
  }
});

describe("error classification is linear in the error's message", () => {
  it("tells a dropped connection from a message quoting caller data with many a \"connection\"", () => {
    const quoting = (n: number) => new Error(`insert into "error_logs" values ('${"connection ".repeat(n)}') - value too long`);
    expectLinear(quoting, (err) => expect(isTransientStorageError(err)).toBe(false), 16_000, 200);
    expect(isTransientStorageError(new Error("the connection was unexpectedly CLOSED by the server"))).toBe(true);
    expect(isTransientStorageError(new Error("pool: connection ended"))).toBe(true);
    expect(isTransientStorageError(new Error("connection ok\nstatement closed"))).toBe(false); // not on one line
  });
});

describe("Connect JSON requests (protobuf-es fromJson)", () => {
  // Parsed by Connect before any interceptor or handler: its errors are the answer.
  const parseJson = (method: DescMethodUnary, json: string) =>
    createMethodSerializationLookup(method, undefined, undefined, { readMaxBytes: 64 << 20, writeMaxBytes: 64 << 20 })
      .getI(false)
      .parse(new TextEncoder().encode(json));

  it("refuses a payload nested deeper than 100 as InvalidArgument, at once, however deep (no stack overflow, no Internal)", () => {
    for (const depth of [101, 10_000, 300_000]) {
      const lists = `${"[".repeat(depth)}${"]".repeat(depth)}`;
      const objects = `${'{"a":'.repeat(depth)}1${"}".repeat(depth)}`;
      for (const [method, json] of [
        [AnalyticsService.method.logUserActivity, `{"activityType":"ACTIVITY_TYPE_CLICK","extraData":{"x":${lists}}}`],
        [AnalyticsService.method.logError, `{"errorMessage":"m","context":${objects}}`],
        [AnalyticsService.method.logEvents, `{"events":[{"jobOutcome":{"jobId":"j","extraData":{"x":${lists}}}}]}`],
      ] as [DescMethodUnary, string][]) {
        const start = process.cpuUsage();
        let error: unknown;
        try {
          parseJson(method, json);
        } catch (err) {
          error = err;
        }
        const { user, system } = process.cpuUsage(start);
        expect(error).toBeInstanceOf(ConnectError);
        expect((error as ConnectError).code, `${method.name}, depth ${depth}: ${(error as Error).message}`).toBe(Code.InvalidArgument);
        expect((error as ConnectError).message).toMatch(/maximum recursion depth/);
        if (process.env.LINEAR_COST_LOG) console.log(method.name, depth, json.length, (user + system) / 1000);
        // A stack overflow caught late or a quadratic walk costs seconds at depth 300,000; the
        // bound leaves room for a loaded 2-core CI box (seen within it there beside other files).
        expect((user + system) / 1000).toBeLessThan(1500);
      }
    }
  });
});
