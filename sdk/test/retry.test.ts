/**
 * Retry decisions and the retry interceptor, in process (`createRouterTransport`): which calls are
 * retried for which codes, how long between attempts, and that the deadline bounds it all.
 */
import { Code, ConnectError, createRouterTransport, type Interceptor } from "@connectrpc/connect";
import { create, toBinary } from "@bufbuild/protobuf";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { EventSchema } from "../src/gen/analytics/v1/analytics_service_pb.js";
import { encodedLogEventsRequest, logEventsEncodedMethod } from "../src/wire/log-events-wire.js";
import {
  AnalyticsService,
  backoffMs,
  createAnalyticsClient,
  createRetryInterceptor,
  isIdempotentCall,
  isTransientError,
  MetricsService,
  retryDelayMs,
  retryHintMs,
  retryInfoMs,
  RetryInfoSchema,
  WriteOutcome,
} from "../src/index.js";

describe("backoff", () => {
  it("doubles from initialBackoffMs up to maxBackoffMs, with jitter between half and all", () => {
    const opts = { initialBackoffMs: 100, maxBackoffMs: 1000 };
    expect([0, 1, 2, 3, 4, 10].map((r) => backoffMs(r, opts, () => 1))).toEqual([100, 200, 400, 800, 1000, 1000]);
    expect([0, 1, 2, 3, 4, 10].map((r) => backoffMs(r, opts, () => 0))).toEqual([50, 100, 200, 400, 500, 500]);
  });

  it("uses the server's retry-after-ms hint when there is one", () => {
    const hinted = new ConnectError("slow down", Code.ResourceExhausted, { "retry-after-ms": "1200" });
    expect(retryHintMs(hinted)).toBe(1200);
    expect(retryDelayMs(hinted, 5, {}, () => 0)).toBe(1200);
    expect(retryDelayMs(hinted, 5, {}, () => 1)).toBe(1320); // + up to 10 %
    expect(retryHintMs(new ConnectError("x", Code.ResourceExhausted, { "retry-after-ms": "soon" }))).toBeUndefined();
    expect(retryHintMs(new Error("plain"))).toBeUndefined();
  });

  it("reads the hint from a google.rpc.RetryInfo detail first, and the retry-after-ms header of older servers otherwise", () => {
    const retryInfo = (ms: number) => ({ desc: RetryInfoSchema, value: { retryDelay: durationFromMs(ms) } });
    const detailed = new ConnectError("slow down", Code.ResourceExhausted, undefined, [retryInfo(1500)]);
    expect(retryHintMs(detailed)).toBe(1500);
    expect(retryDelayMs(detailed, 5, {}, () => 0)).toBe(1500);
    // Both: the detail decides.
    expect(retryHintMs(new ConnectError("slow down", Code.ResourceExhausted, { "retry-after-ms": "9000" }, [retryInfo(250)]))).toBe(250);
    // As a client receives it: type name and bytes.
    const received = new ConnectError("slow down", Code.ResourceExhausted);
    received.details.push({ type: RetryInfoSchema.typeName, value: toBinary(RetryInfoSchema, create(RetryInfoSchema, { retryDelay: durationFromMs(2000) })) });
    expect(retryHintMs(received)).toBe(2000);
    expect(retryInfoMs(received)).toBe(2000);
    expect(retryInfoMs(new ConnectError("slow down", Code.ResourceExhausted, { "retry-after-ms": "9000" }))).toBeUndefined();
  });

  it("treats only final codes as final", () => {
    for (const code of [Code.Unavailable, Code.ResourceExhausted, Code.DeadlineExceeded, Code.Internal, Code.Unknown, Code.Unauthenticated]) {
      expect(isTransientError(new ConnectError("x", code))).toBe(true);
    }
    for (const code of [Code.InvalidArgument, Code.PermissionDenied, Code.Unimplemented, Code.FailedPrecondition, Code.NotFound]) {
      expect(isTransientError(new ConnectError("x", code))).toBe(false);
    }
  });
});

describe("isIdempotentCall", () => {
  const m = AnalyticsService.method;
  it("is true for queries, ResolveError, IngestDeviceMetrics and events with ids", () => {
    expect(isIdempotentCall(MetricsService.method.getErrorTrends, {})).toBe(true);
    expect(isIdempotentCall(m.resolveError, {})).toBe(true);
    expect(isIdempotentCall(m.ingestDeviceMetrics, {})).toBe(true);
    expect(isIdempotentCall(m.logError, { eventId: "0190c4d2-0000-7000-8000-000000000000" })).toBe(true);
    expect(isIdempotentCall(m.logEvents, { events: [{ kind: { value: { eventId: "a" } } }, { kind: { value: { eventId: "b" } } }] })).toBe(true);
  });
  it("is false for events without ids (a retry could store them twice)", () => {
    expect(isIdempotentCall(m.logError, { eventId: "" })).toBe(false);
    expect(isIdempotentCall(m.logEvents, { events: [{ kind: { value: { eventId: "a" } } }, { kind: { value: { eventId: "" } } }] })).toBe(false);
    expect(isIdempotentCall(m.logEvents, { events: [] })).toBe(false);
  });
  it("judges a batch of pre-encoded events (the Node client's) by the events it was made from", () => {
    const event = (eventId: string) => create(EventSchema, { kind: { case: "error", value: { errorMessage: "x", eventId } } });
    expect(isIdempotentCall(logEventsEncodedMethod, encodedLogEventsRequest([event("a"), event("b")]))).toBe(true);
    expect(isIdempotentCall(logEventsEncodedMethod, encodedLogEventsRequest([event("a"), event("")]))).toBe(false);
    expect(isIdempotentCall(logEventsEncodedMethod, encodedLogEventsRequest([create(EventSchema)]))).toBe(false);
    // The same bytes without the mark (made elsewhere): not known to be safe.
    expect(isIdempotentCall(logEventsEncodedMethod, { $typeName: "analytics.internal.LogEventsRequestWire", events: [] })).toBe(false);
  });
});

/** A LogError that fails with `failures` in turn, then succeeds; counts calls. */
function flakyServer(failures: ConnectError[]) {
  let calls = 0;
  const transport = (interceptors: Interceptor[]) =>
    createRouterTransport(
      ({ service }) =>
        service(AnalyticsService, {
          logError() {
            const failure = failures[calls++];
            if (failure) throw failure;
            return { id: "e-1", outcome: WriteOutcome.STORED };
          },
        }),
      { transport: { interceptors } },
    );
  return { transport, calls: () => calls };
}

describe("createRetryInterceptor", () => {
  const fast = { maxAttempts: 4, initialBackoffMs: 5, maxBackoffMs: 10 };

  it("retries Unavailable for a call with an event id (the SDK client sets one)", async () => {
    const server = flakyServer([new ConnectError("down", Code.Unavailable), new ConnectError("down", Code.Unavailable)]);
    const client = createAnalyticsClient(server.transport([createRetryInterceptor(fast)]));
    expect((await client.logError({ errorMessage: "x" })).id).toBe("e-1");
    expect(server.calls()).toBe(3);
  });

  it("does not retry Unavailable for a call without an event id", async () => {
    const server = flakyServer([new ConnectError("down", Code.Unavailable)]);
    const client = createAnalyticsClient(server.transport([createRetryInterceptor(fast)]), { generateEventIds: false });
    await expect(client.logError({ errorMessage: "x" })).rejects.toMatchObject({ code: Code.Unavailable });
    expect(server.calls()).toBe(1);
  });

  it("retries ResourceExhausted with a hint for any call, after the hinted wait; not without a hint", async () => {
    const hinted = flakyServer([new ConnectError("rate", Code.ResourceExhausted, { "retry-after-ms": "60" })]);
    const client = createAnalyticsClient(hinted.transport([createRetryInterceptor(fast)]), { generateEventIds: false });
    const started = Date.now();
    await client.logError({ errorMessage: "x" });
    expect(Date.now() - started).toBeGreaterThanOrEqual(55);
    expect(hinted.calls()).toBe(2);

    // The hint as a google.rpc.RetryInfo detail alone (no header): retried after it too.
    const detailed = flakyServer([new ConnectError("rate", Code.ResourceExhausted, undefined, [{ desc: RetryInfoSchema, value: { retryDelay: durationFromMs(60) } }])]);
    const detailedStarted = Date.now();
    await createAnalyticsClient(detailed.transport([createRetryInterceptor(fast)]), { generateEventIds: false }).logError({ errorMessage: "x" });
    expect(Date.now() - detailedStarted).toBeGreaterThanOrEqual(55);
    expect(detailed.calls()).toBe(2);

    const bare = flakyServer([new ConnectError("too big", Code.ResourceExhausted)]);
    await expect(createAnalyticsClient(bare.transport([createRetryInterceptor(fast)])).logError({ errorMessage: "x" })).rejects.toMatchObject({
      code: Code.ResourceExhausted,
    });
    expect(bare.calls()).toBe(1);
  });

  it("gives up after maxAttempts and never retries final codes", async () => {
    const down = flakyServer(Array.from({ length: 10 }, () => new ConnectError("down", Code.Unavailable)));
    await expect(createAnalyticsClient(down.transport([createRetryInterceptor(fast)])).logError({ errorMessage: "x" })).rejects.toMatchObject({ code: Code.Unavailable });
    expect(down.calls()).toBe(4);

    const bad = flakyServer([new ConnectError("bad", Code.InvalidArgument)]);
    await expect(createAnalyticsClient(bad.transport([createRetryInterceptor(fast)])).logError({ errorMessage: "x" })).rejects.toMatchObject({ code: Code.InvalidArgument });
    expect(bad.calls()).toBe(1);
  });

  it("does not start a wait that would outlast the call's deadline", async () => {
    const server = flakyServer([new ConnectError("rate", Code.ResourceExhausted, { "retry-after-ms": "5000" })]);
    const client = createAnalyticsClient(server.transport([createRetryInterceptor(fast)]));
    const started = Date.now();
    await expect(client.logError({ errorMessage: "x" }, { timeoutMs: 1000 })).rejects.toMatchObject({ code: Code.ResourceExhausted });
    expect(Date.now() - started).toBeLessThan(500);
    expect(server.calls()).toBe(1);
  });

  it("reports a fetch that could not reach the server as Unavailable whatever its engine's words, and retries it", async () => {
    // A fetch's network error is a TypeError; Safari says "Load failed", which names neither fetch nor network.
    for (const words of ["Failed to fetch", "fetch failed", "Load failed"]) {
      const server = flakyServer([]);
      let failed = 0;
      const network: Interceptor = (next) => async (req) => {
        if (failed++ === 0) throw ConnectError.from(new TypeError(words));
        return next(req);
      };
      const client = createAnalyticsClient(server.transport([createRetryInterceptor(fast), network]));
      await client.logError({ errorMessage: "x" });
      expect([failed, server.calls()]).toEqual([2, 1]);
      const once = createAnalyticsClient(flakyServer([]).transport([createRetryInterceptor({ maxAttempts: 1 }), () => () => Promise.reject(ConnectError.from(new TypeError(words)))]));
      await expect(once.logError({ errorMessage: "x" })).rejects.toMatchObject({ code: Code.Unavailable, rawMessage: `network error: ${words}` });
    }
  });

  it("reports a Canceled the caller did not ask for (a dropped connection) as Unavailable, and retries it", async () => {
    const server = flakyServer([new ConnectError("http/2 stream closed with error code CANCEL (0x8)", Code.Canceled)]);
    const client = createAnalyticsClient(server.transport([createRetryInterceptor(fast)]));
    await client.logError({ errorMessage: "x" });
    expect(server.calls()).toBe(2);
    const once = flakyServer([new ConnectError("reset", Code.Canceled)]);
    await expect(createAnalyticsClient(once.transport([createRetryInterceptor({ maxAttempts: 1 })])).logError({ errorMessage: "x" })).rejects.toMatchObject({
      code: Code.Unavailable,
      rawMessage: "connection lost: reset",
    });
  });
});
