/**
 * A large LogEvents batch is decoded and judged in slices, other work running between them: a
 * 3.7 MB batch of 1,000-key Structs used to hold the event loop ~130-190 ms in one block (health
 * checks waited behind it), its cost linear but all at once.
 */
import { fromJson, toBinary } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { EventSchema } from "../../sdk/src/gen/analytics/v1/analytics_service_pb.js";
import { kPrincipal, type Principal } from "../../src/auth/principal.js";
import { createLogEventsHandlers } from "../../src/handlers/log-events.js";
import type { LogEventsRequestWire } from "../../src/wire/log-events-wire.js";
import { createContextValues, type HandlerContext } from "@connectrpc/connect";
import { longestBlockDuring } from "../support/event-loop-blocks.js";

const quiet = { error() {}, warn() {}, info() {}, debug() {} } as never;

/** 500 events (the cap), each with a 1,002-key Struct: ~9 MB, well over a slice to decode. */
function bigBatch(): { events: Uint8Array[] } {
  const json = { userActivity: { activityType: "ACTIVITY_TYPE_PAGE_VIEW", pageUrl: "p", extraData: Object.fromEntries(Array.from({ length: 1002 }, (_, i) => [`k${i}`, i])) } };
  const bytes = toBinary(EventSchema, fromJson(EventSchema, json as never));
  return { events: Array.from({ length: 500 }, () => bytes) };
}

function harness() {
  const writer = {
    hasRoom: () => true,
    bufferFullError: () => new Error("full"),
    write: async (_table: string, rows: readonly unknown[]) => rows.map(() => ({ outcome: "stored" as const, id: "x" })),
  };
  const handlers = createLogEventsHandlers({ writer: writer as never, log: quiet, now: () => Date.now() });
  const values = createContextValues().set(kPrincipal, { subject: "t", role: "admin" } as unknown as Principal);
  const ctx = { values } as HandlerContext;
  return { handlers, ctx };
}

describe("LogEvents: slices", () => {
  it("the binary fast path lets other work run while it decodes and judges a large batch", async () => {
    const { events } = bigBatch();
    const h = harness();
    const req = { $typeName: "analytics.internal.LogEventsRequestWire", events } as unknown as LogEventsRequestWire;
    const t0 = performance.now();
    const { longestMs: longest } = await longestBlockDuring(() => h.handlers.logEventsWire(req, h.ctx));
    const total = performance.now() - t0;
    // The batch takes many slices; no block is more than a few of them (one event's own cost).
    expect(total).toBeGreaterThan(60);
    expect(longest).toBeLessThan(Math.max(50, total / 3));
  });
});
