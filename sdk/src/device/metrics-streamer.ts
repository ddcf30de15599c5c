/**
 * The device side of `StreamDeviceMetrics`: record samples, and the streamer batches them,
 * numbers the batches, keeps every batch until the server acknowledges it (the server answers
 * only once the batch's stored samples are committed), reconnects with backoff when the stream
 * breaks, and resends what was not acknowledged, in order. The server keys stored samples by
 * (device_id, occurred_at), so a resend never stores a row twice.
 *
 * @module
 */
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type Transport } from "@connectrpc/connect";
import { createAnalyticsClient, toTimestamp, type AnalyticsClient, type TimeInput } from "../analytics-client.js";
import {
  MetricSampleSchema,
  StreamDeviceMetricsRequestSchema,
  type MetricSample,
  type SampleRejection,
  type StreamDeviceMetricsRequest,
  type StreamDeviceMetricsResponse,
} from "../gen/analytics/v1/analytics_service_pb.js";
import { refusedBatchSequence } from "../error-details.js";
import { createNodeTransport } from "../node/transport.js";
import { backoffMs, type RetryOptions } from "../retry.js";
import { wireSamples } from "./wire-samples.js";

export { wireSamples, type WireSamples } from "./wire-samples.js";

/** The most samples one stream message may carry (the server's default cap). */
export const MAX_SAMPLES_PER_BATCH = 1000;

/** Options of {@link createMetricsStreamer}. */
export interface MetricsStreamerOptions {
  /** The service, e.g. `http://analytics.internal:8080` (gRPC over HTTP/2). */
  readonly baseUrl?: string;
  /** The device whose samples these are; a `device` token may only send its own id. */
  readonly deviceId: string;
  /** Access token (a `device` token for this id, or a `service` token). */
  readonly token?: string;
  /** Returns the current token; called at every (re)connection. */
  readonly getToken?: () => string | Promise<string>;
  /** A transport to use instead of `baseUrl`/`token` (it must not time streams out). */
  readonly transport?: Transport;
  /** Samples per batch, 1 to 1000 (default 100). A full batch is sent at once. */
  readonly batchSize?: number;
  /** Longest a sample waits for its batch to fill, in ms (default 1000). */
  readonly maxBatchDelayMs?: number;
  /**
   * Batches kept until acknowledged (default 100, i.e. 10,000 samples at the default batch size).
   * When full (server away or slow), NEW samples are refused: `record` returns false and counts
   * them in `stats().dropped`. Older samples are never thrown away.
   */
  readonly maxUnackedBatches?: number;
  /** Backoff between reconnection attempts (default 500 ms doubling up to 30 s, with jitter). */
  readonly reconnect?: Pick<RetryOptions, "initialBackoffMs" | "maxBackoffMs">;
  /** Called once per acknowledged batch. */
  readonly onAck?: (ack: MetricsAck) => void;
  /**
   * Called when the stream fails. `willRetry` false means the streamer stopped for good
   * (`PermissionDenied`, `Unimplemented`): `flushed()` and `close()` then reject.
   */
  readonly onError?: (error: ConnectError, willRetry: boolean) => void;
  /** The clock for samples recorded without a time, epoch ms (default `Date.now`). */
  readonly now?: () => number;
}

/** The acknowledgement of one batch. */
export interface MetricsAck {
  readonly sequence: number;
  /** Samples in the batch. */
  readonly received: number;
  /** Samples committed (first contact, heartbeat or significant change). */
  readonly stored: number;
  /** Valid samples without significant change (counted, not stored). */
  readonly filtered: number;
  /** Invalid samples; see `rejections`. */
  readonly rejected: number;
  readonly rejections: readonly SampleRejection[];
  /** True when the batch was sent more than once (after a reconnection). */
  readonly resent: boolean;
}

/** Counters of a streamer, since it was created. */
export interface MetricsStreamerStats {
  /** Samples taken by `record`. */
  readonly recorded: number;
  /** Samples refused by `record` (buffer full or streamer closed). */
  readonly dropped: number;
  /** Batches acknowledged, and their samples by what the server did with them. */
  readonly ackedBatches: number;
  readonly acked: number;
  readonly stored: number;
  readonly filtered: number;
  readonly rejected: number;
  /** Batches the server refused as a whole (`InvalidArgument`), dropped so the rest can go on. */
  readonly refusedBatches: number;
  /** Samples recorded and not yet acknowledged (open batch included). */
  readonly pending: number;
  /** Batches sent and not yet acknowledged. */
  readonly unackedBatches: number;
  /** Batches acknowledged after being sent more than once (resent after a reconnection). */
  readonly resentBatches: number;
  /** Successful connections after the first. */
  readonly reconnects: number;
  /** True while a stream is open. */
  readonly connected: boolean;
}

/** See {@link createMetricsStreamer}. */
export interface MetricsStreamer {
  /**
   * Adds a sample. Without `occurredAt` it is stamped with the clock, one millisecond after the
   * previous stamped sample at least (the server keys samples by device and millisecond).
   *
   * @returns false when the sample was refused: buffer full, or the streamer closed or failed.
   */
  record(metrics: Readonly<Record<string, number>>, occurredAt?: TimeInput): boolean;
  /** Sends the open batch now instead of waiting for it to fill. */
  flush(): void;
  /**
   * Resolves once every sample recorded so far is acknowledged (or was refused by the server as
   * part of an invalid batch); rejects when the streamer fails for good.
   */
  flushed(): Promise<void>;
  /**
   * Sends the open batch, waits up to `timeoutMs` (default 10000) for every acknowledgement,
   * then ends the stream and stops reconnecting. Resolves with the samples still unacknowledged
   * (empty when all were; a pending `flushed()` then rejects with `Canceled`).
   */
  close(options?: { timeoutMs?: number }): Promise<{ readonly unacked: readonly MetricSample[] }>;
  /** The counters. */
  stats(): MetricsStreamerStats;
}

interface Batch {
  readonly sequence: number;
  readonly samples: MetricSample[];
  /** Streams that took the batch from their feed. */
  sends: number;
}

interface Waiter {
  readonly target: number;
  resolve(): void;
  reject(err: unknown): void;
}

/**
 * The request side of one stream: batches pushed by the streamer, ended by it. A batch counts as
 * sent when the transport takes it. Connect calls `return`/`throw` when the call ends; both just
 * end the iteration.
 */
class RequestFeed implements AsyncIterableIterator<StreamDeviceMetricsRequest> {
  readonly #buffer: { message: StreamDeviceMetricsRequest; taken: () => void }[] = [];
  #wake: ((r: IteratorResult<StreamDeviceMetricsRequest>) => void) | undefined;
  #done = false;

  push(message: StreamDeviceMetricsRequest, taken: () => void): void {
    if (this.#done) return;
    const wake = this.#wake;
    if (wake) {
      this.#wake = undefined;
      taken();
      wake({ value: message, done: false });
    } else this.#buffer.push({ message, taken });
  }

  end(): void {
    this.#done = true;
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.({ value: undefined, done: true });
  }

  next(): Promise<IteratorResult<StreamDeviceMetricsRequest>> {
    const item = this.#buffer.shift();
    if (item !== undefined) {
      item.taken();
      return Promise.resolve({ value: item.message, done: false });
    }
    if (this.#done) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve) => (this.#wake = resolve));
  }

  return(): Promise<IteratorResult<StreamDeviceMetricsRequest>> {
    this.end();
    return Promise.resolve({ value: undefined, done: true });
  }

  throw(): Promise<IteratorResult<StreamDeviceMetricsRequest>> {
    return this.return();
  }

  [Symbol.asyncIterator](): this {
    return this;
  }
}

const FINAL_CODES: ReadonlySet<Code> = new Set([Code.PermissionDenied, Code.Unimplemented]);

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
  const unacked: Batch[] = [];
  let nextSequence = 1;
  let lastStampMs = -Infinity;
  let feed: RequestFeed | undefined;
  let abort: AbortController | undefined;
  let running: Promise<void> | undefined;
  let closing = false;
  /** Set when close() gives up waiting: no more connections, whatever is left unacknowledged. */
  let stopped = false;
  let failure: ConnectError | undefined;
  let waiters: Waiter[] = [];
  let retryTimer: ReturnType<typeof setTimeout> | undefined;
  let wakeRetry: (() => void) | undefined;
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

  const settleWaiters = (): void => {
    const oldest = unacked[0]?.sequence ?? Infinity;
    waiters = waiters.filter((w) => {
      if (w.target < oldest) {
        w.resolve();
        return false;
      }
      return true;
    });
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
    const batch: Batch = { sequence: nextSequence++, samples: open, sends: 0 };
    open = [];
    unacked.push(batch);
    if (failure !== undefined) return;
    if (feed !== undefined) send(batch);
    else ensureRunning();
  };

  const onAck = (ack: StreamDeviceMetricsResponse): void => {
    const sequence = Number(ack.sequence);
    const index = unacked.findIndex((b) => b.sequence === sequence);
    if (index < 0) return; // already acknowledged (an old stream's late answer)
    const [batch] = unacked.splice(index, 1);
    const c = ack.counts;
    counts.ackedBatches++;
    if (batch!.sends > 1) counts.resentBatches++;
    counts.acked += c?.received ?? batch!.samples.length;
    counts.stored += c?.stored ?? 0;
    counts.filtered += c?.filtered ?? 0;
    counts.rejected += c?.rejected ?? 0;
    safely(options.onAck, {
      sequence,
      received: c?.received ?? batch!.samples.length,
      stored: c?.stored ?? 0,
      filtered: c?.filtered ?? 0,
      rejected: c?.rejected ?? 0,
      rejections: ack.rejections,
      resent: batch!.sends > 1,
    });
    settleWaiters();
  };

  /**
   * Drops the batch an `InvalidArgument` names (its `analytics.v1.RefusedBatch` detail), else the
   * oldest unacknowledged: the server acknowledges every batch before the one it refuses.
   */
  const dropRefusedBatch = (err: ConnectError): void => {
    const sequence = refusedBatchSequence(err);
    const named = sequence === undefined ? -1 : unacked.findIndex((b) => BigInt(b.sequence) === sequence);
    const index = named >= 0 ? named : 0;
    if (unacked.length === 0) return;
    unacked.splice(index, 1);
    counts.refusedBatches++;
    settleWaiters();
  };

  const fail = (err: ConnectError): void => {
    failure = err;
    for (const w of waiters) w.reject(err);
    waiters = [];
  };

  const waitBeforeRetry = (ms: number): Promise<void> =>
    new Promise((resolve) => {
      wakeRetry = resolve;
      retryTimer = setTimeout(resolve, ms);
    });

  /** One stream: resend what is unacknowledged, then forward new batches, until it breaks or ends. */
  const connectOnce = async (): Promise<void> => {
    feed = new RequestFeed();
    abort = new AbortController();
    const current = feed;
    for (const batch of unacked) send(batch);
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
        if (FINAL_CODES.has(err.code)) {
          safely(options.onError, err, false);
          fail(err);
          return;
        }
        // A refused batch would be refused again: drop it so the batches behind it can go.
        // Anything else (transient or not) is retried with backoff: a device keeps trying.
        if (err.code === Code.InvalidArgument) dropRefusedBatch(err);
        safely(options.onError, err, true);
      }
      if (counts.ackedBatches > ackedBefore) retry = 0;
      if (unacked.length === 0 && (closing || open.length === 0)) return;
      await waitBeforeRetry(backoffMs(retry++, { initialBackoffMs: 500, maxBackoffMs: 30_000, ...options.reconnect }));
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
    const target = nextSequence - 1;
    if ((unacked[0]?.sequence ?? Infinity) > target) return Promise.resolve();
    return new Promise<void>((resolve, reject) => waiters.push({ target, resolve, reject }));
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
          if (retryTimer !== undefined) clearTimeout(retryTimer);
          wakeRetry?.();
          ensureRunning();
          await Promise.race([flushed().catch(() => undefined), expired]);
        }
        feed?.end();
        await Promise.race([running ?? Promise.resolve(), expired]);
      } finally {
        clearTimeout(timer);
        stopped = true;
        abort?.abort(new ConnectError("metrics streamer closed", Code.Canceled));
        if (retryTimer !== undefined) clearTimeout(retryTimer);
        wakeRetry?.();
        await running?.catch(() => undefined);
        const left = new ConnectError("metrics streamer closed before everything was acknowledged", Code.Canceled);
        for (const w of waiters) w.reject(left);
        waiters = [];
      }
      if (failure !== undefined && unacked.length > 0) throw failure;
      return { unacked: unacked.flatMap((b) => b.samples) };
    },
    stats() {
      return {
        ...counts,
        pending: open.length + unacked.reduce((n, b) => n + b.samples.length, 0),
        unackedBatches: unacked.length,
        connected,
      };
    },
  };
}
