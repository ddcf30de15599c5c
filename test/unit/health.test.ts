import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { Health } from "../../sdk/src/gen/grpc/health/v1/health_pb.js";
import { createHealthService, ServingStatus } from "../../src/server/health.js";

function setup(options?: Parameters<typeof createHealthService>[0]) {
  const health = createHealthService(options);
  const client = createClient(Health, createRouterTransport(health.register));
  return { health, client };
}

/** Polls until `predicate` holds; watchers detach asynchronously after a cancel. */
async function eventually(predicate: () => boolean): Promise<void> {
  for (let i = 0; i < 100 && !predicate(); i++) {
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  expect(predicate()).toBe(true);
}

describe("Health.Check", () => {
  it("reports the whole server as SERVING by default", async () => {
    const { client } = setup();
    expect((await client.check({ service: "" })).status).toBe(ServingStatus.SERVING);
  });

  it("reports what setStatus recorded", async () => {
    const { health, client } = setup();
    health.setStatus("analytics.v1.AnalyticsService", ServingStatus.NOT_SERVING);
    const res = await client.check({ service: "analytics.v1.AnalyticsService" });
    expect(res.status).toBe(ServingStatus.NOT_SERVING);
  });

  it("fails with NOT_FOUND for an unknown service", async () => {
    const { client } = setup();
    const err = await client.check({ service: "nope.v1.NopeService" }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.NotFound);
    expect((err as ConnectError).rawMessage).toBe('unknown service "nope.v1.NopeService"');
  });

  it("echoes at most 100 characters of an unknown name, well-formed (it travels as a gRPC trailer)", async () => {
    const { client } = setup();
    const err = await client.check({ service: "\\".repeat(25_000) }).catch((e: unknown) => e);
    expect((err as ConnectError).code).toBe(Code.NotFound);
    expect((err as ConnectError).rawMessage).toBe(`unknown service ${JSON.stringify(`${"\\".repeat(100)}…`)}`);
    const cut = await client.check({ service: `${"a".repeat(99)}😀` }).catch((e: unknown) => e);
    expect((cut as ConnectError).rawMessage).toBe(`unknown service "${"a".repeat(99)}\ufffd…"`);
  });

  it("starts from the given statuses", async () => {
    const { client } = setup({ statuses: { "": ServingStatus.NOT_SERVING } });
    expect((await client.check({})).status).toBe(ServingStatus.NOT_SERVING);
  });
});

describe("Health.List", () => {
  it("lists every known service", async () => {
    const { health, client } = setup();
    health.setStatus("analytics.v1.MetricsService", ServingStatus.SERVING);
    const res = await client.list({});
    expect(Object.fromEntries(Object.entries(res.statuses).map(([k, v]) => [k, v.status]))).toEqual({
      "": ServingStatus.SERVING,
      "analytics.v1.MetricsService": ServingStatus.SERVING,
    });
  });
});

describe("setAllNotServing", () => {
  it("marks everything NOT_SERVING and ignores later setStatus calls", async () => {
    const { health, client } = setup();
    health.setStatus("analytics.v1.AnalyticsService", ServingStatus.SERVING);
    health.setAllNotServing();
    health.setStatus("", ServingStatus.SERVING);
    expect((await client.check({})).status).toBe(ServingStatus.NOT_SERVING);
    const res = await client.check({ service: "analytics.v1.AnalyticsService" });
    expect(res.status).toBe(ServingStatus.NOT_SERVING);
  });
});

describe("Health.Watch", () => {
  it("sends the current status, then every change", async () => {
    const { health, client } = setup();
    const abort = new AbortController();
    const stream = client.watch({ service: "" }, { signal: abort.signal })[Symbol.asyncIterator]();

    expect((await stream.next()).value?.status).toBe(ServingStatus.SERVING);
    health.setStatus("", ServingStatus.NOT_SERVING);
    expect((await stream.next()).value?.status).toBe(ServingStatus.NOT_SERVING);
    health.setStatus("", ServingStatus.SERVING);
    expect((await stream.next()).value?.status).toBe(ServingStatus.SERVING);
    abort.abort();
  });

  it("does not repeat an unchanged status", async () => {
    const { health, client } = setup();
    const abort = new AbortController();
    const stream = client.watch({ service: "" }, { signal: abort.signal })[Symbol.asyncIterator]();

    expect((await stream.next()).value?.status).toBe(ServingStatus.SERVING);
    health.setStatus("", ServingStatus.SERVING);
    health.setStatus("", ServingStatus.NOT_SERVING);
    expect((await stream.next()).value?.status).toBe(ServingStatus.NOT_SERVING);
    abort.abort();
  });

  it("reports SERVICE_UNKNOWN without ending, then the status once it becomes known", async () => {
    const { health, client } = setup();
    const abort = new AbortController();
    const stream = client
      .watch({ service: "analytics.v1.MetricsService" }, { signal: abort.signal })
      [Symbol.asyncIterator]();

    const first = await stream.next();
    expect(first.done).toBe(false);
    expect(first.value?.status).toBe(ServingStatus.SERVICE_UNKNOWN);
    health.setStatus("analytics.v1.MetricsService", ServingStatus.SERVING);
    expect((await stream.next()).value?.status).toBe(ServingStatus.SERVING);
    abort.abort();
  });

  it("tells watchers about setAllNotServing", async () => {
    const { health, client } = setup();
    const abort = new AbortController();
    const stream = client.watch({ service: "" }, { signal: abort.signal })[Symbol.asyncIterator]();

    await stream.next();
    health.setAllNotServing();
    expect((await stream.next()).value?.status).toBe(ServingStatus.NOT_SERVING);
    abort.abort();
  });

  it("releases its listener when the client cancels", async () => {
    const { health, client } = setup();
    const abort = new AbortController();
    const stream = client.watch({ service: "x" }, { signal: abort.signal })[Symbol.asyncIterator]();
    await stream.next();
    expect(health.watcherCount).toBe(1);

    abort.abort();
    await expect(stream.next()).rejects.toMatchObject({ code: Code.Canceled });
    await eventually(() => health.watcherCount === 0);
  });

  it("releases its listener on deadline", async () => {
    const { health, client } = setup();
    const stream = client.watch({ service: "" }, { timeoutMs: 50 })[Symbol.asyncIterator]();
    await stream.next();
    expect(health.watcherCount).toBe(1);

    await expect(stream.next()).rejects.toMatchObject({ code: Code.DeadlineExceeded });
    await eventually(() => health.watcherCount === 0);
  });

  it("releases listeners of many cancelled watches", async () => {
    const { health, client } = setup();
    const aborts = Array.from({ length: 20 }, () => new AbortController());
    const streams = aborts.map((a, i) =>
      client.watch({ service: `svc-${i % 3}` }, { signal: a.signal })[Symbol.asyncIterator](),
    );
    await Promise.all(streams.map((s) => s.next()));
    expect(health.watcherCount).toBe(20);

    for (const a of aborts) a.abort();
    await Promise.all(streams.map((s) => s.next().catch(() => undefined)));
    await eventually(() => health.watcherCount === 0);
    // Status changes after the watchers left must not reach anybody (and must not throw).
    health.setStatus("svc-0", ServingStatus.SERVING);
  });

  it("ends cleanly and releases its listener when the server shuts down", async () => {
    const health = createHealthService();
    const shutdown = new AbortController();
    const transport = createRouterTransport(health.register, {
      router: { shutdownSignal: shutdown.signal },
    });
    const client = createClient(Health, transport);
    const received: ServingStatus[] = [];
    const done = (async () => {
      for await (const res of client.watch({ service: "" })) {
        received.push(res.status);
        if (received.length === 1) {
          health.setAllNotServing();
        } else {
          shutdown.abort();
        }
      }
    })();

    await expect(done).resolves.toBeUndefined();
    expect(received).toEqual([ServingStatus.SERVING, ServingStatus.NOT_SERVING]);
    await eventually(() => health.watcherCount === 0);
  });
});
