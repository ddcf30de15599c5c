/**
 * The public shape of the device metrics streamer: its options, its acknowledgement and counter
 * records, and its interface. Apart from the streaming loop (`metrics-streamer.ts`) so the
 * contract can be read without the machinery behind it.
 *
 * @module
 */
import type { ConnectError, Transport } from "@connectrpc/connect";
import type { TimeInput } from "../analytics-client.js";
import type { MetricSample, SampleRejection } from "../gen/analytics/v1/analytics_service_pb.js";
import type { RetryOptions } from "../retry.js";

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
