/**
 * JSON `LogEvents` (src/wire/log-events-json.ts): the split and the per-event decoding give what
 * protobuf-es gives for the whole request, refuse what it refuses (a malformed event as an item),
 * cost time linear in the body, and never hold the event loop long: Connect's own decoding of a
 * 3 MB body of empty events held it ~1 s in one block.
 */
import { create, equals, fromJson, fromJsonString, toJson, toJsonString } from "@bufbuild/protobuf";
import { createContextValues, type HandlerContext } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { EventSchema, LogEventsRequestSchema, type Event } from "../../sdk/src/gen/analytics/v1/analytics_service_pb.js";
import { kPrincipal, type Principal } from "../../src/auth/principal.js";
import { createLogEventsHandlers } from "../../src/handlers/log-events.js";
import { largestValidMessageBytes } from "../../src/server/message-caps.js";
import { eventFromJson, EventsJsonError, MAX_EVENT_JSON_DEPTH, splitEventsJson } from "../../src/wire/log-events-json.js";
import { createJsonBodyCapture } from "../../src/wire/json-body-capture.js";
import type { Violation } from "../../src/validation/field-rules.js";
import { randomMessage } from "../support/random-messages.js";
import { seededRandom } from "../support/seeded-random.js";
import { longestBlockDuring } from "../support/event-loop-blocks.js";

const MAX_CHARS = largestValidMessageBytes(EventSchema);

/** Every event of a request text, as the handler decodes them. */
function decodeAll(text: string): (Event | Violation)[] {
  const { spans } = splitEventsJson(text, 1_000_000);
  return spans.map((span, i) => eventFromJson(text, span, i, MAX_CHARS));
}

const isEvent = (x: Event | Violation): x is Event => "$typeName" in x;

const activity = (extra?: unknown) => ({ userActivity: { activityType: "ACTIVITY_TYPE_PAGE_VIEW", pageUrl: "/p", ...(extra === undefined ? {} : { extraData: extra }) } });

describe("splitEventsJson and eventFromJson", () => {
  it("decode random requests exactly as protobuf-es does, compact and pretty-printed", () => {
    let events = 0;
    for (const seed of [1, 2, 3]) {
      const random = seededRandom(seed);
      for (let n = 0; n < 200; n++) {
        const batch = Array.from({ length: 1 + Math.floor(random() * 6) }, () => randomMessage(EventSchema, random, 1) as Event);
        const request = create(LogEventsRequestSchema, { events: batch });
        let texts: string[];
        try {
          texts = [toJsonString(LogEventsRequestSchema, request), toJsonString(LogEventsRequestSchema, request, { prettySpaces: 2, useProtoFieldName: n % 2 === 0 })];
        } catch {
          continue; // a random value JSON cannot carry (a Timestamp out of range)
        }
        for (const text of texts) {
          // Per event, since one protobuf-es refuses (a lone surrogate) is an item here.
          const expected = (JSON.parse(text) as { events: unknown[] }).events.map((json) => {
            try {
              return fromJson(EventSchema, json as never);
            } catch {
              return undefined;
            }
          });
          const got = decodeAll(text);
          expect(got.length).toBe(expected.length);
          got.forEach((e, i) => {
            const want = expected[i];
            if (want === undefined) expect(isEvent(e), text).toBe(false);
            else expect(isEvent(e) && equals(EventSchema, e, want), text).toBe(true);
          });
          events += got.length;
        }
      }
    }
    expect(events).toBeGreaterThan(500);
  });

  it("reads the top level as JSON.parse does: empty, null, a repeated key (the last counts), whitespace", () => {
    expect(splitEventsJson("{}", 10).count).toBe(0);
    expect(splitEventsJson(' \n{ "events" : null }\t', 10).count).toBe(0);
    expect(splitEventsJson('{"events":[]}', 10).count).toBe(0);
    expect(splitEventsJson('{"events":[{},{}],"events":[{}]}', 10).count).toBe(1);
    expect(splitEventsJson('{"\\u0065vents":[{}]}', 10).count).toBe(1);
    const text = '{"events":[ {"a":"]}\\"\\\\"} , [1,[2]] ,"x\\"", 12e3 ,null ]}';
    expect(splitEventsJson(text, 10).spans.map((s) => text.slice(s.start, s.end))).toEqual(['{"a":"]}\\"\\\\"}', "[1,[2]]", '"x\\""', "12e3", "null"]);
  });

  it("counts every event but keeps only the first maxEvents", () => {
    const text = `{"events":[${Array.from({ length: 1000 }, () => "{}").join(",")}]}`;
    const split = splitEventsJson(text, 500);
    expect(split.count).toBe(1000);
    expect(split.spans.length).toBe(500);
  });

  it.each([
    ["", /expected an object/],
    ["[]", /expected an object/],
    ['{"events":[{}]', /expected ',' or '}'/],
    ['{"events":[{}}', /expected ',' or '\]' after events\[0\]/],
    ['{"events":[{},]}', /expected a value/],
    ['{"events":[{"a":"x}]}', /unterminated/],
    ['{"events":{}}', /events must be a list/],
    ['{"events":[]} x', /unexpected text after the request/],
    ['{"evts":[]}', /key "evts" is unknown/],
    [`{"${"k".repeat(10_000)}":1}`, /^key "k{64}…" is unknown$/],
    ['{events:[]}', /expected a key/],
  ])("refuses the body whole: case %#", (text, message) => {
    expect(() => splitEventsJson(text, 10)).toThrow(EventsJsonError);
    expect(() => splitEventsJson(text, 10)).toThrow(message);
  });

  it("refuses the body whole when an event is not JSON, and rejects an event that is JSON but no Event as an item", () => {
    expect(() => decodeAll('{"events":[{"a":tru}]}')).toThrow(/events\[0\] is not valid JSON/);
    const items = decodeAll(JSON.stringify({ events: [activity(), { nope: 1 }, null, 7, [], activity("text"), { userActivity: { extraData: {}, extra_data: {} } }, activity({ ok: true })] }));
    expect(items.map((x) => (isEvent(x) ? "event" : `${x.field}: ${x.description}`))).toEqual([
      "event",
      expect.stringMatching(/^events\[1\]: is not a valid analytics.v1.Event: .*key "nope" is unknown/),
      "events[2]: must be a JSON object (an analytics.v1.Event)",
      "events[3]: must be a JSON object (an analytics.v1.Event)",
      "events[4]: must be a JSON object (an analytics.v1.Event)",
      "events[5].user_activity.extra_data: must be a JSON object",
      "events[6].user_activity.extra_data: is given twice (as extraData and extra_data)",
      "event",
    ]);
  });

  it("keeps Struct payloads as JSON.parse gives them (a null payload is no payload)", () => {
    const text = JSON.stringify({ events: [activity({ a: [1, { b: null }], big: 0 }), activity(null)] }).replace('"big":0', '"big":1e400');
    const [withPayload, nullPayload] = decodeAll(text) as Event[];
    expect(withPayload!.kind.case === "userActivity" && withPayload!.kind.value.extraData).toEqual({ a: [1, { b: null }], big: Infinity });
    expect(nullPayload!.kind.case === "userActivity" && nullPayload!.kind.value.extraData).toBeUndefined();
    expect(toJson(EventSchema, nullPayload!)).toEqual(toJson(EventSchema, fromJson(EventSchema, activity() as never)));
  });

  it("rejects, before parsing it, an event deeper than the depth cap or longer than any valid event", () => {
    const deep = (d: number) => JSON.stringify({ events: [activity(JSON.parse(`${'{"a":'.repeat(d)}1${"}".repeat(d)}`))] });
    expect(isEvent(decodeAll(deep(MAX_EVENT_JSON_DEPTH - 3))[0]!)).toBe(true);
    expect(decodeAll(deep(MAX_EVENT_JSON_DEPTH))[0]).toEqual({ field: "events[0]", description: `nests deeper than ${MAX_EVENT_JSON_DEPTH} levels` });
    const long = JSON.stringify({ events: [activity({ s: "x".repeat(MAX_CHARS) })] });
    expect(decodeAll(long)[0]).toMatchObject({ field: "events[0]", description: expect.stringMatching(/more than any valid event/) });
  });

  it("costs time linear in the body: a 16x longer body of each hostile shape costs about 16x", () => {
    const shapes: [string, (n: number) => string][] = [
      ["empty events", (n) => `{"events":[${"{},".repeat(n)}{}]}`],
      ["one long backslash run", (n) => `{"events":[{"a":"${"\\\\".repeat(n)}"}]}`],
      ["one deep event", (n) => `{"events":[${"[".repeat(n)}${"]".repeat(n)}]}`],
      ["a long key", (n) => `{"${"\\\\".repeat(n)}":1}`],
    ];
    for (const [name, make] of shapes) {
      // CPU time (a preempted process accrues none), best of five: robust to a busy machine.
      const cost = (n: number) => {
        const text = make(n);
        let best = Infinity;
        for (let r = 0; r < 5; r++) {
          const t0 = process.cpuUsage();
          try {
            splitEventsJson(text, 500);
          } catch {
            /* the long key is refused: after its scan */
          }
          const t = process.cpuUsage(t0);
          best = Math.min(best, (t.user + t.system) / 1000);
        }
        return best;
      };
      cost(20_000);
      const small = Math.max(cost(40_000), 1); // CPU time may be counted in ticks: a floor for a tiny figure
      const large = cost(640_000);
      expect(large / small, name).toBeLessThan(16 * 4);
    }
  });
});

describe("logEventsJson", () => {
  function harness() {
    const capture = createJsonBodyCapture();
    const writer = {
      hasRoom: () => true,
      bufferFullError: () => new Error("full"),
      write: async (_table: string, rows: readonly unknown[]) => rows.map(() => ({ outcome: "stored" as const, id: "x" })),
    };
    const quiet = { error() {}, warn() {}, info() {}, debug() {} } as never;
    const handlers = createLogEventsHandlers({ writer: writer as never, log: quiet, now: () => Date.now(), json: { capture, maxEventChars: MAX_CHARS } });
    /** Calls the handler with `text` as the body, through the capture as Connect would. */
    const call = async (text: string) => {
      const key = JSON.parse(capture.jsonOptions.textDecoder.decode(new TextEncoder().encode(text))) as string;
      const values = createContextValues().set(kPrincipal, { subject: "t", role: "admin" } as unknown as Principal);
      let ctx: HandlerContext | undefined;
      await capture.interceptor(async (req: { contextValues: HandlerContext["values"] }) => {
        ctx = { values: req.contextValues } as HandlerContext;
        return {} as never;
      })({ stream: false, message: { value: key }, method: { input: (await import("@bufbuild/protobuf/wkt")).StringValueSchema }, contextValues: values } as never);
      return handlers.logEventsJson(undefined, ctx!);
    };
    return { call };
  }

  it("stores the valid events of a batch and rejects the malformed ones as items", async () => {
    const res = await harness().call(JSON.stringify({ events: [activity({ k: 1 }), { bogus: true }, activity()] }));
    expect(res.storedCount).toBe(2);
    expect(res.rejectedCount).toBe(1);
    expect(res.results[1]!.violations[0]!.field).toBe("events[1]");
  });

  it("refuses an empty, oversized or malformed batch whole, naming what is wrong", async () => {
    const h = harness();
    await expect(h.call('{"events":[]}')).rejects.toThrow(/\[invalid_argument\].*events: must hold at least one event/);
    await expect(h.call(`{"events":[${"{},".repeat(1000)}{}]}`)).rejects.toThrow(/events: must hold at most 500 events \(got 1001\)/);
    await expect(h.call('{"events":[{}] ')).rejects.toThrow(/\[invalid_argument\] invalid request: not an analytics.v1.LogEventsRequest in JSON: expected ','/);
  });

  it("lets other work run while it decodes a large batch: no block near Connect's one-block cost", async () => {
    // 500 events of 1,000-key Structs: ~6 MB of JSON, decoded in one block by Connect.
    const extra = Object.fromEntries(Array.from({ length: 1000 }, (_, i) => [`k${i}`, i]));
    const text = JSON.stringify({ events: Array.from({ length: 500 }, () => activity(extra)) });
    const oneBlock = () => {
      const t0 = performance.now();
      fromJsonString(LogEventsRequestSchema, text);
      return performance.now() - t0;
    };
    oneBlock();
    const connect = oneBlock();
    const h = harness();
    await h.call(text); // warm-up
    const { result: res, longestMs } = await longestBlockDuring(() => h.call(text));
    expect(res.storedCount).toBe(500);
    expect(longestMs).toBeLessThan(Math.max(40, connect / 3));
  });
});
