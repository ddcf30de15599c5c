/**
 * The unary `Log*` calls' JSON decoding (src/wire/unary-log-json.ts): the request protobuf-es
 * `fromJsonString` gives, on random requests of each method, compact and pretty-printed; the same
 * refusals (as `InvalidArgument`, bounded); and on a hostile body at the method's cap, a fraction
 * of Connect's one-block decoding time.
 */
import { equals, fromJsonString, toJsonString, type DescMessage } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { LogUserActivityRequestSchema } from "../../sdk/src/gen/analytics/v1/analytics_service_pb.js";
import { loadConfig } from "../../src/config.js";
import { messageCaps } from "../../src/server/message-caps.js";
import { MAX_REQUEST_JSON_DEPTH, UNARY_JSON_METHODS, unaryJsonDecoder } from "../../src/wire/unary-log-json.js";
import { randomMessage } from "../support/random-messages.js";
import { seededRandom } from "../support/seeded-random.js";

const bytes = (text: string) => new TextEncoder().encode(text);

/** The decoder's answer: the request, or the code and message of its refusal. */
function decode(schema: DescMessage, text: string): { message: unknown } | { code: Code; text: string } {
  try {
    return { message: unaryJsonDecoder(schema)(bytes(text)) };
  } catch (err) {
    if (!(err instanceof ConnectError)) throw err;
    return { code: err.code, text: err.rawMessage };
  }
}

describe("unaryJsonDecoder", () => {
  it.each(UNARY_JSON_METHODS.map((m) => [m.name, m.input as DescMessage] as const))("%s: gives what fromJsonString gives, or refuses what it refuses", (_name, schema) => {
    const random = seededRandom(schema.typeName.length);
    let decoded = 0;
    for (let n = 0; n < 300; n++) {
      const message = randomMessage(schema, random, 1);
      let texts: string[];
      try {
        texts = [toJsonString(schema, message), toJsonString(schema, message, { prettySpaces: 2, useProtoFieldName: n % 2 === 1 })];
      } catch {
        continue; // a random value JSON cannot carry (a Timestamp out of range)
      }
      for (const text of texts) {
        let expected;
        try {
          expected = fromJsonString(schema, text);
        } catch {
          expected = undefined;
        }
        const got = decode(schema, text);
        if (expected === undefined) {
          expect(got).toMatchObject({ code: Code.InvalidArgument });
          continue;
        }
        expect("message" in got && equals(schema, got.message as never, expected), text).toBe(true);
        decoded++;
      }
    }
    expect(decoded).toBeGreaterThan(100);
  });

  it("refuses what is not a request, as InvalidArgument, naming the message or the field, in bounded words", () => {
    const s = LogUserActivityRequestSchema;
    expect(decode(s, "{")).toMatchObject({ code: Code.InvalidArgument, text: expect.stringMatching(/^cannot decode message analytics\.v1\.LogUserActivityRequest from JSON: /) });
    expect(decode(s, "[]")).toEqual({ code: Code.InvalidArgument, text: "cannot decode message analytics.v1.LogUserActivityRequest from JSON: expected a JSON object" });
    expect(decode(s, '{"extraData":[1]}')).toEqual({ code: Code.InvalidArgument, text: "invalid request: extra_data: must be a JSON object" });
    expect(decode(s, '{"extraData":{},"extra_data":{}}')).toEqual({ code: Code.InvalidArgument, text: "invalid request: extra_data: is given twice (as extraData and extra_data)" });
    const deep = `{"extraData":{"a":${"[".repeat(MAX_REQUEST_JSON_DEPTH)}${"]".repeat(MAX_REQUEST_JSON_DEPTH)}}}`;
    expect(decode(s, deep)).toMatchObject({ code: Code.InvalidArgument, text: expect.stringMatching(/nested deeper than 64 levels$/) });
    const unknown = decode(s, `{"${"k".repeat(10_000)}":1}`);
    expect(unknown).toMatchObject({ code: Code.InvalidArgument, text: expect.stringMatching(/is unknown|…$/) });
    expect((unknown as { text: string }).text.length).toBeLessThanOrEqual(400);
    // A null payload is no payload; a payload keeps every JSON value.
    expect(decode(s, '{"extraData":null}')).toEqual({ message: fromJsonString(s, "{}") });
    expect((decode(s, '{"extraData":{"a":[1,{"b":null}]}}') as { message: { extraData: unknown } }).message.extraData).toEqual({ a: [1, { b: null }] });
  });

  it("decodes a hostile body at the method's cap in a fraction of Connect's one-block time", () => {
    const defaults = loadConfig({});
    const cap = messageCaps({ maxMessageBytes: defaults.maxMessageBytes, metricsMessageBytes: defaults.metricsMaxMessageBytes }).get("/analytics.v1.AnalyticsService/LogUserActivity")!;
    const empties = `{"pageUrl":"/p","extraData":{"l":[${Array.from({ length: Math.floor((cap - 100) / 3) }, () => "{}").join(",")}]}}`;
    expect(empties.length).toBeLessThanOrEqual(cap);
    const time = (f: () => unknown) => {
      let best = Infinity;
      for (let r = 0; r < 5; r++) {
        const t0 = performance.now();
        f();
        best = Math.min(best, performance.now() - t0);
      }
      return best;
    };
    const decoder = unaryJsonDecoder(LogUserActivityRequestSchema);
    const body = bytes(empties);
    const ours = time(() => decoder(body));
    const connect = time(() => fromJsonString(LogUserActivityRequestSchema, new TextDecoder().decode(body)));
    expect(ours).toBeLessThan(connect / 2);
  });
});
