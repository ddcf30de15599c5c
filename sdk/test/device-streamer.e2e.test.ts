/**
 * The device metrics streamer against the real server, which is stopped and started again
 * (same database, same port) in the middle of the stream: every sample is acknowledged exactly
 * once, none is lost or stored twice (the samples share one metric set, so every batch and every
 * resend goes in the columnar form). Also: the wire form per batch, a batch the server refuses as
 * a whole is dropped and the stream goes on, and a device writing another device's id stops for good.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildServer, type AnalyticsServer } from "../../src/server/build-server.js";
import { mintTestToken } from "../../test/support/auth.js";
import { createTestDatabase, type TestDatabase } from "../../test/support/test-database.js";
import { createRouterTransport, type Interceptor } from "@connectrpc/connect";
import { AnalyticsService, Code, ConnectError, fieldViolationsOf, RefusedBatchSchema, refusedBatchSequence } from "../src/index.js";
import { createMetricsStreamer, type MetricsAck } from "../src/device/index.js";
import type { StreamDeviceMetricsRequest } from "../src/gen/analytics/v1/analytics_service_pb.js";
import { createNodeTransport } from "../src/node/index.js";

let db: TestDatabase;
let server: AnalyticsServer;
let port: number;

async function rows<T = Record<string, unknown>>(sql: string, params: unknown[] = []): Promise<T[]> {
  return server.db.orm.em.fork().getConnection().execute<T[]>(sql, params, "all");
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

beforeAll(async () => {
  // A small per-message cap, so one test can send a batch the server refuses as a whole.
  db = await createTestDatabase({ metricsMaxSamplesPerMessage: 200 });
  server = await buildServer(db.config);
  port = (await server.listen()).port;
});

afterAll(async () => {
  await server?.close();
  await db?.drop();
});

describe("createMetricsStreamer", () => {
  it("survives a server restart mid-stream: every sample acknowledged once, none duplicated", async () => {
    const deviceId = "device-restart";
    const token = await mintTestToken(server.config, "device", deviceId);
    const acks: MetricsAck[] = [];
    const errors: ConnectError[] = [];
    const streamer = createMetricsStreamer({
      baseUrl: `http://127.0.0.1:${port}`,
      deviceId,
      token,
      batchSize: 50,
      maxBatchDelayMs: 20,
      maxUnackedBatches: 1000,
      reconnect: { initialBackoffMs: 50, maxBackoffMs: 400 },
      onAck: (ack) => acks.push(ack),
      onError: (err) => errors.push(err),
    });

    // 6000 samples, one a second in device time, each far from the one before: all are stored.
    const total = 6000;
    const start = Date.now() - 3 * 3600_000;
    let recorded = 0;
    const produce = async (upTo: number) => {
      for (; recorded < upTo; recorded++) {
        expect(streamer.record({ level: recorded % 2 === 0 ? 10 : 20, n: recorded }, start + recorded * 1000)).toBe(true);
        if (recorded % 100 === 99) await sleep(2);
      }
    };

    await produce(2000);
    await expect.poll(() => streamer.stats().acked, { timeout: 20_000 }).toBeGreaterThan(500);
    // Restart while the device keeps recording: close (graceful: acknowledges what it took,
    // ends the stream Unavailable), then a new server on the same database and port.
    const restart = (async () => {
      await server.close();
      await sleep(300);
      server = await buildServer({ ...db.config, port });
      await server.listen();
    })();
    await produce(4000);
    await restart;
    await produce(total);

    await streamer.flushed();
    const stats = streamer.stats();
    const { unacked } = await streamer.close();
    expect(unacked).toEqual([]);

    const sequences = acks.map((a) => a.sequence);
    expect(new Set(sequences).size).toBe(sequences.length);
    expect([...sequences].sort((a, b) => a - b)).toEqual(Array.from({ length: sequences.length }, (_, i) => i + 1));
    expect(acks.reduce((n, a) => n + a.received, 0)).toBe(total);
    expect(stats).toMatchObject({ recorded: total, dropped: 0, acked: total, rejected: 0, pending: 0, unackedBatches: 0, refusedBatches: 0 });
    expect(stats.reconnects).toBeGreaterThanOrEqual(1);
    // Batches in flight when the server stopped were resent after the reconnection, and counted once.
    expect(stats.resentBatches).toBeGreaterThan(0);
    expect(acks.filter((a) => a.resent).length).toBe(stats.resentBatches);
    expect(errors.length).toBeGreaterThanOrEqual(1);
    expect(errors.every((e) => e.code !== Code.PermissionDenied)).toBe(true);

    const [count] = await rows<{ n: string; distinct_times: string; distinct_n: string }>(
      `select count(*) as n, count(distinct occurred_at) as distinct_times, count(distinct (metrics->>'n')) as distinct_n from device_metrics where device_id = ?`,
      [deviceId],
    );
    expect(count).toEqual({ n: String(total), distinct_times: String(total), distinct_n: String(total) });
  });

  it("sends a batch of one metric set in the columnar form, a mixed one in the map form; both are stored alike", async () => {
    const deviceId = "device-forms";
    const sent: StreamDeviceMetricsRequest[] = [];
    // Sees every message the streamer puts on the stream.
    const spy: Interceptor = (next) => async (req) => {
      if (!req.stream) return next(req);
      const inner = req.message as AsyncIterable<StreamDeviceMetricsRequest>;
      async function* observed() {
        for await (const m of inner) {
          sent.push(m);
          yield m;
        }
      }
      return next({ ...req, message: observed() });
    };
    const transport = createNodeTransport({
      baseUrl: server.url(),
      token: await mintTestToken(server.config, "device", deviceId),
      timeoutMs: 0,
      retry: false,
      interceptors: [spy],
    });
    const acks: MetricsAck[] = [];
    const streamer = createMetricsStreamer({ transport, deviceId, batchSize: 1000, maxBatchDelayMs: 60_000, onAck: (a) => acks.push(a) });
    const t = Date.now() - 3_600_000;
    streamer.record({ cpu: 10, temp: 20 }, t);
    streamer.record({ temp: 20, cpu: 10.1 }, t + 1000); // filtered
    streamer.record({ cpu: Number.NaN, temp: 20 }, t + 2000); // rejected, index 2
    streamer.record({ cpu: 30, temp: 20 }, t + 3000);
    streamer.flush();
    streamer.record({ cpu: 30 }, t + 4000); // metric set changed: stored
    streamer.record({ cpu: 30, mem: 1 }, t + 5000);
    await streamer.flushed();
    await streamer.close();

    expect(sent.map((m) => [m.columns === undefined ? "map" : "columns", m.samples.length])).toEqual([
      ["columns", 0],
      ["map", 2],
    ]);
    expect(sent[0]!.columns).toMatchObject({ metricNames: ["cpu", "temp"], offsetsMs: [0, 1000, 2000, 3000] });
    expect(acks.map((a) => [a.received, a.stored, a.filtered, a.rejected, a.rejections.map((r) => [r.index, r.code])])).toEqual([
      [4, 2, 1, 1, [[2, "non_finite_value"]]],
      [2, 2, 0, 0, []],
    ]);
    const stored = await rows<{ at: string; metrics: Record<string, number> }>(
      `select (extract(epoch from occurred_at) * 1000)::bigint::text as at, metrics from device_metrics where device_id = ? order by occurred_at`,
      [deviceId],
    );
    expect(stored.map((r) => [Number(r.at) - t, r.metrics])).toEqual([
      [0, { cpu: 10, temp: 20 }],
      [3000, { cpu: 30, temp: 20 }],
      [4000, { cpu: 30 }],
      [5000, { cpu: 30, mem: 1 }],
    ]);
  });

  it("stamps samples recorded without a time at least 1 ms apart, and flushed() resolves when all are acknowledged", async () => {
    const deviceId = "device-stamps";
    const streamer = createMetricsStreamer({ baseUrl: server.url(), deviceId, token: await mintTestToken(server.config, "device", deviceId), batchSize: 1000, maxBatchDelayMs: 60_000 });
    for (let i = 0; i < 150; i++) streamer.record({ level: i % 2 === 0 ? 1 : 5 });
    expect(streamer.stats()).toMatchObject({ pending: 150, unackedBatches: 0 });
    await streamer.flushed(); // sends the open batch at once
    expect(streamer.stats()).toMatchObject({ acked: 150, stored: 150, pending: 0 });
    await streamer.close();
    const [count] = await rows<{ n: string }>(`select count(distinct occurred_at) as n from device_metrics where device_id = ?`, [deviceId]);
    expect(count!.n).toBe("150");
  });

  it("drops a batch the server refuses as a whole and goes on with the next", async () => {
    const deviceId = "device-refused";
    const errors: ConnectError[] = [];
    const streamer = createMetricsStreamer({
      baseUrl: server.url(),
      deviceId,
      token: await mintTestToken(server.config, "device", deviceId),
      batchSize: 1000,
      reconnect: { initialBackoffMs: 20, maxBackoffMs: 50 },
      onError: (err) => errors.push(err),
    });
    const t = Date.now() - 3600_000;
    for (let i = 0; i < 10; i++) streamer.record({ v: i }, t + i * 1000);
    streamer.flush(); // batch 1: 10 samples, fine
    for (let i = 10; i < 260; i++) streamer.record({ v: i }, t + i * 1000);
    streamer.flush(); // batch 2: 250 samples, over the server's 200
    for (let i = 260; i < 270; i++) streamer.record({ v: i }, t + i * 1000);
    await streamer.flushed(); // batch 3
    expect(streamer.stats()).toMatchObject({ refusedBatches: 1, ackedBatches: 2, acked: 20 });
    expect(errors.map((e) => e.code)).toEqual([Code.InvalidArgument]);
    expect(errors[0]!.rawMessage).toContain("batch sequence 2");
    // What the streamer acted on: the detail naming the batch; and the field, for the device's code.
    expect(refusedBatchSequence(errors[0])).toBe(2n);
    expect(fieldViolationsOf(errors[0]).map((v) => [v.field, v.description])).toEqual([["columns.offsets_ms", "must hold 1 to 200 samples (got 250)"]]);
    await streamer.close();
  });

  it("drops the batch the RefusedBatch detail names, not the oldest unacknowledged, and never reads the message", async () => {
    // A server that reads batches 1 and 2 before acknowledging anything, refuses batch 2 with a
    // message naming no batch, then (on the reconnection) acknowledges whatever it is sent.
    const seen: bigint[][] = [];
    const transport = createRouterTransport(({ service }) =>
      service(AnalyticsService, {
        async *streamDeviceMetrics(requests) {
          const got: bigint[] = [];
          seen.push(got);
          for await (const req of requests) {
            got.push(req.sequence);
            if (seen.length === 1 && req.sequence === 2n) {
              throw new ConnectError("this batch is refused (no sequence in these words)", Code.InvalidArgument, undefined, [
                { desc: RefusedBatchSchema, value: { sequence: 2n } },
              ]);
            }
            if (seen.length > 1) yield { sequence: req.sequence };
          }
        },
      }),
    );
    const errors: ConnectError[] = [];
    const streamer = createMetricsStreamer({ transport, deviceId: "device-detail", batchSize: 1, reconnect: { initialBackoffMs: 5, maxBackoffMs: 10 }, onError: (err) => errors.push(err) });
    const t = Date.now() - 60_000;
    for (let i = 0; i < 3; i++) streamer.record({ v: i }, t + i * 1000); // batches 1, 2, 3
    await streamer.flushed();
    expect(errors.map((e) => refusedBatchSequence(e))).toEqual([2n]);
    expect(seen[1]).toEqual([1n, 3n]); // batch 1 resent and acknowledged, batch 2 dropped
    expect(streamer.stats()).toMatchObject({ refusedBatches: 1, ackedBatches: 2, acked: 2 });
    await streamer.close();
  });

  it("close gives up after its timeout while the server is unreachable, and returns what was not acknowledged", async () => {
    const errors: Code[] = [];
    const streamer = createMetricsStreamer({
      baseUrl: "http://127.0.0.1:1", // nothing listens there
      deviceId: "device-offline",
      token: "unused",
      reconnect: { initialBackoffMs: 20, maxBackoffMs: 50 },
      onError: (err) => errors.push(err.code),
    });
    const t = Date.now() - 60_000;
    for (let i = 0; i < 3; i++) expect(streamer.record({ v: i }, t + i * 1000)).toBe(true);
    const flushed = streamer.flushed();
    const started = Date.now();
    const { unacked } = await streamer.close({ timeoutMs: 300 });
    expect(Date.now() - started).toBeLessThan(2000);
    expect(unacked.map((s) => s.metrics.v)).toEqual([0, 1, 2]);
    await expect(flushed).rejects.toMatchObject({ code: Code.Canceled });
    expect(errors.length).toBeGreaterThan(0);
    expect(new Set(errors)).toEqual(new Set([Code.Unavailable]));
    const attempts = errors.length;
    await new Promise((r) => setTimeout(r, 200));
    expect(errors.length).toBe(attempts); // no reconnection after close
    expect(streamer.record({ v: 9 })).toBe(false);
  });

  it("stops for good when the token's device is not the streamed device", async () => {
    const errors: [Code, boolean][] = [];
    const streamer = createMetricsStreamer({
      baseUrl: server.url(),
      deviceId: "device-b",
      token: await mintTestToken(server.config, "device", "device-a"),
      onError: (err, willRetry) => errors.push([err.code, willRetry]),
    });
    streamer.record({ cpu: 1 });
    await expect(streamer.flushed()).rejects.toMatchObject({ code: Code.PermissionDenied });
    expect(errors).toEqual([[Code.PermissionDenied, false]]);
    expect(streamer.record({ cpu: 2 })).toBe(false);
    await expect(streamer.close()).rejects.toMatchObject({ code: Code.PermissionDenied });
  });
});
