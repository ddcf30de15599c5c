/**
 * The device side of `StreamDeviceMetrics`: record samples, and the streamer batches them,
 * numbers the batches, keeps every batch until the server acknowledges it (the server answers
 * only once the batch's stored samples are committed), reconnects with backoff when the stream
 * breaks, and resends what was not acknowledged, in order. The server keys stored samples by
 * (device_id, occurred_at), so a resend never stores a row twice.
 *
 * This module is the streaming loop; beside it: the public types (`streamer-types.ts`), the
 * resend window and its waiters (`unacked-batches.ts`), the reconnection policy
 * (`reconnect-policy.ts`) and a stream's request side (`request-feed.ts`).
 *
 * @module
 */
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { createAnalyticsClient, toTimestamp, type AnalyticsClient, type TimeInput } from "../analytics-client.js";
import {
  MetricSampleSchema,
  StreamDeviceMetricsRequestSchema,
  type MetricSample,
  type StreamDeviceMetricsRequest,
  type StreamDeviceMetricsResponse,
} from "../gen/analytics/v1/analytics_service_pb.js";
import { createNodeTransport } from "../node/transport.js";
import { BackoffPause, isFinalStreamError, reconnectDelayMs } from "./reconnect-policy.js";
import { RequestFeed } from "./request-feed.js";
import { MAX_SAMPLES_PER_BATCH, type MetricsStreamer, type MetricsStreamerOptions } from "./streamer-types.js";
import { UnackedBatches, type Batch } from "./unacked-batches.js";
import { wireSamples } from "./wire-samples.js";

export { wireSamples, type WireSamples } from "./wire-samples.js";
export {
  MAX_SAMPLES_PER_BATCH,
  type MetricsAck,
  type MetricsStreamer,
  type MetricsStreamerOptions,
  type MetricsStreamerStats,
} from "./streamer-types.js";

/**
 * Creates a metrics streamer for one device (Node.js: gRPC over HTTP/2).
 *
 * ```ts
 * import { createMetricsStreamer } from "@fleet/analytics-sdk/device";
 *
 * const streamer = createMetricsStreamer({ baseUrl: "http://analytics:8080", deviceId: "device-123", token });
 * setInterval(() => streamer.record({ cpu: os.loadavg()[0], mem_free: os.freemem() }), 1000);
 * process.on("SIGTERM", async () => { await streamer.close(); process.exit(0); });
 * ```
 *
 * The stream opens when the first batch is ready and stays open. When it breaks (server restart,
 * network), the streamer reconnects with backoff and first resends every unacknowledged batch,
 * in order, under its original sequence number. A batch the server refuses as a whole
 * (`InvalidArgument`, naming the batch in a `RefusedBatch` detail and its fields in a
 * `google.rpc.BadRequest` one: see `fieldViolationsOf`) is dropped and counted
 * (`refusedBatches`) so the stream can go on;
 * `PermissionDenied` and `Unimplemented` stop the streamer.
 *
 * @throws RangeError on a bad `batchSize`/`maxUnackedBatches`, Error without `baseUrl` or `transport`.
 */
export function createMetricsStreamer(options: MetricsStreamerOptions): MetricsStreamer {
  const batchSize = options.batchSize ?? 100;
  const maxBatchDelayMs = options.maxBatchDelayMs ?? 1000;
  const maxUnacked = options.maxUnackedBatches ?? 100;
  if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > MAX_SAMPLES_PER_BATCH) {
    throw new RangeError(`batchSize must be an integer from 1 to ${MAX_SAMPLES_PER_BATCH} (got ${batchSize})`);
  }
  if (!Number.isInteger(maxUnacked) || maxUnacked < 1) throw new RangeError(`maxUnackedBatches must be a positive integer (got ${maxUnacked})`);
  if (options.deviceId === "") throw new RangeError("deviceId is required");
  let transport = options.transport;
  if (transport === undefined) {
    if (options.baseUrl === undefined) throw new Error("createMetricsStreamer needs baseUrl or transport");
    // No deadline (a stream lives for hours) and no unary retries; keep-alive pings find dead links.
    transport = createNodeTransport({
      baseUrl: options.baseUrl,
      token: options.token,
      getToken: options.getToken,
      timeoutMs: 0,
      retry: false,
      pingIntervalMs: 10_000,
    });
  }
  const client: AnalyticsClient = createAnalyticsClient(transport);
  const now = options.now ?? Date.now;
  const deviceId = options.deviceId;

  let open: MetricSample[] = [];
  let openTimer: ReturnType<typeof setTimeout> | undefined;
  const unacked = new UnackedBatches();
  let lastStampMs = -Infinity;
  let feed: RequestFeed | undefined;
  let abort: AbortController | undefined;
  let running: Promise<void> | undefined;
  let closing = false;
  /** Set when close() gives up waiting: no more connections, whatever is left unacknowledged. */
  let stopped = false;
  let failure: ConnectError | undefined;
  const pause = new BackoffPause();
  const counts = { recorded: 0, dropped: 0, ackedBatches: 0, acked: 0, stored: 0, filtered: 0, rejected: 0, refusedBatches: 0, resentBatches: 0, reconnects: 0 };
  let connections = 0;
  let connected = false;

  const safely = <A extends unknown[]>(fn: ((...args: A) => void) | undefined, ...args: A): void => {
    try {
      fn?.(...args);
    } catch {
      // A callback's exception must not break the stream.
    }
  };

  const toRequest = (batch: Batch): StreamDeviceMetricsRequest =>
    create(StreamDeviceMetricsRequestSchema, { sequence: BigInt(batch.sequence), deviceId, ...wireSamples(batch.samples) });

  const send = (batch: Batch): void => {
    feed?.push(toRequest(batch), () => batch.sends++);
  };

  const seal = (): void => {
    if (openTimer !== undefined) clearTimeout(openTimer);
    openTimer = undefined;
    if (open.length === 0) return;
    const batch = unacked.add(open);
    open = [];
    if (failure !== undefined) return;
    if (feed !== undefined) send(batch);
    else ensureRunning();
  };

  const onAck = (ack: StreamDeviceMetricsResponse): void => {
    const sequence = Number(ack.sequence);
    const batch = unacked.acknowledge(sequence);
    if (batch === undefined) return; // already acknowledged (an old stream's late answer)
    const c = ack.counts;
    counts.ackedBatches++;
    if (batch.sends > 1) counts.resentBatches++;
    counts.acked += c?.received ?? batch.samples.length;
    counts.stored += c?.stored ?? 0;
    counts.filtered += c?.filtered ?? 0;
    counts.rejected += c?.rejected ?? 0;
    safely(options.onAck, {
      sequence,
      received: c?.received ?? batch.samples.length,
      stored: c?.stored ?? 0,
      filtered: c?.filtered ?? 0,
      rejected: c?.rejected ?? 0,
      rejections: ack.rejections,
      resent: batch.sends > 1,
    });
    unacked.settleWaiters();
  };

  const fail = (err: ConnectError): void => {
    failure = err;
    unacked.rejectWaiters(err);
  };

  /** One stream: resend what is unacknowledged, then forward new batches, until it breaks or ends. */
  const connectOnce = async (): Promise<void> => {
    feed = new RequestFeed();
    abort = new AbortController();
    const current = feed;
    for (const batch of unacked.batches) send(batch);
    if (closing && unacked.length === 0) current.end();
    const responses = client.streamDeviceMetrics(current, { signal: abort.signal });
    let first = true;
    try {
      for await (const ack of responses) {
        if (first) {
          first = false;
          connected = true;
          if (++connections > 1) counts.reconnects++;
        }
        onAck(ack);
        if (closing && unacked.length === 0 && open.length === 0) current.end();
      }
    } finally {
      connected = false;
      current.end();
      if (feed === current) feed = undefined;
    }
  };

  const run = async (): Promise<void> => {
    let retry = 0;
    while (failure === undefined && !stopped) {
      if (unacked.length === 0 && (closing || open.length === 0)) return;
      const ackedBefore = counts.ackedBatches;
      try {
        await connectOnce();
        // The server ended the stream cleanly: we half-closed (closing), or it wants a reconnect.
        if (closing && unacked.length === 0) return;
      } catch (raw) {
        const err = ConnectError.from(raw);
        if (stopped) return;
        if (isFinalStreamError(err)) {
          safely(options.onError, err, false);
          fail(err);
          return;
        }
        // A refused batch would be refused again: drop it so the batches behind it can go.
        // Anything else (transient or not) is retried with backoff: a device keeps trying.
        if (err.code === Code.InvalidArgument && unacked.dropRefused(err)) {
          counts.refusedBatches++;
          unacked.settleWaiters();
        }
        safely(options.onError, err, true);
      }
      if (counts.ackedBatches > ackedBefore) retry = 0;
      if (unacked.length === 0 && (closing || open.length === 0)) return;
      await pause.wait(reconnectDelayMs(retry++, options.reconnect));
    }
  };

  const ensureRunning = (): void => {
    if (running !== undefined || failure !== undefined || stopped) return;
    running = run().finally(() => {
      running = undefined;
      // Batches sealed while the loop was ending.
      if (failure === undefined && !stopped && unacked.length > 0) ensureRunning();
    });
  };

  const flushed = (): Promise<void> => {
    seal();
    if (failure !== undefined) return Promise.reject(failure);
    return unacked.whenPast(unacked.lastSequence);
  };

  return {
    record(metrics, occurredAt) {
      if (closing || failure !== undefined || unacked.length >= maxUnacked) {
        counts.dropped++;
        return false;
      }
      let at: TimeInput;
      if (occurredAt === undefined) {
        const ms = Math.max(now(), lastStampMs + 1);
        lastStampMs = ms;
        at = ms;
      } else at = occurredAt;
      open.push(create(MetricSampleSchema, { occurredAt: toTimestamp(at), metrics: { ...metrics } }));
      counts.recorded++;
      if (open.length >= batchSize) seal();
      else if (openTimer === undefined) openTimer = setTimeout(seal, maxBatchDelayMs);
      return true;
    },
    flush() {
      seal();
    },
    flushed,
    async close(o = {}) {
      seal();
      closing = true;
      const timeoutMs = o.timeoutMs ?? 10_000;
      let timer: ReturnType<typeof setTimeout> | undefined;
      const expired = new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)));
      try {
        if (unacked.length > 0) {
          // Reconnect at once if the loop is waiting out a backoff.
          pause.cut();
          ensureRunning();
          await Promise.race([flushed().catch(() => undefined), expired]);
        }
        feed?.end();
        await Promise.race([running ?? Promise.resolve(), expired]);
      } finally {
        clearTimeout(timer);
        stopped = true;
        abort?.abort(new ConnectError("metrics streamer closed", Code.Canceled));
        pause.cut();
        await running?.catch(() => undefined);
        const left = new ConnectError("metrics streamer closed before everything was acknowledged", Code.Canceled);
        unacked.rejectWaiters(left);
      }
      if (failure !== undefined && unacked.length > 0) throw failure;
      return { unacked: unacked.samples() };
    },
    stats() {
      return {
        ...counts,
        pending: open.length + unacked.sampleCount(),
        unackedBatches: unacked.length,
        connected,
      };
    },
  };
}
