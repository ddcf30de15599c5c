/**
 * The event queue behind the Node logger and the browser tracker, with a scripted `send`: batching
 * by size and age, order and retention through transient failures, discarding on final ones,
 * the bounded queue's drop policy, close, and page-hide beacons.
 */
import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { EventQueue } from "../src/event-queue.js";
import {
  Code,
  ConnectError,
  eventIdOf,
  LogEventsResponseSchema,
  toEvent,
  WriteOutcome,
  type Event,
  type LogEventsResponse,
} from "../src/index.js";

const event = (n: number): Event => toEvent({ error: { errorMessage: `e${n}` } }, { clientTimestamps: true });
const message = (e: Event): string => (e.kind.case === "error" ? e.kind.value.errorMessage : "?");
const ok = (events: Event[]): LogEventsResponse =>
  create(LogEventsResponseSchema, { results: events.map(() => ({ outcome: WriteOutcome.STORED, id: "x" })), storedCount: events.length });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A send that answers from a script of outcomes (an error, or ok), then ok; records every batch. */
function scriptedSend(script: (ConnectError | "ok")[] = []) {
  const batches: string[][] = [];
  const send = async (events: Event[]) => {
    batches.push(events.map(message));
    await sleep(1);
    const next = script.shift() ?? "ok";
    if (next !== "ok") throw next;
    return ok(events);
  };
  return { send, batches };
}

describe("EventQueue", () => {
  it("gives every event an id and a time when recorded", () => {
    const e = event(1);
    expect(eventIdOf(e)).toMatch(/^[0-9a-f-]{36}$/);
    expect(e.kind.value?.occurredAt).toBeDefined();
  });

  it("sends a full batch at once and a partial one when its oldest event is flushIntervalMs old", async () => {
    const { send, batches } = scriptedSend();
    const q = new EventQueue({ send, maxBatch: 3, flushIntervalMs: 80 });
    for (let i = 0; i < 4; i++) q.enqueue(event(i));
    await sleep(20);
    expect(batches).toEqual([["e0", "e1", "e2"]]);
    await sleep(120);
    expect(batches).toEqual([["e0", "e1", "e2"], ["e3"]]);
    expect(q.stats()).toMatchObject({ sent: 4, queued: 0 });
  });

  it("splits a batch too large for the message cap and sends it at once as smaller ones; discards an event too large alone", async () => {
    const errors: string[] = [];
    const tooLarge = () => new ConnectError("message too large", Code.ResourceExhausted);
    // e0-e3 refused as one batch, then as two; e0 alone is too large; the rest go through.
    const { send, batches } = scriptedSend([tooLarge(), tooLarge(), tooLarge()]);
    const q = new EventQueue({ send, maxBatch: 4, flushIntervalMs: 0, onSendError: (e, retry) => errors.push(`${Code[e.code]}:${retry}`) });
    for (let i = 0; i < 6; i++) q.enqueue(event(i));
    await expect.poll(() => q.stats().sent, { timeout: 2000 }).toBe(5);
    expect(batches).toEqual([["e0", "e1", "e2", "e3"], ["e0", "e1"], ["e0"], ["e1"], ["e2", "e3"], ["e4", "e5"]]);
    expect(errors).toEqual(["ResourceExhausted:true", "ResourceExhausted:true", "ResourceExhausted:false"]);
    expect(q.stats()).toMatchObject({ discarded: 1, sent: 5 });
  });

  it("keeps a batch through transient failures, in order, and retries after backoff", async () => {
    const errors: string[] = [];
    const { send, batches } = scriptedSend([new ConnectError("down", Code.Unavailable), new ConnectError("busy", Code.ResourceExhausted, { "retry-after-ms": "30" })]);
    const q = new EventQueue({ send, maxBatch: 2, flushIntervalMs: 0, retry: { initialBackoffMs: 20, maxBackoffMs: 40 }, onSendError: (e, retry) => errors.push(`${Code[e.code]}:${retry}`) });
    for (let i = 0; i < 3; i++) q.enqueue(event(i));
    await expect.poll(() => q.stats().sent, { timeout: 2000 }).toBe(3);
    expect(batches).toEqual([["e0", "e1"], ["e0", "e1"], ["e0", "e1"], ["e2"]]);
    expect(errors).toEqual(["Unavailable:true", "ResourceExhausted:true"]);
    expect(q.stats()).toMatchObject({ failedSends: 2, discarded: 0 });
  });

  it("discards a batch refused with a final code and goes on", async () => {
    const { send, batches } = scriptedSend([new ConnectError("no", Code.PermissionDenied)]);
    const q = new EventQueue({ send, maxBatch: 1, flushIntervalMs: 0 });
    q.enqueue(event(0));
    q.enqueue(event(1));
    await expect.poll(() => q.stats().sent).toBe(1);
    expect(batches).toEqual([["e0"], ["e1"]]);
    expect(q.stats()).toMatchObject({ discarded: 1, sent: 1 });
  });

  it("drops NEW events when full, and counts them", () => {
    const dropped: string[] = [];
    const q = new EventQueue({ send: scriptedSend().send, maxQueue: 2, flushIntervalMs: 60_000, onDropped: (e, why) => dropped.push(`${message(e)}:${why}`) });
    expect([0, 1, 2, 3].map((i) => q.enqueue(event(i)))).toEqual([true, true, false, false]);
    expect(dropped).toEqual(["e2:queue_full", "e3:queue_full"]);
    expect(q.stats()).toMatchObject({ queued: 2, dropped: 2 });
  });

  it("counts per-event rejections", async () => {
    const rejected: string[] = [];
    const q = new EventQueue({
      send: async (events) =>
        create(LogEventsResponseSchema, { results: events.map((_, i) => ({ outcome: i === 1 ? WriteOutcome.REJECTED : WriteOutcome.STORED, violations: i === 1 ? [{ field: "events[1].error.error_message", description: "bad" }] : [] })) }),
      onRejected: (e, r) => rejected.push(`${message(e)}:${r.violations[0]?.field}`),
    });
    for (let i = 0; i < 3; i++) q.enqueue(event(i));
    await q.flush();
    expect(q.stats()).toMatchObject({ sent: 2, rejected: 1 });
    expect(rejected).toEqual(["e1:events[1].error.error_message"]);
  });

  it("flush rejects on a transient failure and keeps the events; close retries until delivered", async () => {
    const { send } = scriptedSend([new ConnectError("down", Code.Unavailable), new ConnectError("down", Code.Unavailable)]);
    const q = new EventQueue({ send, flushIntervalMs: 60_000, retry: { initialBackoffMs: 10, maxBackoffMs: 20 } });
    q.enqueue(event(0));
    await expect(q.flush()).rejects.toMatchObject({ code: Code.Unavailable });
    expect(q.stats().queued).toBe(1);
    expect(await q.close({ timeoutMs: 2000 })).toEqual({ unsent: [] });
    expect(q.stats()).toMatchObject({ sent: 1, queued: 0 });
    expect(q.enqueue(event(1))).toBe(false);
  });

  it("close gives back what it could not deliver in time, cancelling a hanging send", async () => {
    let aborted = false;
    const q = new EventQueue({
      send: (_events, signal) =>
        new Promise((_resolve, reject) => {
          signal.addEventListener("abort", () => {
            aborted = true;
            reject(new ConnectError("cancelled", Code.Canceled));
          });
        }),
    });
    q.enqueue(event(0));
    q.enqueue(event(1));
    const { unsent } = await q.close({ timeoutMs: 100 });
    expect(aborted).toBe(true);
    expect(unsent.map(message)).toEqual(["e0", "e1"]);
  });

  it("close returns as soon as its deadline passes, even when the last retry ends before the timer fires", { timeout: 3000 }, async () => {
    let skew = 0; // the queue's clock jumps past the deadline while a send fails
    const q = new EventQueue({
      send: async () => {
        skew += 60_000;
        throw new ConnectError("down", Code.Unavailable);
      },
      now: () => Date.now() + skew,
    });
    q.enqueue(event(0));
    const { unsent } = await q.close({ timeoutMs: 10_000 });
    expect(unsent.map(message)).toEqual(["e0"]);
  });

  it("hands queued and in-flight events to beacons within a byte budget; a failed beacon puts them back in order", async () => {
    let release: (() => void) | undefined;
    const q = new EventQueue({
      send: (events) => new Promise<LogEventsResponse>((resolve) => (release = () => resolve(ok(events)))),
      maxBatch: 2,
      flushIntervalMs: 60_000,
    });
    q.enqueue(event(0));
    q.enqueue(event(1)); // a full batch: sent at once, and left hanging
    await sleep(10);
    q.enqueue(event(2));
    q.enqueue(event(3));
    q.enqueue(event(4));
    const beacons = q.takeForBeacon(4 * 100, () => 98); // room for 4 events of 100 bytes (with separators)
    expect(beacons.map((b) => b.events.map(message))).toEqual([["e0", "e1"], ["e2", "e3"]]);
    expect(q.size).toBe(5); // e4 queued; e0-e3 in flight (twice for e0, e1)
    beacons[1]!.settle(new Error("network"));
    beacons[0]!.settle(ok(beacons[0]!.events as Event[]));
    release!();
    await expect.poll(() => q.stats().sent).toBe(2); // e0, e1 counted once, by their regular send
    expect(q.stats().failedSends).toBe(1);
    const rest = q.takeForBeacon(10_000, () => 10);
    expect(rest.map((b) => b.events.map(message))).toEqual([["e2", "e3"], ["e4"]]);
  });
});
