/**
 * Device metrics through the real server on port 0 and a real database: a `@grpc/grpc-js` device
 * (proto-loader on the repo's .proto files) streams 10k samples and reads the acks, a cut stream
 * is resumed by resending what was not acknowledged, IngestDeviceMetrics over Connect JSON and
 * buf curl, GetDeviceMetrics paging, and the limits; the columnar form (`columns`) from grpc-js
 * and from connect-node clients (gRPC and Connect protocols), answered and stored exactly as the
 * map form, resumed without duplicates, and refused as a whole when a message carries both forms.
 */
import { once } from "node:events";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import { decodeJwt } from "jose";
import { beforeAll, describe, expect, it } from "vitest";
import { createConnectTransport } from "@connectrpc/connect-node";
import { AnalyticsService } from "../../sdk/src/gen/analytics/v1/analytics_service_pb.js";
import { RefusedBatchSchema } from "../../sdk/src/gen/analytics/v1/error_details_pb.js";
import { MetricsService } from "../../sdk/src/gen/analytics/v1/metrics_service_pb.js";
import { BadRequestSchema } from "../../sdk/src/gen/google/rpc/error_details_pb.js";
import { buildServer } from "../../src/server/build-server.js";
import { bearer, mintTestToken } from "../support/auth.js";
import { rpcError } from "../support/rpc-error.js";
import { seededRandom as prng } from "../support/seeded-random.js";
import { loadAnalyticsServiceClient } from "../support/grpc-js-service.js";
import { bufCurl } from "../support/buf-curl.js";
import { badRequestJson, grpcJsErrorDetails } from "../support/error-details.js";
import { useTestServer } from "../support/test-server.js";

// Not `t`: several tests name a time `t`.
const app = useTestServer();
let AnalyticsClient: grpc.ServiceClientConstructor;

/** A message as proto-loader (keepCase, longs as numbers) reads and writes it. */
interface WireSample {
  occurred_at: { seconds: number; nanos: number };
  metrics: Record<string, number>;
}
interface WireBatch {
  sequence: number;
  device_id: string;
  samples: WireSample[];
}
/** A batch in the columnar form, as proto-loader takes it. */
interface WireColumnsBatch {
  sequence: number;
  device_id: string;
  columns: { metric_names: string[]; base_time: { seconds: number; nanos: number }; offsets_ms: number[]; values: number[] };
}
interface WireAck {
  sequence: number;
  counts: { received: number; stored: number; filtered: number; rejected: number };
  rejections: { index: number; code: string; message: string }[];
}

async function rowCount(deviceId: string): Promise<number> {
  const [row] = await app.rows<{ n: string }>(`select count(*) as n from device_metrics where device_id = ?`, [deviceId]);
  return Number(row!.n);
}

const wireTime = (ms: number) => ({ seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1_000_000 });

/**
 * A realistic device: 10 metrics with ±1 % noise around a base, now and then one jumping 20 %,
 * one sample per second, and every 500th sample carrying a NaN (rejected).
 */
function realisticBatches(deviceId: string, batches: number, perBatch: number, startMs: number): WireBatch[] {
  const random = prng(42);
  const names = ["cpu", "mem", "disk", "net_in", "net_out", "temperature", "error_rate", "queue_depth", "latency_p50", "latency_p99"];
  const base = names.map((n) => (n === "error_rate" ? 0.005 : n === "queue_depth" ? 0 : 10 + random() * 100));
  const out: WireBatch[] = [];
  let n = 0;
  for (let b = 0; b < batches; b++) {
    const samples: WireSample[] = [];
    for (let i = 0; i < perBatch; i++, n++) {
      const jump = random() < 0.02 ? Math.floor(random() * names.length) : -1;
      const metrics: Record<string, number> = {};
      names.forEach((name, m) => {
        let value = name === "queue_depth" ? (random() < 0.1 ? 1 : 0) : base[m]! * (1 + (random() - 0.5) * 0.02);
        if (m === jump) value = value * 1.2 + 1;
        metrics[name] = value;
      });
      if (n % 500 === 499) metrics.cpu = Number.NaN;
      samples.push({ occurred_at: wireTime(startMs + n * 1000), metrics });
    }
    out.push({ sequence: b + 1, device_id: deviceId, samples });
  }
  return out;
}

/**
 * The same batch in the columnar form: names once (the first sample's, in its order), the first
 * sample's time as the base, ms offsets and row-major values. Every sample must carry those names.
 */
function toColumns(batch: WireBatch): WireColumnsBatch {
  const names = Object.keys(batch.samples[0]!.metrics);
  const ms = (s: WireSample) => s.occurred_at.seconds * 1000 + Math.floor(s.occurred_at.nanos / 1e6);
  const baseMs = ms(batch.samples[0]!);
  return {
    sequence: batch.sequence,
    device_id: batch.device_id,
    columns: {
      metric_names: names,
      base_time: wireTime(baseMs),
      offsets_ms: batch.samples.map((s) => ms(s) - baseMs),
      values: batch.samples.flatMap((s) => names.map((n) => s.metrics[n]!)),
    },
  };
}

/** Stored rows of a device, oldest first, with times relative to `startMs`. */
async function storedRows(deviceId: string, startMs: number): Promise<[number, unknown, string][]> {
  const found = await app.rows<{ at: string; metrics: unknown; reason: string }>(
    `select (extract(epoch from occurred_at) * 1000)::bigint::text as at, metrics, reason from device_metrics where device_id = ? order by occurred_at`,
    [deviceId],
  );
  return found.map((r) => [Number(r.at) - startMs, r.metrics, r.reason]);
}

/** Batches in which every sample differs a lot from the one before: all are stored. */
function changingBatches(deviceId: string, batches: number, perBatch: number, startMs: number, firstSequence = 1): WireBatch[] {
  return Array.from({ length: batches }, (_, b) => ({
    sequence: firstSequence + b,
    device_id: deviceId,
    samples: Array.from({ length: perBatch }, (_, i) => {
      const n = b * perBatch + i;
      return { occurred_at: wireTime(startMs + n * 1000), metrics: { level: n % 2 === 0 ? 10 : 20 } };
    }),
  }));
}

function grpcClient(): grpc.Client {
  return new AnalyticsClient(new URL(app.server.url()).host, grpc.credentials.createInsecure());
}

async function metadataFor(role: "device" | "service" | "admin", subject: string): Promise<grpc.Metadata> {
  const metadata = new grpc.Metadata();
  metadata.set("authorization", `Bearer ${await mintTestToken(app.server.config, role, subject)}`);
  return metadata;
}

/**
 * Streams `batches` over one grpc-js bidi call, writing with back-pressure, and collects the acks.
 * `cancelAfterAcks` cuts the stream (client cancel) once that many acks have arrived.
 */
async function streamWithGrpcJs(
  metadata: grpc.Metadata,
  batches: (WireBatch | WireColumnsBatch)[],
  options: { cancelAfterAcks?: number } = {},
): Promise<{ acks: WireAck[]; error?: grpc.ServiceError }> {
  const client = grpcClient();
  const call = (client as unknown as Record<string, (m: grpc.Metadata) => grpc.ClientDuplexStream<WireBatch | WireColumnsBatch, WireAck>>)
    .StreamDeviceMetrics!.call(client, metadata);
  const acks: WireAck[] = [];
  const finished = new Promise<grpc.ServiceError | undefined>((resolve) => {
    call.on("data", (ack: WireAck) => {
      acks.push(ack);
      if (options.cancelAfterAcks !== undefined && acks.length === options.cancelAfterAcks) call.cancel();
    });
    call.on("error", (err: grpc.ServiceError) => resolve(err));
    call.on("end", () => resolve(undefined));
  });
  let cancelled = false;
  call.on("error", () => (cancelled = true));
  for (const batch of batches) {
    if (cancelled) break;
    if (!call.write(batch)) await Promise.race([once(call, "drain"), finished]);
  }
  if (!cancelled) call.end();
  const error = await finished;
  client.close();
  return error === undefined ? { acks } : { acks, error };
}

beforeAll(async () => {
  AnalyticsClient = await loadAnalyticsServiceClient();
});

describe("StreamDeviceMetrics with @grpc/grpc-js", () => {
  it("streams 10k samples; every batch is acknowledged in order and the rows match the acks exactly", async () => {
    const deviceId = "dev-e2e-10k";
    const batches = realisticBatches(deviceId, 100, 100, Date.now() - 3 * 3_600_000);
    const { acks, error } = await streamWithGrpcJs(await metadataFor("device", deviceId), batches);
    expect(error).toBeUndefined();
    expect(acks.map((a) => a.sequence)).toEqual(batches.map((b) => b.sequence));

    const total = { received: 0, stored: 0, filtered: 0, rejected: 0 };
    for (const ack of acks) {
      for (const key of Object.keys(total) as (keyof typeof total)[]) total[key] += ack.counts[key];
      expect(ack.counts.stored + ack.counts.filtered + ack.counts.rejected).toBe(ack.counts.received);
      expect(ack.rejections).toHaveLength(ack.counts.rejected);
    }
    expect(total.received).toBe(10_000);
    expect(total.rejected).toBe(20);
    expect(acks.flatMap((a) => a.rejections.map((r) => [a.sequence, r.index, r.code]))).toContainEqual([5, 99, "non_finite_value"]);
    // Most samples are noise: the filter keeps a small share (first contact, heartbeats, jumps).
    expect(total.stored).toBeGreaterThan(30);
    expect(total.stored).toBeLessThan(3_000);
    expect(await rowCount(deviceId)).toBe(total.stored);
    const reasons = await app.rows<{ reason: string; n: string }>(
      `select reason, count(*) as n from device_metrics where device_id = ? group by reason order by reason`,
      [deviceId],
    );
    expect(reasons.map((r) => r.reason)).toEqual(["first_contact", "heartbeat", "significant_change"]);
    expect(reasons.find((r) => r.reason === "first_contact")!.n).toBe("1");
  });

  it("resumes a cut stream by resending the unacknowledged batches, without duplicate rows", async () => {
    const deviceId = "dev-e2e-resume";
    const metadata = await metadataFor("device", deviceId);
    const batches = changingBatches(deviceId, 20, 50, Date.now() - 2 * 3_600_000);
    const cut = await streamWithGrpcJs(metadata, batches, { cancelAfterAcks: 5 });
    expect(cut.error?.code).toBe(grpc.status.CANCELLED);
    const acked = new Set(cut.acks.map((a) => a.sequence));
    expect(acked.size).toBeGreaterThanOrEqual(5);

    // Batches decided before the cut may have been committed without an ack: resend them all.
    const resend = batches.filter((b) => !acked.has(b.sequence));
    const resumed = await streamWithGrpcJs(metadata, resend);
    expect(resumed.error).toBeUndefined();
    expect(resumed.acks.map((a) => a.sequence)).toEqual(resend.map((b) => b.sequence));
    for (const ack of [...cut.acks, ...resumed.acks]) expect(ack.counts.rejected).toBe(0);

    // Every sample is stored exactly once, whichever stream stored it.
    expect(await rowCount(deviceId)).toBe(20 * 50);
    const [dup] = await app.rows<{ n: string }>(
      `select count(*) as n from (select occurred_at from device_metrics where device_id = ? group by occurred_at having count(*) > 1) d`,
      [deviceId],
    );
    expect(dup!.n).toBe("0");
  });

  it("refuses a device token sending another device's id with PermissionDenied", async () => {
    const { acks, error } = await streamWithGrpcJs(
      await metadataFor("device", "dev-e2e-a"),
      changingBatches("dev-e2e-b", 1, 1, Date.now() - 60_000),
    );
    expect(acks).toHaveLength(0);
    expect(error?.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(await rowCount("dev-e2e-b")).toBe(0);
  });

  it("answers limits with InvalidArgument (samples per message) and ResourceExhausted (message size)", async () => {
    const deviceId = "dev-e2e-limits";
    const metadata = await metadataFor("device", deviceId);
    const [tooMany] = changingBatches(deviceId, 1, 1001, Date.now() - 3_600_000, 2);
    const first = await streamWithGrpcJs(metadata, [...changingBatches(deviceId, 1, 1, Date.now() - 7_200_000), tooMany!]);
    expect(first.acks.map((a) => a.sequence)).toEqual([1]);
    expect(first.error?.code).toBe(grpc.status.INVALID_ARGUMENT);
    // Connect percent-encodes grpc-message with encodeURIComponent; grpc-js decodes it with
    // decodeURI, which leaves reserved characters such as ":" encoded (%3A).
    expect(decodeURIComponent(first.error!.details)).toBe(
      "invalid request: samples: must hold 1 to 1000 samples (got 1001) (batch sequence 2)",
    );
    // For the device's program: the refused batch and the field, as details.
    const details = grpcJsErrorDetails(first.error!);
    expect(details.findDetails(RefusedBatchSchema).map((d) => d.sequence)).toEqual([2n]);
    expect(details.findDetails(BadRequestSchema).flatMap((d) => d.fieldViolations)).toMatchObject([
      { field: "samples", description: "must hold 1 to 1000 samples (got 1001)" },
    ]);

    const big: WireBatch = {
      sequence: 1,
      device_id: deviceId,
      samples: Array.from({ length: 1000 }, (_, i) => ({
        occurred_at: wireTime(Date.now() - 3_600_000 + i),
        metrics: Object.fromEntries(Array.from({ length: 30 }, (_, m) => [`a_rather_long_metric_name_number_${m}`, i + m])),
      })),
    };
    const second = await streamWithGrpcJs(metadata, [big]);
    expect(second.error?.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(decodeURIComponent(second.error!.details)).toMatch(/larger than configured readMaxBytes 1048576/);
  });
});

describe("the columnar form (columns)", () => {
  /** What a device is told per batch: sequence, counts and rejections. */
  const answers = (acks: WireAck[]) => acks.map((a) => [a.sequence, a.counts, a.rejections.map((r) => [r.index, r.code, r.message])]);

  it("over grpc-js: 10k samples answered and stored exactly as the same samples in the map form", async () => {
    const start = Date.now() - 3 * 3_600_000;
    const asMaps = realisticBatches("dev-e2e-cols-map", 100, 100, start);
    const asColumns = realisticBatches("dev-e2e-cols", 100, 100, start).map(toColumns);
    const viaMaps = await streamWithGrpcJs(await metadataFor("service", "gateway"), asMaps);
    const viaColumns = await streamWithGrpcJs(await metadataFor("device", "dev-e2e-cols"), asColumns);
    expect(viaMaps.error).toBeUndefined();
    expect(viaColumns.error).toBeUndefined();
    expect(answers(viaColumns.acks)).toEqual(answers(viaMaps.acks));
    const rejected = viaColumns.acks.reduce((n, a) => n + a.counts.rejected, 0);
    expect(rejected).toBe(20); // every 500th sample carries a NaN
    expect(viaColumns.acks[4]!.rejections).toEqual([{ index: 99, code: "non_finite_value", message: 'metric "cpu" is NaN, not a finite number' }]);
    const stored = await storedRows("dev-e2e-cols", start);
    expect(stored.length).toBeGreaterThan(30);
    expect(stored).toEqual(await storedRows("dev-e2e-cols-map", start));
  });

  it("from connect-node clients over the gRPC and the Connect protocol", async () => {
    const start = Date.now() - 3_600_000;
    const token = await mintTestToken(app.server.config, "service", "gateway");
    const transports = {
      grpc: createGrpcTransport({ baseUrl: app.server.url(), interceptors: [bearer(token)] }),
      connect: createConnectTransport({ baseUrl: app.server.url(), httpVersion: "2", interceptors: [bearer(token)] }),
    };
    for (const [protocol, transport] of Object.entries(transports)) {
      const deviceId = `dev-e2e-cols-${protocol}`;
      const api = createClient(AnalyticsService, transport);
      async function* requests() {
        for (let b = 0; b < 3; b++) {
          yield {
            sequence: BigInt(b + 1),
            deviceId,
            columns: {
              metricNames: ["cpu", "temp"],
              baseTime: { seconds: BigInt(Math.floor(start / 1000) + b * 10), nanos: 0 },
              offsetsMs: [0, 1000, 2000],
              // b=0: first contact, filtered, NaN; b=1, b=2: one jump each, then filtered
              values: b === 0 ? [50, 20, 50.5, 20, Number.NaN, 20] : [50 + b * 20, 20, 50 + b * 20, 20.2, 50 + b * 20, 20],
            },
          };
        }
      }
      const acks = [];
      for await (const ack of api.streamDeviceMetrics(requests())) acks.push(ack);
      expect(acks.map((a) => [Number(a.sequence), a.counts?.stored, a.counts?.filtered, a.counts?.rejected]), protocol).toEqual([
        [1, 1, 1, 1],
        [2, 1, 2, 0],
        [3, 1, 2, 0],
      ]);
      expect(acks[0]!.rejections.map((r) => [r.index, r.code])).toEqual([[2, "non_finite_value"]]);
      expect(await rowCount(deviceId)).toBe(3);
    }
  });

  it("resumes a cut columnar stream by resending the unacknowledged batches, without duplicate rows", async () => {
    const deviceId = "dev-e2e-cols-resume";
    const metadata = await metadataFor("device", deviceId);
    const batches = changingBatches(deviceId, 20, 50, Date.now() - 2 * 3_600_000).map(toColumns);
    const cut = await streamWithGrpcJs(metadata, batches, { cancelAfterAcks: 5 });
    expect(cut.error?.code).toBe(grpc.status.CANCELLED);
    const acked = new Set(cut.acks.map((a) => a.sequence));
    const resend = batches.filter((b) => !acked.has(b.sequence));
    expect(resend.length).toBeGreaterThan(0);
    const resumed = await streamWithGrpcJs(metadata, resend);
    expect(resumed.error).toBeUndefined();
    expect(resumed.acks.map((a) => a.sequence)).toEqual(resend.map((b) => b.sequence));
    // Each resent sample is stored, or filtered against what the cut stream already stored.
    for (const ack of resumed.acks) {
      expect(ack.counts.received).toBe(50);
      expect(ack.counts.rejected).toBe(0);
      expect(ack.counts.stored + ack.counts.filtered).toBe(50);
    }
    expect(await rowCount(deviceId)).toBe(20 * 50);
    const [dup] = await app.rows<{ n: string }>(
      `select count(*) as n from (select occurred_at from device_metrics where device_id = ? group by occurred_at having count(*) > 1) d`,
      [deviceId],
    );
    expect(dup!.n).toBe("0");
    // Once more, all of it: nothing new is stored.
    const again = await streamWithGrpcJs(metadata, batches);
    expect(again.error).toBeUndefined();
    expect(await rowCount(deviceId)).toBe(20 * 50);
  });

  it("takes the columnar form as Connect JSON, and refuses a message carrying both forms naming the field", async () => {
    const deviceId = "dev-e2e-cols-json";
    const t = Date.now() - 600_000;
    const post = async (body: unknown) => {
      const response = await fetch(`${app.server.url()}/analytics.v1.AnalyticsService/IngestDeviceMetrics`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${await mintTestToken(app.server.config, "device", deviceId)}` },
        body: JSON.stringify(body),
      });
      return { status: response.status, body: await response.json() };
    };
    const columns = { metricNames: ["cpu", "error_rate"], baseTime: new Date(t).toISOString(), offsetsMs: [0, 1000, 2000, 3000], values: [40, 0.01, 40.5, 0.015, 60, 0.015, "NaN", 0.01] };
    expect(await post({ deviceId, columns })).toEqual({
      status: 200,
      body: {
        counts: { received: 4, stored: 2, filtered: 1, rejected: 1 },
        rejections: [{ index: 3, code: "non_finite_value", message: 'metric "cpu" is NaN, not a finite number' }],
      },
    });
    expect(await storedRows(deviceId, t)).toEqual([
      [0, { cpu: 40, error_rate: 0.01 }, "first_contact"],
      [2000, { cpu: 60, error_rate: 0.015 }, "significant_change"],
    ]);
    const both = await post({ deviceId, columns, samples: [{ occurredAt: new Date(t).toISOString(), metrics: { cpu: 1 } }] });
    expect(both).toEqual({
      status: 400,
      body: {
        code: "invalid_argument",
        message: "invalid request: columns: must not be sent together with samples or metric_names (one form per message)",
        details: [badRequestJson({ field: "columns", description: "must not be sent together with samples or metric_names (one form per message)" })],
      },
    });
    const malformed = await post({ deviceId, columns: { ...columns, values: [1, 2, 3] } });
    expect(malformed.body.message).toBe("invalid request: columns.values: must hold one value per sample and metric name, 4 x 2 = 8 (got 3)");
    expect(await rowCount(deviceId)).toBe(2);
  });
});

describe("IngestDeviceMetrics", () => {
  it("stores one batch sent as Connect JSON over HTTP/1.1 and answers with counts and rejections", async () => {
    const deviceId = "dev-e2e-json";
    const t = Date.now() - 600_000;
    const response = await fetch(`${app.server.url()}/analytics.v1.AnalyticsService/IngestDeviceMetrics`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        authorization: `Bearer ${await mintTestToken(app.server.config, "device", deviceId)}`,
      },
      body: JSON.stringify({
        deviceId,
        samples: [
          { occurredAt: new Date(t).toISOString(), metrics: { cpu: 40, error_rate: 0.01 } },
          { occurredAt: new Date(t + 1000).toISOString(), metrics: { cpu: 40.5, error_rate: 0.015 } },
          { occurredAt: new Date(t + 2000).toISOString(), metrics: { cpu: 60, error_rate: 0.015 } },
          { occurredAt: new Date(t + 3000).toISOString(), metrics: { cpu: "NaN" } },
          { metrics: { cpu: 1 } },
        ],
      }),
    });
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({
      counts: { received: 5, stored: 2, filtered: 1, rejected: 2 },
      rejections: [
        { index: 3, code: "non_finite_value", message: 'metric "cpu" is NaN, not a finite number' },
        { index: 4, code: "invalid_timestamp", message: "occurred_at is missing" },
      ],
    });
    const stored = await app.rows<{ occurred_at: Date; metrics: unknown; reason: string }>(
      `select occurred_at, metrics, reason from device_metrics where device_id = ? order by occurred_at`,
      [deviceId],
    );
    expect(stored.map((r) => [new Date(r.occurred_at).getTime(), r.metrics, r.reason])).toEqual([
      [t, { cpu: 40, error_rate: 0.01 }, "first_contact"],
      [t + 2000, { cpu: 60, error_rate: 0.015 }, "significant_change"],
    ]);
  });

  it("names a NUL character in the device id (InvalidArgument) and rejects a sample with one in a metric name alone", async () => {
    const post = async (deviceId: string, samples: unknown[]) =>
      fetch(`${app.server.url()}/analytics.v1.AnalyticsService/IngestDeviceMetrics`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${await mintTestToken(app.server.config, "service")}` },
        body: JSON.stringify({ deviceId, samples }),
      });
    const t = Date.now() - 600_000;
    const badId = await post("dev-\u0000", [{ occurredAt: new Date(t).toISOString(), metrics: { cpu: 1 } }]);
    expect(badId.status).toBe(400);
    expect(await badId.json()).toMatchObject({ code: "invalid_argument", message: "invalid request: device_id: must not contain the NUL character (U+0000)" });
    const badName = await post("dev-e2e-nul", [
      { occurredAt: new Date(t).toISOString(), metrics: { "cpu\u0000": 1 } },
      { occurredAt: new Date(t + 1000).toISOString(), metrics: { cpu: 2 } },
    ]);
    expect(badName.status).toBe(200);
    expect(await badName.json()).toEqual({
      counts: { received: 2, stored: 1, rejected: 1 },
      // index 0 is the default, which Connect JSON leaves out
      rejections: [{ code: "invalid_metric_name", message: "a metric name contains the NUL character (U+0000)" }],
    });
    expect(await app.rows(`select metrics from device_metrics where device_id = ?`, ["dev-e2e-nul"])).toEqual([{ metrics: { cpu: 2 } }]);
  });

  it("stores the compact form (metric_names + values) exactly like the map form", async () => {
    const deviceId = "dev-e2e-compact";
    const t = Date.now() - 600_000;
    const auth = { authorization: `Bearer ${await mintTestToken(app.server.config, "device", deviceId)}` };
    const post = (body: unknown) =>
      fetch(`${app.server.url()}/analytics.v1.AnalyticsService/IngestDeviceMetrics`, {
        method: "POST",
        headers: { "content-type": "application/json", ...auth },
        body: JSON.stringify(body),
      });
    const response = await post({
      deviceId,
      metricNames: ["cpu", "error_rate"],
      samples: [
        { occurredAt: new Date(t).toISOString(), values: [40, 0.01] },
        { occurredAt: new Date(t + 1000).toISOString(), values: [40.5, 0.015] },
        { occurredAt: new Date(t + 2000).toISOString(), values: [60, 0.015] },
      ],
    });
    expect(await response.json()).toEqual({ counts: { received: 3, stored: 2, filtered: 1 } });
    const stored = await app.rows<{ metrics: unknown }>(`select metrics from device_metrics where device_id = ? order by occurred_at`, [deviceId]);
    expect(stored.map((r) => r.metrics)).toEqual([
      { cpu: 40, error_rate: 0.01 },
      { cpu: 60, error_rate: 0.015 },
    ]);
    const bad = await post({ deviceId, metricNames: ["cpu"], samples: [{ occurredAt: new Date(t + 3000).toISOString(), values: [1, 2] }] });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toEqual({
      code: "invalid_argument",
      message: "invalid request: samples[0].values: must hold one value per metric name (1, got 2)",
      details: [badRequestJson({ field: "samples[0].values", description: "must hold one value per metric name (1, got 2)" })],
    });
  });

  it("works with buf curl as the README shows", async () => {
    const token = await mintTestToken(app.server.config, "device", "device-123");
    const at = new Date(Date.now() - 5_000).toISOString();
    const { stdout } = await bufCurl(
      "-H",
      `authorization: Bearer ${token}`,
      "-d",
      `{"deviceId":"device-123","samples":[{"occurredAt":"${at}","metrics":{"cpu":42.5,"error_rate":0.01}}]}`,
      `${app.server.url()}/analytics.v1.AnalyticsService/IngestDeviceMetrics`,
    );
    expect(JSON.parse(stdout)).toEqual({ counts: { received: 1, stored: 1 } });
  });
});

describe("GetDeviceMetrics", () => {
  const deviceId = "dev-e2e-paging";
  const now = Date.now();
  let metrics: ReturnType<typeof createClient<typeof MetricsService>>;

  beforeAll(async () => {
    // 250 samples a minute apart, newest 1 min ago: all stored (they alternate a lot).
    const start = now - 250 * 60_000;
    const batches = changingBatches(deviceId, 5, 50, start).map((b) => ({
      ...b,
      samples: b.samples.map((s, i) => ({ ...s, occurred_at: wireTime(start + ((b.sequence - 1) * 50 + i) * 60_000) })),
    }));
    const { error } = await streamWithGrpcJs(await metadataFor("service", "gateway"), batches);
    expect(error).toBeUndefined();
    expect(await rowCount(deviceId)).toBe(250);
    const token = await mintTestToken(app.server.config, "admin", "ops");
    metrics = createClient(MetricsService, createGrpcTransport({ baseUrl: app.server.url(), interceptors: [bearer(token)] }));
  });

  it("pages newest first with no gaps or repeats", async () => {
    const seen: number[] = [];
    let pageToken = "";
    let pages = 0;
    do {
      const page = await metrics.getDeviceMetrics({ deviceId, hours: 24, pageSize: 100, pageToken });
      pages++;
      expect(page.samples.length).toBeLessThanOrEqual(100);
      for (const s of page.samples) {
        seen.push(Number(s.occurredAt!.seconds) * 1000 + s.occurredAt!.nanos / 1e6);
        expect(["first_contact", "significant_change", "heartbeat"]).toContain(s.reason);
        expect(Object.keys(s.metrics)).toEqual(["level"]);
      }
      pageToken = page.nextPageToken;
    } while (pageToken !== "");
    expect(pages).toBe(3);
    expect(seen).toHaveLength(250);
    expect(new Set(seen).size).toBe(250);
    expect(seen).toEqual([...seen].sort((a, b) => b - a));
    expect(seen[0]).toBe(now - 60_000);
  });

  it("defaults to 100 per page and 24 hours, and honours a shorter window", async () => {
    const first = await metrics.getDeviceMetrics({ deviceId });
    expect(first.samples).toHaveLength(100);
    expect(first.nextPageToken).not.toBe("");
    const lastHour = await metrics.getDeviceMetrics({ deviceId, hours: 1, pageSize: 1000 });
    expect(lastHour.samples.length).toBeGreaterThanOrEqual(59);
    expect(lastHour.samples.length).toBeLessThanOrEqual(61);
    expect(lastHour.nextPageToken).toBe("");
  });

  it("answers an unknown device with an empty page", async () => {
    expect(await metrics.getDeviceMetrics({ deviceId: "nobody" })).toMatchObject({ samples: [], nextPageToken: "" });
  });

  it.each<[string, Record<string, unknown>, string]>([
    ["a missing device_id", {}, "device_id: is required"],
    ["hours 0", { deviceId, hours: 0 }, "hours: must be between 1 and 720, got 0"],
    ["hours 721", { deviceId, hours: 721 }, "hours: must be between 1 and 720, got 721"],
    ["page_size 1001", { deviceId, pageSize: 1001 }, "page_size: must be 1 to 1000 (got 1001)"],
    ["a made-up page_token", { deviceId, pageToken: "abc" }, "page_token: is not a page token of this query"],
  ])("answers %s with InvalidArgument naming the field", async (_label, request, message) => {
    const err = await rpcError(metrics.getDeviceMetrics(request));
    expect(err.code).toBe(Code.InvalidArgument);
    expect(err.rawMessage).toBe(`invalid request: ${message}`);
  });

  it("refuses a forged page_token whose window starts far before the 720-hour cap", async () => {
    // The real token's form, with the window start moved ten years back.
    const real = await metrics.getDeviceMetrics({ deviceId, pageSize: 1 });
    const fields = JSON.parse(Buffer.from(real.nextPageToken, "base64url").toString("utf8")) as Record<string, unknown>;
    const forged = Buffer.from(JSON.stringify({ ...fields, s: String(BigInt(Date.now() - 10 * 365 * 86_400_000) * 1000n) })).toString("base64url");
    const err = await rpcError(metrics.getDeviceMetrics({ deviceId, pageSize: 1000, pageToken: forged }));
    expect(err.code).toBe(Code.InvalidArgument);
    expect(err.rawMessage).toBe(
      "invalid request: page_token: reaches outside the longest window this method allows (720 hours); request the first page again",
    );
    // The real token still pages.
    expect((await metrics.getDeviceMetrics({ deviceId, pageSize: 1, pageToken: real.nextPageToken })).samples).toHaveLength(1);
  });

  it("refuses another device's page_token", async () => {
    const page = await metrics.getDeviceMetrics({ deviceId, pageSize: 1 });
    const err = await rpcError(metrics.getDeviceMetrics({ deviceId: "other", pageToken: page.nextPageToken }));
    expect(err.code).toBe(Code.InvalidArgument);
  });
});

describe("token expiry", () => {
  it("acknowledges what a stream sent before its token expired, stores it, then ends the stream Unauthenticated", async () => {
    const deviceId = "dev-e2e-expiry";
    // exp is in whole seconds: this token expires 2 to 3 s from now.
    const token = await mintTestToken(app.server.config, "device", deviceId, { ttlSeconds: 3 });
    const expiresAtMs = (decodeJwt(token).exp as number) * 1000;
    const metadata = new grpc.Metadata();
    metadata.set("authorization", `Bearer ${token}`);
    const client = grpcClient();
    try {
      const call = (client as unknown as Record<string, (m: grpc.Metadata) => grpc.ClientDuplexStream<WireBatch, WireAck>>)
        .StreamDeviceMetrics!.call(client, metadata);
      const acks: WireAck[] = [];
      const ended = new Promise<{ error: grpc.ServiceError | undefined; atMs: number }>((resolve) => {
        call.on("error", (err: grpc.ServiceError) => resolve({ error: err, atMs: Date.now() }));
        call.on("end", () => resolve({ error: undefined, atMs: Date.now() }));
      });
      const firstAcks = new Promise<void>((resolve) =>
        call.on("data", (ack: WireAck) => {
          acks.push(ack);
          if (acks.length === 2) resolve();
        }),
      );
      const batches = changingBatches(deviceId, 2, 10, Date.now() - 3_600_000);
      call.write(batches[0]!);
      call.write(batches[1]!);
      await firstAcks;
      expect(Date.now()).toBeLessThan(expiresAtMs);
      // The device keeps the stream open (as a real one does) past its token's expiry.
      const { error, atMs } = await ended;
      expect(error?.code).toBe(grpc.status.UNAUTHENTICATED);
      expect(decodeURIComponent(error!.details)).toBe(
        "token expired: acknowledged batches are stored; reconnect with a fresh token and resend the others",
      );
      expect(atMs).toBeGreaterThanOrEqual(expiresAtMs);
      expect(atMs).toBeLessThan(expiresAtMs + 5000);
      expect(acks.map((a) => a.sequence)).toEqual([1, 2]);
      expect(acks.map((a) => a.counts.stored)).toEqual([10, 10]);
      expect(await rowCount(deviceId)).toBe(20);
    } finally {
      client.close();
    }
  });
});

describe("server shutdown", () => {
  it("acknowledges the batches a stream took, then ends it Unavailable so the device reconnects", async () => {
    // A server of its own, on the same database (the embedded one allows one server per folder).
    const dataDir = app.db.embedded ? await mkdtemp(join(tmpdir(), "metrics-e2e-")) : app.db.config.dataDir;
    const other = await buildServer({ ...app.db.config, dataDir });
    await other.listen();
    const deviceId = "dev-e2e-shutdown";
    const metadata = new grpc.Metadata();
    metadata.set("authorization", `Bearer ${await mintTestToken(other.config, "device", deviceId)}`);
    const client = new AnalyticsClient(new URL(other.url()).host, grpc.credentials.createInsecure());
    try {
      const call = (client as unknown as Record<string, (m: grpc.Metadata) => grpc.ClientDuplexStream<WireBatch, WireAck>>)
        .StreamDeviceMetrics!.call(client, metadata);
      const acks: WireAck[] = [];
      const ended = new Promise<grpc.ServiceError | undefined>((resolve) => {
        call.on("error", (err: grpc.ServiceError) => resolve(err));
        call.on("end", () => resolve(undefined));
      });
      const firstAcks = new Promise<void>((resolve) =>
        call.on("data", (ack: WireAck) => {
          acks.push(ack);
          if (acks.length === 2) resolve();
        }),
      );
      const batches = changingBatches(deviceId, 3, 10, Date.now() - 3_600_000);
      call.write(batches[0]!);
      call.write(batches[1]!);
      await firstAcks;
      const closed = other.close();
      const error = await ended;
      await closed;
      expect(error?.code).toBe(grpc.status.UNAVAILABLE);
      expect(decodeURIComponent(error!.details)).toBe(
        "server is shutting down: acknowledged batches are stored; reconnect and resend the others",
      );
      expect(acks.map((a) => a.sequence)).toEqual([1, 2]);
    } finally {
      client.close();
      await other.close();
      if (app.db.embedded) await rm(dataDir, { recursive: true, force: true });
    }
    // The embedded database of the other server is gone with it; on PostgreSQL, check the rows.
    if (!app.db.embedded) expect(await rowCount(deviceId)).toBe(20);
  });
});
