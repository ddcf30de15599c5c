/**
 * In-process RPC tests of the device metrics handlers: the real routes through
 * `createRouterTransport` (real serialization and size limits), a batch writer double, and a
 * principal set by an interceptor as the auth interceptor would.
 */
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, createClient, createRouterTransport, type Interceptor } from "@connectrpc/connect";
import type { EntityManager } from "@mikro-orm/postgresql";
import { describe, expect, it } from "vitest";
import type { MessageInitShape } from "@bufbuild/protobuf";
import {
  AnalyticsService,
  type StreamDeviceMetricsRequestSchema,
  type StreamDeviceMetricsResponse,
} from "../../sdk/src/gen/analytics/v1/analytics_service_pb.js";
import { kPrincipal, type Principal } from "../../src/auth/principal.js";
import { DeviceMetricsIngest, type DeviceMetricRow, type MetricRowResult } from "../../src/metrics/device-metrics-ingest.js";
import { createHealthService } from "../../src/server/health.js";
import { createRoutes } from "../../src/server/routes.js";
import { silentLogger } from "../../src/util/logger.js";
import { rpcError } from "../support/rpc-error.js";

const T0 = Date.now() - 3_600_000;

/** Commits at once and remembers the rows. */
class MemoryWriter {
  readonly rows: DeviceMetricRow[] = [];
  async write(_table: string, rows: readonly DeviceMetricRow[]): Promise<MetricRowResult[]> {
    this.rows.push(...rows);
    return rows.map(() => ({ outcome: "stored" }));
  }
  hasRoom(): boolean {
    return true;
  }
}

/** Sets the principal the way the auth interceptor does. */
const as =
  (principal: Principal | undefined): Interceptor =>
  (next) =>
  (req) => {
    req.contextValues.set(kPrincipal, principal);
    return next(req);
  };

function client(principal: Principal | undefined, limits: { maxMessageBytes?: number } = {}) {
  const writer = new MemoryWriter();
  const deviceMetrics = new DeviceMetricsIngest({ writer, log: silentLogger, limits });
  const routes = createRoutes({
    writer: writer as never,
    em: {} as EntityManager,
    log: silentLogger,
    health: createHealthService(),
    reflection: false,
    deviceMetrics,
  });
  const transport = createRouterTransport(routes, { router: { interceptors: [as(principal)] } });
  return { api: createClient(AnalyticsService, transport), writer, deviceMetrics };
}

const batch = (sequence: number, deviceId: string, n = 1, metrics = 1): MessageInitShape<typeof StreamDeviceMetricsRequestSchema> => ({
  sequence: BigInt(sequence),
  deviceId,
  samples: Array.from({ length: n }, (_, i) => ({
    occurredAt: timestampFromMs(T0 + sequence * 100_000 + i),
    // Squares: every sample differs from the one before by far more than 5 %, so each is stored.
    metrics: Object.fromEntries(Array.from({ length: metrics }, (_, m) => [`metric_${m}`, (sequence * 10 + i) ** 2])),
  })),
});

async function stream(
  api: ReturnType<typeof client>["api"],
  messages: MessageInitShape<typeof StreamDeviceMetricsRequestSchema>[],
): Promise<{ acks: StreamDeviceMetricsResponse[]; error?: { code: Code; message: string } }> {
  async function* requests(): AsyncGenerator<MessageInitShape<typeof StreamDeviceMetricsRequestSchema>> {
    for (const m of messages) yield m;
  }
  const acks: StreamDeviceMetricsResponse[] = [];
  try {
    for await (const ack of api.streamDeviceMetrics(requests())) acks.push(ack);
    return { acks };
  } catch (err) {
    const e = err as { code: Code; rawMessage: string };
    return { acks, error: { code: e.code, message: e.rawMessage } };
  }
}

const device = (subject: string): Principal => ({ subject, role: "device" });

describe("a device principal writes only its own device id", () => {
  it("streams its own metrics", async () => {
    const { api, writer } = client(device("dev-1"));
    const { acks, error } = await stream(api, [batch(1, "dev-1", 3), batch(2, "dev-1", 2)]);
    expect(error).toBeUndefined();
    expect(acks.map((a) => [Number(a.sequence), a.counts?.received, a.counts?.stored])).toEqual([
      [1, 3, 3],
      [2, 2, 2],
    ]);
    expect(writer.rows).toHaveLength(5);
  });

  it("is refused with PermissionDenied for another device's id, on the stream", async () => {
    const { api, writer } = client(device("dev-1"));
    const { acks, error } = await stream(api, [batch(1, "dev-1"), batch(2, "dev-2")]);
    expect(acks.map((a) => Number(a.sequence))).toEqual([1]);
    expect(error?.code).toBe(Code.PermissionDenied);
    expect(error?.message).toContain('device_id: a device may only write data for its own device_id "dev-1"');
    expect(writer.rows.map((r) => r.device_id)).toEqual(["dev-1"]);
  });

  it("is refused with PermissionDenied for another device's id, unary", async () => {
    const { api, writer } = client(device("dev-1"));
    const err = await rpcError(api.ingestDeviceMetrics({ deviceId: "dev-2", samples: batch(1, "dev-2").samples }));
    expect(err.code).toBe(Code.PermissionDenied);
    expect(writer.rows).toHaveLength(0);
    const ok = await api.ingestDeviceMetrics({ deviceId: "dev-1", samples: batch(1, "dev-1").samples });
    expect(ok.counts?.stored).toBe(1);
  });

  it("lets a service write any device and refuses a user", async () => {
    const service = client({ subject: "gateway", role: "service" });
    expect((await stream(service.api, [batch(1, "dev-7")])).acks).toHaveLength(1);
    const user = client({ subject: "alice", role: "user" });
    expect((await stream(user.api, [batch(1, "dev-7")])).error?.code).toBe(Code.PermissionDenied);
  });
});

describe("limits", () => {
  it("answers a message over the size cap with ResourceExhausted, after acking the ones before", async () => {
    const { api } = client(undefined, { maxMessageBytes: 4096 });
    const { acks, error } = await stream(api, [batch(1, "dev-1", 2), batch(2, "dev-1", 100, 10), batch(3, "dev-1")]);
    expect(acks.map((a) => Number(a.sequence))).toEqual([1]);
    expect(error?.code).toBe(Code.ResourceExhausted);
    expect(error?.message).toMatch(/message size \d+ is larger than configured readMaxBytes 4096/);
    const err = await rpcError(api.ingestDeviceMetrics({ deviceId: "dev-1", samples: batch(2, "dev-1", 100, 10).samples }));
    expect(err.code).toBe(Code.ResourceExhausted);
  });

  it("answers too many samples and a missing device_id with InvalidArgument naming the field", async () => {
    const { api } = client(undefined);
    const tooMany = await rpcError(api.ingestDeviceMetrics({ deviceId: "dev-1", samples: batch(1, "dev-1", 1001).samples }));
    expect(tooMany.code).toBe(Code.InvalidArgument);
    expect(tooMany.rawMessage).toBe("invalid request: samples: must hold 1 to 1000 samples (got 1001)");
    const { error } = await stream(api, [batch(1, "")]);
    expect(error).toEqual({ code: Code.InvalidArgument, message: "invalid request: device_id: is required (batch sequence 1)" });
  });

  it("caps open streams per device with ResourceExhausted", async () => {
    const { api, deviceMetrics } = client(undefined);
    // Hold streams open: each sends one batch and then waits.
    const holds: (() => void)[] = [];
    const open = Array.from({ length: deviceMetrics.limits.maxStreamsPerDevice }, (_, i) => {
      const release = new Promise<void>((resolve) => holds.push(resolve));
      async function* requests() {
        yield batch(i + 1, "dev-1");
        await release;
      }
      return (async () => {
        const acks = [];
        for await (const ack of api.streamDeviceMetrics(requests())) acks.push(ack);
        return acks;
      })();
    });
    await expect.poll(() => deviceMetrics.openStreams("dev-1")).toBe(4);
    const { error } = await stream(api, [batch(9, "dev-1")]);
    expect(error?.code).toBe(Code.ResourceExhausted);
    expect(error?.message).toContain('device "dev-1" already has 4 open metrics streams (the limit is 4)');
    for (const h of holds) h();
    expect((await Promise.all(open)).map((a) => a.length)).toEqual([1, 1, 1, 1]);
    expect(deviceMetrics.openStreams("dev-1")).toBe(0);
  });
});

describe("the columnar form (columns)", () => {
  const columnsBatch = (sequence: number, deviceId: string, rows: number[][], offsetsMs = rows.map((_, i) => i * 1000)) => ({
    sequence: BigInt(sequence),
    deviceId,
    columns: {
      metricNames: ["cpu", "temp"],
      baseTime: timestampFromMs(T0 + sequence * 100_000),
      offsetsMs,
      values: rows.flat(),
    },
  });

  it("streams mixed valid and invalid samples: per-sample rejections by index, the rest stored or filtered", async () => {
    const { api, writer } = client(device("dev-1"));
    const { acks, error } = await stream(api, [
      columnsBatch(1, "dev-1", [
        [50, 20],
        [50.5, 20],
        [Number.NaN, 20],
        [80, 20],
        [80, Number.POSITIVE_INFINITY],
      ]),
      batch(2, "dev-1"), // the map form on the same stream
      columnsBatch(3, "dev-1", [[81, 20]]),
    ]);
    expect(error).toBeUndefined();
    expect(acks.map((a) => [Number(a.sequence), a.counts?.received, a.counts?.stored, a.counts?.filtered, a.counts?.rejected])).toEqual([
      [1, 5, 2, 1, 2],
      [2, 1, 1, 0, 0],
      [3, 1, 1, 0, 0], // metric set changed back from metric_0: significant
    ]);
    expect(acks[0]!.rejections.map((r) => [r.index, r.code, r.message])).toEqual([
      [2, "non_finite_value", 'metric "cpu" is NaN, not a finite number'],
      [4, "non_finite_value", 'metric "temp" is Infinity, not a finite number'],
    ]);
    expect(writer.rows.map((r) => [r.occurred_at.getTime() - T0, r.metrics.parse(), r.reason])).toEqual([
      [100_000, { cpu: 50, temp: 20 }, "first_contact"],
      [103_000, { cpu: 80, temp: 20 }, "significant_change"],
      [200_000, { metric_0: 400 }, "significant_change"],
      [300_000, { cpu: 81, temp: 20 }, "significant_change"],
    ]);
  });

  it("answers a malformed columnar batch with InvalidArgument naming the field and the batch", async () => {
    const { api, writer } = client(undefined);
    const { acks, error } = await stream(api, [
      columnsBatch(1, "dev-1", [[1, 2]]),
      columnsBatch(2, "dev-1", [[1, 2], [3]]),
    ]);
    expect(acks.map((a) => Number(a.sequence))).toEqual([1]);
    expect(error).toEqual({
      code: Code.InvalidArgument,
      message: "invalid request: columns.values: must hold one value per sample and metric name, 2 x 2 = 4 (got 3) (batch sequence 2)",
    });
    expect(writer.rows).toHaveLength(1);
  });

  it("refuses a unary request carrying both forms, and too many samples, naming the field", async () => {
    const { api, writer } = client(undefined);
    const { columns } = columnsBatch(1, "dev-1", [[1, 2]]);
    const both = await rpcError(api.ingestDeviceMetrics({ deviceId: "dev-1", columns, samples: batch(1, "dev-1").samples }));
    expect(both.code).toBe(Code.InvalidArgument);
    expect(both.rawMessage).toBe("invalid request: columns: must not be sent together with samples or metric_names (one form per message)");
    const tooMany = columnsBatch(1, "dev-1", Array.from({ length: 1001 }, () => [1, 2])).columns;
    const err = await rpcError(api.ingestDeviceMetrics({ deviceId: "dev-1", columns: tooMany }));
    expect(err.rawMessage).toBe("invalid request: columns.offsets_ms: must hold 1 to 1000 samples (got 1001)");
    expect(writer.rows).toHaveLength(0);
    const ok = await api.ingestDeviceMetrics({ deviceId: "dev-1", columns });
    expect(ok.counts).toMatchObject({ received: 1, stored: 1 });
  });
});
