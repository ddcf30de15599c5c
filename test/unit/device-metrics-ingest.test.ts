import { getEventListeners } from "node:events";
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { MetricSampleSchema, SampleColumnsSchema, type MetricSample } from "../../sdk/src/gen/analytics/v1/analytics_service_pb.js";
import { RefusedBatchSchema } from "../../sdk/src/gen/analytics/v1/error_details_pb.js";
import { BadRequestSchema } from "../../sdk/src/gen/google/rpc/error_details_pb.js";
import { loadConfig } from "../../src/config.js";
import {
  DeviceMetricsIngest,
  deviceMetricsOptionsFromConfig,
  type DeviceMetricRow,
  type DeviceMetricsLimits,
  type MetricRowResult,
  type StreamAck,
  type StreamBatch,
} from "../../src/metrics/device-metrics-ingest.js";
import { ColumnarSampleBatch } from "../../src/metrics/sample-columns.js";
import { JsonText } from "../../src/util/json-text.js";
import { silentLogger } from "../../src/util/logger.js";
import { rpcError } from "../support/rpc-error.js";

const T0 = 1_700_000_000_000;

const sample = (atMs: number, metrics: Record<string, number>): MetricSample =>
  create(MetricSampleSchema, { occurredAt: timestampFromMs(atMs), metrics });

/** Samples of the same metrics in the columnar form: `rows[i]` at `baseMs + offsets[i]`. */
const columnar = (names: string[], baseMs: number, offsetsMs: number[], rows: number[][]): ColumnarSampleBatch =>
  new ColumnarSampleBatch(create(SampleColumnsSchema, { metricNames: names, baseTime: timestampFromMs(baseMs), offsetsMs, values: rows.flat() }));

/** A batch writer double: records calls; resolves them at once (auto) or when the test says. */
class FakeWriter {
  readonly calls: { rows: readonly DeviceMetricRow[]; resolve(): void; reject(err: unknown): void }[] = [];
  readonly committed: DeviceMetricRow[] = [];
  auto = true;
  /** Rows the buffer still has room for; whenWritable waits while it is short. */
  room = Number.POSITIVE_INFINITY;
  private roomWaiters: (() => void)[] = [];
  /** Errors to fail the next writes with, one per call. */
  failNext: unknown[] = [];

  write(_table: "device_metrics", rows: readonly DeviceMetricRow[]): Promise<MetricRowResult[]> {
    const failure = this.failNext.shift();
    if (failure !== undefined) return Promise.reject(failure);
    return new Promise((resolve, reject) => {
      const call = {
        rows,
        resolve: () => {
          const keys = new Set(this.committed.map((r) => `${r.device_id}/${r.occurred_at.getTime()}`));
          const results = rows.map((r): MetricRowResult => {
            const key = `${r.device_id}/${r.occurred_at.getTime()}`;
            if (keys.has(key)) return { outcome: "replayed" };
            keys.add(key);
            this.committed.push(r);
            return { outcome: "stored" };
          });
          resolve(results);
        },
        reject,
      };
      this.calls.push(call);
      if (this.auto) call.resolve();
    });
  }

  whenWritable(rows: number, signal?: AbortSignal): Promise<void> {
    if (rows <= this.room) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const check = () => {
        if (rows <= this.room) resolve();
        else this.roomWaiters.push(check);
      };
      signal?.addEventListener("abort", () => reject(signal.reason), { once: true });
      this.roomWaiters.push(check);
    });
  }

  setRoom(rows: number): void {
    this.room = rows;
    const waiting = this.roomWaiters.splice(0);
    for (const w of waiting) w();
  }
}

function setup(limits: Partial<DeviceMetricsLimits> = {}, now = () => T0 + 1_000_000) {
  const writer = new FakeWriter();
  const ingest = new DeviceMetricsIngest({ writer, log: silentLogger, limits, now });
  return { writer, ingest };
}

/** An async iterable the test feeds message by message, like a client stream. */
class RequestStream implements AsyncIterable<StreamBatch> {
  readonly items: StreamBatch[] = [];
  private ended = false;
  private waiter: (() => void) | undefined;
  /** How many messages the consumer has taken. */
  taken = 0;

  push(sequence: number, deviceId: string, samples: MetricSample[]): void {
    this.items.push({ sequence: BigInt(sequence), deviceId, samples });
    this.waiter?.();
  }

  end(): void {
    this.ended = true;
    this.waiter?.();
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<StreamBatch> {
    for (;;) {
      const item = this.items.shift();
      if (item !== undefined) {
        this.taken++;
        yield item;
        continue;
      }
      if (this.ended) return;
      await new Promise<void>((resolve) => (this.waiter = resolve));
      this.waiter = undefined;
    }
  }
}

/** Lets pending promise callbacks and timers run. */
const settle = () => new Promise<void>((resolve) => setTimeout(resolve, 5));

/** Collects acks until the stream ends; the error, if it ended with one. */
async function drain(acks: AsyncIterable<StreamAck>, into: StreamAck[] = []): Promise<ConnectError | undefined> {
  try {
    for await (const ack of acks) into.push(ack);
    return undefined;
  } catch (err) {
    return ConnectError.from(err);
  }
}

describe("submit (one batch)", () => {
  it("counts, rejects by index with a code, and writes the kept samples with their reason", async () => {
    const { writer, ingest } = setup();
    const result = await ingest.submit("dev-1", [
      sample(T0, { cpu: 50 }), // first contact
      sample(T0 + 1000, { cpu: 50.5 }), // 1 %: filtered
      sample(T0 + 2000, { cpu: Number.NaN }),
      create(MetricSampleSchema, { metrics: { cpu: 1 } }), // no occurred_at
      sample(T0 + 3000, { cpu: 60 }), // 20 %: stored
      sample(T0 + 1_000_000 + 300_001, { cpu: 1 }), // beyond the 5 min skew
      sample(T0 + 4000, {}),
    ]);
    expect(result.counts).toEqual({ received: 7, stored: 2, filtered: 1, rejected: 4 });
    expect(result.rejections).toEqual([
      { index: 2, code: "non_finite_value", message: 'metric "cpu" is NaN, not a finite number' },
      { index: 3, code: "invalid_timestamp", message: "occurred_at is missing" },
      { index: 5, code: "future_timestamp", message: "occurred_at is 300001 ms ahead of the server clock; the limit is 300000 ms" },
      { index: 6, code: "empty_metrics", message: "the sample has no metrics" },
    ]);
    expect(writer.committed).toEqual([
      { device_id: "dev-1", occurred_at: new Date(T0), metrics: new JsonText(`{"cpu":50}`), reason: "first_contact" },
      { device_id: "dev-1", occurred_at: new Date(T0 + 3000), metrics: new JsonText(`{"cpu":60}`), reason: "significant_change" },
    ]);
  });

  it("answers a columnar batch exactly as the same samples in the map form, and stores the same rows", async () => {
    const names = ["cpu", "error_rate"];
    const offsets = [0, 1000, 2000, 3000, 1_000_000 + 300_001, 5000];
    const rows = [
      [50, 0.01], // first contact
      [50.5, 0.01], // filtered
      [Number.NaN, 0.01], // rejected
      [60, 0.01], // stored
      [60, 0.01], // beyond the 5 min skew
      [60, 0.5], // stored: error_rate moved more than 0.01
    ];
    const byColumns = setup();
    const byMaps = setup();
    const fromColumns = await byColumns.ingest.submit("dev-1", columnar(names, T0, offsets, rows));
    const fromMaps = await byMaps.ingest.submit(
      "dev-1",
      rows.map((row, i) => sample(T0 + offsets[i]!, { cpu: row[0]!, error_rate: row[1]! })),
    );
    expect(fromColumns).toEqual(fromMaps);
    expect(fromColumns.counts).toEqual({ received: 6, stored: 3, filtered: 1, rejected: 2 });
    expect(fromColumns.rejections.map((r) => [r.index, r.code])).toEqual([
      [2, "non_finite_value"],
      [4, "future_timestamp"],
    ]);
    expect(byColumns.writer.committed).toEqual(byMaps.writer.committed);
    expect(byColumns.writer.committed.map((r) => [r.occurred_at.getTime() - T0, r.reason])).toEqual([
      [0, "first_contact"],
      [3000, "significant_change"],
      [5000, "significant_change"],
    ]);
  });

  it("rejects a malformed columnar batch as a whole, naming the fields under columns", () => {
    const { writer, ingest } = setup({ maxSamplesPerMessage: 3 });
    const attempt = (batch: ColumnarSampleBatch) => {
      try {
        void ingest.submit("dev-1", batch);
      } catch (err) {
        return err as ConnectError;
      }
      return undefined;
    };
    const empty = attempt(columnar(["cpu"], T0, [], []));
    expect([empty?.code, empty?.rawMessage]).toEqual([Code.InvalidArgument, "invalid request: columns.offsets_ms: must hold 1 to 3 samples (got 0)"]);
    const tooMany = attempt(columnar(["cpu"], T0, [0, 1, 2, 3], [[1], [2], [3], [4]]));
    expect(tooMany?.rawMessage).toBe("invalid request: columns.offsets_ms: must hold 1 to 3 samples (got 4)");
    const malformed = attempt(columnar(["cpu", "cpu"], T0, [0], [[1]]));
    expect(malformed?.rawMessage).toBe(
      'invalid request: columns.metric_names: names "cpu" more than once; ' +
        "columns.values: must hold one value per sample and metric name, 1 x 2 = 2 (got 1)",
    );
    expect(writer.calls).toHaveLength(0);
    expect(ingest.filter.size).toBe(0);
  });

  it("answers only once the kept samples are committed", async () => {
    const { writer, ingest } = setup();
    writer.auto = false;
    let answered = false;
    const answer = ingest.submit("dev-1", [sample(T0, { cpu: 1 })]).then(() => (answered = true));
    await settle();
    expect(answered).toBe(false);
    writer.calls[0]!.resolve();
    await answer;
    expect(answered).toBe(true);
  });

  it("does not call the writer when nothing is kept", async () => {
    const { writer, ingest } = setup();
    await ingest.submit("dev-1", [sample(T0, { cpu: 1 })]);
    const result = await ingest.submit("dev-1", [sample(T0 + 1, { cpu: 1 }), sample(T0 + 2, { cpu: Number.NaN })]);
    expect(result.counts).toEqual({ received: 2, stored: 0, filtered: 1, rejected: 1 });
    expect(writer.calls).toHaveLength(1);
  });

  it("counts a resent sample already in the database as stored, and stores no second row", async () => {
    const { writer, ingest } = setup();
    await ingest.submit("dev-1", [sample(T0, { cpu: 1 })]);
    ingest.filter.forget("dev-1"); // e.g. evicted, or another instance: the resend is a first contact
    const result = await ingest.submit("dev-1", [sample(T0, { cpu: 1 })]);
    expect(result.counts.stored).toBe(1);
    expect(writer.committed).toHaveLength(1);
  });

  it.each<[string, string, unknown[], string]>([
    ["a missing device_id", "", [1], "invalid request: device_id: is required"],
    ["a blank device_id", "  ", [1], "invalid request: device_id: is required"],
    ["a device_id over 128 characters", "d".repeat(129), [1], "invalid request: device_id: must be at most 128 characters (got 129)"],
    ["no samples", "dev-1", [], "invalid request: samples: must hold 1 to 3 samples (got 0)"],
    ["too many samples", "dev-1", [1, 2, 3, 4], "invalid request: samples: must hold 1 to 3 samples (got 4)"],
  ])("rejects %s as a whole with InvalidArgument naming the field", (_label, deviceId, count, message) => {
    const { writer, ingest } = setup({ maxSamplesPerMessage: 3 });
    const samples = count.map((_, i) => sample(T0 + i, { cpu: 1 }));
    let error: unknown;
    try {
      void ingest.submit(deviceId, samples);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConnectError);
    expect((error as ConnectError).code).toBe(Code.InvalidArgument);
    expect((error as ConnectError).rawMessage).toBe(message);
    // The same field and words in a google.rpc.BadRequest; no batch named outside a stream.
    const [, field, description] = /^invalid request: (\w+): (.*)$/.exec(message)!;
    expect((error as ConnectError).findDetails(BadRequestSchema).flatMap((d) => d.fieldViolations)).toMatchObject([{ field, description }]);
    expect((error as ConnectError).findDetails(RefusedBatchSchema)).toEqual([]);
    expect(writer.calls).toHaveLength(0);
    expect(ingest.filter.size).toBe(0);
  });

  it("keeps the limits of the configuration, and the filter's options", () => {
    const config = loadConfig({
      ANALYTICS_METRICS_MAX_SAMPLES_PER_MESSAGE: "10",
      ANALYTICS_METRICS_SNAPSHOT_INTERVAL_MS: "60000",
      ANALYTICS_METRICS_RATE_METRICS: "packet_loss",
      ANALYTICS_METRICS_RATE_THRESHOLD: "0.02",
      ANALYTICS_METRICS_THRESHOLDS: "temperature=relative:0.1",
      ANALYTICS_METRICS_MAX_STREAMS_PER_DEVICE: "2",
    });
    const ingest = new DeviceMetricsIngest({ writer: new FakeWriter(), log: silentLogger, ...deviceMetricsOptionsFromConfig(config) });
    expect(ingest.limits).toMatchObject({ maxSamplesPerMessage: 10, maxStreamsPerDevice: 2, maxInFlightBatches: 128 });
    expect(ingest.filter.options.snapshotIntervalMs).toBe(60_000);
    expect(ingest.filter.options.metricThresholds).toEqual({
      error_rate: { kind: "relative", threshold: 0.05 }, // left out of the rate list
      packet_loss: { kind: "absolute", threshold: 0.02 },
      temperature: { kind: "relative", threshold: 0.1 },
    });
  });
});

describe("durability of the kept snapshot", () => {
  it("forgets the device when a write fails, so the resend is a first contact", async () => {
    const { writer, ingest } = setup();
    writer.failNext.push(new ConnectError("database away", Code.Unavailable));
    const err = await rpcError(ingest.submit("dev-1", [sample(T0, { cpu: 50 })]));
    expect(err.code).toBe(Code.Unavailable);
    expect(ingest.filter.size).toBe(0);
    // Without the forget, this would be compared with the never-stored T0 sample and filtered.
    const result = await ingest.submit("dev-1", [sample(T0 + 1000, { cpu: 50 })]);
    expect(result.counts.stored).toBe(1);
    expect(writer.committed.map((r) => r.reason)).toEqual(["first_contact"]);
  });

  it("answers a filtered batch only after the write of the snapshot it was compared with", async () => {
    const { writer, ingest } = setup();
    writer.auto = false;
    const first = ingest.submit("dev-1", [sample(T0, { cpu: 50 })]);
    let secondAnswered = false;
    const second = ingest.submit("dev-1", [sample(T0 + 1000, { cpu: 50 })]).then((r) => {
      secondAnswered = true;
      return r;
    });
    await settle();
    expect(writer.calls).toHaveLength(1); // the second batch stores nothing...
    expect(secondAnswered).toBe(false); // ...yet waits for the first one's commit
    writer.calls[0]!.resolve();
    expect((await first).counts.stored).toBe(1);
    expect((await second).counts.filtered).toBe(1);
  });

  it("fails a filtered batch whose baseline write failed, and other devices are unaffected", async () => {
    const { writer, ingest } = setup();
    writer.auto = false;
    const first = ingest.submit("dev-1", [sample(T0, { cpu: 50 })]);
    const second = ingest.submit("dev-1", [sample(T0 + 1000, { cpu: 50 })]);
    const other = ingest.submit("dev-2", [sample(T0, { cpu: 50 })]);
    writer.calls[0]!.reject(new Error("disk full"));
    writer.calls[1]!.resolve();
    expect((await rpcError(first)).code).toBe(Code.Internal);
    const err = await rpcError(second);
    expect(err.code).toBe(Code.Internal);
    expect(err.rawMessage).toMatch(/^internal error \(correlation id [0-9a-f-]{36}\)$/); // no detail leaks
    expect((await other).counts.stored).toBe(1);
    expect(ingest.filter.size).toBe(1); // dev-2 only
  });

  it("no longer waits for writes once they are committed", async () => {
    const { writer, ingest } = setup();
    await ingest.submit("dev-1", [sample(T0, { cpu: 50 })]);
    writer.auto = false;
    const result = await ingest.submit("dev-1", [sample(T0 + 1000, { cpu: 50 })]);
    expect(result.counts.filtered).toBe(1);
  });
});

describe("stream", () => {
  const signalNever = () => new AbortController().signal;

  it("acknowledges every batch in order with its counts", async () => {
    const { ingest, writer } = setup();
    const requests = new RequestStream();
    for (let seq = 1; seq <= 5; seq++) requests.push(seq, "dev-1", [sample(T0 + seq * 1000, { cpu: seq * 100 })]);
    requests.end();
    const acks: StreamAck[] = [];
    expect(await drain(ingest.stream(requests, { signal: signalNever() }), acks)).toBeUndefined();
    expect(acks.map((a) => Number(a.sequence))).toEqual([1, 2, 3, 4, 5]);
    expect(acks.every((a) => a.counts.received === 1 && a.counts.stored === 1)).toBe(true);
    expect(writer.committed).toHaveLength(5);
    expect(ingest.openStreams("dev-1")).toBe(0);
  });

  it("leaves no abort listener behind per batch on a long stream", async () => {
    const { ingest } = setup();
    const call = new AbortController();
    const requests = new RequestStream();
    const acks: StreamAck[] = [];
    const done = drain(ingest.stream(requests, { signal: call.signal }), acks);
    const listeners = () => getEventListeners(call.signal, "abort").length;
    let most = 0;
    for (let seq = 1; seq <= 500; seq++) {
      requests.push(seq, "dev-1", [sample(T0 + seq * 1000, { cpu: seq % 2 === 0 ? 100 : 200 })]);
      if (seq % 50 === 0) {
        await settle();
        most = Math.max(most, listeners());
      }
    }
    requests.end();
    expect(await done).toBeUndefined();
    expect(acks).toHaveLength(500);
    expect(most).toBeLessThanOrEqual(1); // the one wait in progress
    expect(listeners()).toBe(0);
  });

  it("reads on while earlier batches are written, up to maxInFlightBatches, and acks in order", async () => {
    const { ingest, writer } = setup({ maxInFlightBatches: 3 });
    writer.auto = false;
    const requests = new RequestStream();
    for (let seq = 1; seq <= 5; seq++) requests.push(seq, "dev-1", [sample(T0 + seq * 1000, { cpu: seq * 100 })]);
    requests.end();
    const acks: StreamAck[] = [];
    const done = drain(ingest.stream(requests, { signal: signalNever() }), acks);
    await settle();
    expect(writer.calls).toHaveLength(3); // pipelined, bounded
    expect(requests.taken).toBe(3);
    writer.calls[1]!.resolve(); // out of order: no ack may overtake batch 1
    await settle();
    expect(acks).toHaveLength(0);
    writer.calls[0]!.resolve();
    await settle();
    expect(acks.map((a) => Number(a.sequence))).toEqual([1, 2]);
    expect(writer.calls).toHaveLength(5);
    for (const call of writer.calls.slice(2)) call.resolve();
    expect(await done).toBeUndefined();
    expect(acks.map((a) => Number(a.sequence))).toEqual([1, 2, 3, 4, 5]);
  });

  it("does not read the next message while the writer has no room", async () => {
    const { ingest, writer } = setup();
    writer.setRoom(0);
    const requests = new RequestStream();
    requests.push(1, "dev-1", [sample(T0, { cpu: 1 })]);
    requests.end();
    const done = drain(ingest.stream(requests, { signal: signalNever() }));
    await settle();
    expect(requests.taken).toBe(0);
    writer.setRoom(10);
    expect(await done).toBeUndefined();
    expect(requests.taken).toBe(1);
  });

  it("retries a write the full buffer refused once there is room", async () => {
    const { ingest, writer } = setup();
    writer.failNext.push(new ConnectError("write buffer is full", Code.ResourceExhausted));
    const requests = new RequestStream();
    requests.push(1, "dev-1", [sample(T0, { cpu: 1 })]);
    requests.end();
    const acks: StreamAck[] = [];
    expect(await drain(ingest.stream(requests, { signal: signalNever() }), acks)).toBeUndefined();
    expect(acks[0]!.counts.stored).toBe(1);
    expect(writer.committed).toHaveLength(1);
  });

  it("ends with InvalidArgument naming the field and the batch, after acking the batches before it", async () => {
    const { ingest } = setup({ maxSamplesPerMessage: 2 });
    const requests = new RequestStream();
    requests.push(1, "dev-1", [sample(T0, { cpu: 1 })]);
    requests.push(2, "dev-1", [sample(T0 + 1, { cpu: 1 }), sample(T0 + 2, { cpu: 1 }), sample(T0 + 3, { cpu: 1 })]);
    requests.push(3, "dev-1", [sample(T0 + 4, { cpu: 1 })]);
    const acks: StreamAck[] = [];
    const err = await drain(ingest.stream(requests, { signal: signalNever() }), acks);
    expect(acks.map((a) => Number(a.sequence))).toEqual([1]);
    expect(err?.code).toBe(Code.InvalidArgument);
    expect(err?.rawMessage).toBe("invalid request: samples: must hold 1 to 2 samples (got 3) (batch sequence 2)");
    // What a device acts on, as details: the refused batch, and the field.
    expect(err?.findDetails(RefusedBatchSchema).map((d) => d.sequence)).toEqual([2n]);
    expect(err?.findDetails(BadRequestSchema).flatMap((d) => d.fieldViolations)).toMatchObject([
      { field: "samples", description: "must hold 1 to 2 samples (got 3)" },
    ]);
    expect(requests.taken).toBe(2); // batch 3 was never read
    expect(ingest.openStreams("dev-1")).toBe(0);
  });

  it("takes columnar batches on a stream, and ends with InvalidArgument naming the batch of a malformed one", async () => {
    const { ingest, writer } = setup();
    const requests = new RequestStream();
    requests.items.push({ sequence: 1n, deviceId: "dev-1", samples: columnar(["cpu"], T0, [0, 1000], [[10], [20]]) });
    requests.items.push({ sequence: 2n, deviceId: "dev-1", samples: columnar(["cpu"], T0 + 2000, [0, 1000], [[30]]) });
    const acks: StreamAck[] = [];
    const err = await drain(ingest.stream(requests, { signal: new AbortController().signal }), acks);
    expect(acks.map((a) => [Number(a.sequence), a.counts])).toEqual([[1, { received: 2, stored: 2, filtered: 0, rejected: 0 }]]);
    expect(err?.code).toBe(Code.InvalidArgument);
    expect(err?.rawMessage).toBe(
      "invalid request: columns.values: must hold one value per sample and metric name, 2 x 1 = 2 (got 1) (batch sequence 2)",
    );
    expect(writer.committed).toHaveLength(2);
  });

  it("ends with InvalidArgument when a message names another device than the stream's", async () => {
    const { ingest } = setup();
    const requests = new RequestStream();
    requests.push(1, "dev-1", [sample(T0, { cpu: 1 })]);
    requests.push(2, "dev-2", [sample(T0, { cpu: 1 })]);
    const err = await drain(ingest.stream(requests, { signal: signalNever() }));
    expect(err?.code).toBe(Code.InvalidArgument);
    expect(err?.rawMessage).toContain('device_id: must stay "dev-1": a stream carries one device (got "dev-2")');
    expect(err?.findDetails(RefusedBatchSchema).map((d) => d.sequence)).toEqual([2n]);
    expect(err?.findDetails(BadRequestSchema).flatMap((d) => d.fieldViolations.map((v) => v.field))).toEqual(["device_id"]);
  });

  it("ends with the authoriser's error (PermissionDenied) for a device the caller may not write", async () => {
    const { ingest, writer } = setup();
    const requests = new RequestStream();
    requests.push(1, "dev-2", [sample(T0, { cpu: 1 })]);
    const authorize = (deviceId: string) => {
      if (deviceId !== "dev-1") throw new ConnectError("device_id: not yours", Code.PermissionDenied);
    };
    const err = await drain(ingest.stream(requests, { signal: signalNever(), authorize }));
    expect(err?.code).toBe(Code.PermissionDenied);
    expect(writer.calls).toHaveLength(0);
  });

  it("caps open streams per device with ResourceExhausted, and frees the slot when a stream ends", async () => {
    const { ingest } = setup({ maxStreamsPerDevice: 1 });
    const first = new RequestStream();
    first.push(1, "dev-1", [sample(T0, { cpu: 1 })]);
    const firstAcks: StreamAck[] = [];
    const firstDone = drain(ingest.stream(first, { signal: signalNever() }), firstAcks);
    await settle();
    expect(ingest.openStreams("dev-1")).toBe(1);

    const second = new RequestStream();
    second.push(1, "dev-1", [sample(T0 + 1, { cpu: 1 })]);
    const err = await drain(ingest.stream(second, { signal: signalNever() }));
    expect(err?.code).toBe(Code.ResourceExhausted);
    expect(err?.rawMessage).toBe(
      'device "dev-1" already has 1 open metrics streams (the limit is 1); close one before opening another',
    );
    const otherDevice = new RequestStream();
    otherDevice.push(1, "dev-2", [sample(T0, { cpu: 1 })]);
    otherDevice.end();
    expect(await drain(ingest.stream(otherDevice, { signal: signalNever() }))).toBeUndefined();

    first.end();
    expect(await firstDone).toBeUndefined();
    expect(ingest.openStreams("dev-1")).toBe(0);
    const third = new RequestStream();
    third.push(1, "dev-1", [sample(T0 + 2, { cpu: 1 })]);
    third.end();
    expect(await drain(ingest.stream(third, { signal: signalNever() }))).toBeUndefined();
  });

  it("stops deciding when a write fails, acks nothing from it on, and the resend starts as a first contact", async () => {
    const { ingest, writer } = setup({ maxInFlightBatches: 8 });
    writer.auto = false;
    const requests = new RequestStream();
    requests.push(1, "dev-1", [sample(T0, { cpu: 100 })]);
    requests.push(2, "dev-1", [sample(T0 + 1000, { cpu: 200 })]);
    requests.push(3, "dev-1", [sample(T0 + 2000, { cpu: 200 })]); // filtered against batch 2
    const acks: StreamAck[] = [];
    const done = drain(ingest.stream(requests, { signal: signalNever() }), acks);
    await settle();
    expect(writer.calls).toHaveLength(2);
    writer.calls[0]!.resolve();
    writer.calls[1]!.reject(new ConnectError("database away too long", Code.Unavailable));
    await settle();
    // Arrives after the failure: must not be decided (it would re-create the device's state
    // with a later snapshot, and the resent batch 2 would then be filtered as late).
    requests.push(4, "dev-1", [sample(T0 + 3000, { cpu: 900 })]);
    const err = await done;
    expect(acks.map((a) => Number(a.sequence))).toEqual([1]);
    expect(err?.code).toBe(Code.Unavailable);
    expect(ingest.filter.size).toBe(0);
    expect(writer.calls).toHaveLength(2);

    // The device reconnects and resends batches 2 to 4.
    writer.auto = true;
    const resend = new RequestStream();
    resend.push(2, "dev-1", [sample(T0 + 1000, { cpu: 200 })]);
    resend.push(3, "dev-1", [sample(T0 + 2000, { cpu: 200 })]);
    resend.push(4, "dev-1", [sample(T0 + 3000, { cpu: 900 })]);
    resend.end();
    const resent: StreamAck[] = [];
    expect(await drain(ingest.stream(resend, { signal: signalNever() }), resent)).toBeUndefined();
    expect(resent.map((a) => [Number(a.sequence), a.counts.stored, a.counts.filtered])).toEqual([
      [2, 1, 0],
      [3, 0, 1],
      [4, 1, 0],
    ]);
    expect(writer.committed.map((r) => [r.occurred_at.getTime() - T0, r.reason])).toEqual([
      [0, "first_contact"],
      [1000, "first_contact"],
      [3000, "significant_change"],
    ]);
  });

  it("fails a batch decided just before a failure became known, and keeps the device forgotten", async () => {
    const { ingest, writer } = setup();
    writer.auto = false;
    const requests = new RequestStream();
    requests.push(1, "dev-1", [sample(T0, { cpu: 100 })]);
    const acks: StreamAck[] = [];
    const done = drain(ingest.stream(requests, { signal: signalNever() }), acks);
    await settle();
    // In the same turn: the write fails and the next batch arrives; it may be decided first.
    writer.calls[0]!.reject(new ConnectError("database away too long", Code.Unavailable));
    requests.push(2, "dev-1", [sample(T0 + 1000, { cpu: 900 })]);
    const err = await done;
    expect(err?.code).toBe(Code.Unavailable);
    expect(acks).toHaveLength(0);
    for (const call of writer.calls.slice(1)) call.resolve(); // batch 2's own write commits...
    await settle();
    expect(ingest.filter.size).toBe(0); // ...but it was compared with batch 1: forgotten all the same
  });

  it("stops at once when the client cancels; writes already started still commit", async () => {
    const { ingest, writer } = setup();
    writer.auto = false;
    const requests = new RequestStream();
    requests.push(1, "dev-1", [sample(T0, { cpu: 1 })]);
    const cancel = new AbortController();
    const done = drain(ingest.stream(requests, { signal: cancel.signal }));
    await settle();
    cancel.abort();
    const err = await done;
    expect(err?.code).toBe(Code.Canceled);
    expect(ingest.openStreams("dev-1")).toBe(0);
    writer.calls[0]!.resolve();
    await settle();
    expect(writer.committed).toHaveLength(1);
    expect(ingest.filter.size).toBe(1); // the kept snapshot is in the database
  });

  it("forgets the device when a cancelled stream's write fails afterwards", async () => {
    const { ingest, writer } = setup();
    writer.auto = false;
    const requests = new RequestStream();
    requests.push(1, "dev-1", [sample(T0, { cpu: 1 })]);
    const cancel = new AbortController();
    const done = drain(ingest.stream(requests, { signal: cancel.signal }));
    await settle();
    cancel.abort();
    await done;
    writer.calls[0]!.reject(new ConnectError("database away too long", Code.Unavailable));
    await settle();
    expect(ingest.filter.size).toBe(0);
  });

  it("at shutdown, stops reading, acknowledges what it took, then ends Unavailable", async () => {
    const { ingest, writer } = setup();
    writer.auto = false;
    const requests = new RequestStream();
    requests.push(1, "dev-1", [sample(T0, { cpu: 1 })]);
    requests.push(2, "dev-1", [sample(T0 + 1000, { cpu: 2 })]);
    const call = new AbortController();
    const shutdown = new AbortController();
    const acks: StreamAck[] = [];
    const done = drain(ingest.stream(requests, { signal: call.signal, shutdownSignal: shutdown.signal }), acks);
    await settle();
    expect(writer.calls).toHaveLength(2);
    shutdown.abort();
    call.abort(); // Connect aborts the call's signal on shutdown too
    requests.push(3, "dev-1", [sample(T0 + 2000, { cpu: 3 })]);
    await settle();
    for (const c of writer.calls) c.resolve();
    const err = await done;
    expect(acks.map((a) => Number(a.sequence))).toEqual([1, 2]);
    expect(err?.code).toBe(Code.Unavailable);
    expect(err?.rawMessage).toBe("server is shutting down: acknowledged batches are stored; reconnect and resend the others");
    expect(writer.calls).toHaveLength(2);
  });

  it("when the token expires, stops reading, acknowledges what it took, then ends Unauthenticated", async () => {
    const { ingest, writer } = setup();
    writer.auto = false;
    const requests = new RequestStream();
    requests.push(1, "dev-1", [sample(T0, { cpu: 1 })]);
    requests.push(2, "dev-1", [sample(T0 + 1000, { cpu: 2 })]);
    const expiry = new AbortController();
    const acks: StreamAck[] = [];
    const done = drain(ingest.stream(requests, { signal: signalNever(), expirySignal: expiry.signal }), acks);
    await settle();
    expect(writer.calls).toHaveLength(2);
    expiry.abort(new ConnectError("token expired: reconnect with a fresh token", Code.Unauthenticated));
    requests.push(3, "dev-1", [sample(T0 + 2000, { cpu: 3 })]);
    await settle();
    for (const c of writer.calls) c.resolve();
    const err = await done;
    expect(acks.map((a) => Number(a.sequence))).toEqual([1, 2]);
    expect(acks.every((a) => a.counts.stored === 1)).toBe(true);
    expect(err?.code).toBe(Code.Unauthenticated);
    expect(err?.rawMessage).toBe("token expired: reconnect with a fresh token");
    // Batch 3 came after the expiry: neither decided nor written, and the slot is free again.
    expect(writer.calls).toHaveLength(2);
    expect(writer.committed).toHaveLength(2);
    expect(ingest.openStreams("dev-1")).toBe(0);
  });

  it("ends Unauthenticated at once, reading nothing, when the token has already expired", async () => {
    const { ingest, writer } = setup();
    const requests = new RequestStream();
    requests.push(1, "dev-1", [sample(T0, { cpu: 1 })]);
    const expiry = new AbortController();
    expiry.abort(new ConnectError("token expired", Code.Unauthenticated));
    const acks: StreamAck[] = [];
    const err = await drain(ingest.stream(requests, { signal: signalNever(), expirySignal: expiry.signal }), acks);
    expect(err?.code).toBe(Code.Unauthenticated);
    expect(acks).toEqual([]);
    expect(requests.taken).toBe(0);
    expect(writer.calls).toHaveLength(0);
  });

  it("does not cut a stream the client had finished sending when the token expires during its last writes", async () => {
    const { ingest, writer } = setup();
    writer.auto = false;
    const requests = new RequestStream();
    requests.push(1, "dev-1", [sample(T0, { cpu: 1 })]);
    requests.end();
    const expiry = new AbortController();
    const acks: StreamAck[] = [];
    const done = drain(ingest.stream(requests, { signal: signalNever(), expirySignal: expiry.signal }), acks);
    await settle();
    expiry.abort(new ConnectError("token expired", Code.Unauthenticated));
    writer.calls[0]!.resolve();
    expect(await done).toBeUndefined();
    expect(acks.map((a) => Number(a.sequence))).toEqual([1]);
  });
});

describe("idle eviction", () => {
  it("evicts on the server clock, with a timer that can be stopped", () => {
    let now = T0;
    const ingest = new DeviceMetricsIngest({
      writer: new FakeWriter(),
      log: silentLogger,
      filter: { idleEvictionMs: 60_000 },
      now: () => now,
    });
    void ingest.submit("dev-1", [sample(T0 - 10_000, { cpu: 1 })]);
    now = T0 + 59_999;
    expect(ingest.evictIdle()).toBe(0);
    now = T0 + 60_000;
    expect(ingest.evictIdle()).toBe(1);
    const stop = ingest.startEvictionTimer();
    stop();
  });
});
