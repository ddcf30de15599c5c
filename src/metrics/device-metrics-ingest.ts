/**
 * Device metrics ingest: validates a batch of samples, runs them through the ONE process-wide
 * {@link SmartDataFilter}, writes what it keeps through the batch writer, and answers with counts
 * and per-sample rejections once the kept samples are committed. Both RPCs use it:
 * `IngestDeviceMetrics` submits one batch; `StreamDeviceMetrics` runs {@link DeviceMetricsIngest.stream},
 * which pipelines batches (reads on while earlier ones are written) and acknowledges them in order
 * (the ordered pipeline: `ingest-pipeline.ts`; the settings and their configuration:
 * `device-metrics-options.ts`).
 *
 * Durability of what was filtered. The filter decides against the last *stored* sample, which it
 * keeps as soon as it decides "store", before the row is committed. Two rules keep an
 * acknowledgement honest about samples it reports as filtered:
 * - a batch's answer waits for the writes of the device's earlier batches still in flight (the
 *   kept samples it was compared with), and fails if any of them fails;
 * - a failed write makes the filter forget the device, so its next sample (the resend) is a first
 *   contact, compared with nothing that is not in the database; a stream stops deciding at once.
 *
 * Resend idempotency: rows are keyed by (device_id, occurred_at) and inserted with
 * `on conflict do nothing`, so a batch resent after a reconnect never stores a row twice; a row
 * already present is answered as stored (it is committed) and the kept snapshot never moves
 * backwards (see the filter's late-sample rule).
 *
 * @module
 */
import { Code, ConnectError } from "@connectrpc/connect";
import type { MetricSample as MetricSampleMessage } from "../../sdk/src/gen/analytics/v1/analytics_service_pb.js";
import { refusedBatch } from "../errors/error-details.js";
import { storageErrorToConnect } from "../storage/storage-errors.js";
import { JsonText } from "../util/json-text.js";
import type { Logger } from "../util/logger.js";
import { checkNoNul, invalidArgument, type Violation } from "../validation/field-rules.js";
import { DEFAULT_INGEST_LIMITS, type DeviceMetricsLimits } from "./device-metrics-options.js";
import { runIngestPipeline } from "./ingest-pipeline.js";
import { MapSampleBatch, type SampleBatch } from "./sample-batch.js";
import { SmartDataFilter, type SmartDataFilterOptions } from "./smart-data-filter.js";

export {
  DEFAULT_INGEST_LIMITS,
  deviceMetricsOptionsFromConfig,
  type DeviceMetricsLimits,
} from "./device-metrics-options.js";

/** What a write did with one row (the batch writer's `RowResult`). */
export interface MetricRowResult {
  readonly outcome: "stored" | "replayed" | "deduplicated";
}

/** A `device_metrics` row: database column names, as the batch writer takes them. */
export type DeviceMetricRow = {
  readonly device_id: string;
  readonly occurred_at: Date;
  /** The sample's metrics, serialized as the row is built (see {@link JsonText}). */
  readonly metrics: JsonText;
  readonly reason: string;
};

/**
 * The part of the batch writer the ingest uses. `write` resolves once the rows are committed;
 * `whenWritable` resolves when the buffer has room (a writer without it counts as always writable).
 */
export interface DeviceMetricsWriter {
  write(table: "device_metrics", rows: readonly DeviceMetricRow[]): Promise<readonly MetricRowResult[]>;
  whenWritable?(rows: number, signal?: AbortSignal): Promise<void>;
}

/** What the filter did with a batch's samples (the proto's `IngestCounts`). */
export interface IngestCounts {
  received: number;
  stored: number;
  filtered: number;
  rejected: number;
}

/** Why one sample of a batch was not accepted (the proto's `SampleRejection`). */
export interface SampleRejection {
  readonly index: number;
  readonly code: string;
  readonly message: string;
}

/** The answer to one batch, given once its stored samples are committed. */
export interface IngestResult {
  readonly counts: IngestCounts;
  readonly rejections: readonly SampleRejection[];
}

/**
 * The samples of one message: a {@link SampleBatch} of any wire form (see `sampleBatchOf`), or
 * `MetricSample` messages in the map form.
 */
export type IngestSamples = SampleBatch | readonly MetricSampleMessage[];

/** One message of the device stream. */
export interface StreamBatch {
  readonly sequence: bigint;
  readonly deviceId: string;
  readonly samples: IngestSamples;
}

/** The acknowledgement of one {@link StreamBatch}. */
export interface StreamAck extends IngestResult {
  readonly sequence: bigint;
}

/** How one stream runs; see {@link DeviceMetricsIngest.stream}. */
export interface StreamOptions {
  /** Aborted when the client cancels, the deadline passes or the server shuts down. */
  readonly signal: AbortSignal;
  /**
   * Aborted when the server shuts down: the stream then stops reading, acknowledges what it has
   * already taken, and ends with `Unavailable` so the device reconnects elsewhere.
   */
  readonly shutdownSignal?: AbortSignal;
  /**
   * Aborted when the caller's token expires (see `credentialExpiry`), with the error to end with
   * (`Unauthenticated`) as its reason: the stream then stops reading, acknowledges what it has
   * already taken, and ends with that error so the device reconnects with a fresh token. A stream
   * the client had already finished sending is not cut: it is acknowledged and ends normally.
   */
  readonly expirySignal?: AbortSignal | undefined;
  /** Throws (e.g. `PermissionDenied`) unless the caller may write `deviceId`; run per message. */
  readonly authorize?: (deviceId: string) => void;
}

/** Options of {@link DeviceMetricsIngest}. */
export interface DeviceMetricsIngestOptions {
  readonly writer: DeviceMetricsWriter;
  readonly log: Logger;
  /** The filter's options; the filter itself is created once, here. */
  readonly filter?: Partial<SmartDataFilterOptions>;
  readonly limits?: Partial<DeviceMetricsLimits>;
  /** The server clock (epoch ms), for the future-skew rule and idle eviction. */
  readonly now?: () => number;
}

/** See the module documentation. */
export class DeviceMetricsIngest {
  /** The one filter of the process; its state is what makes a sample "first contact". */
  readonly filter: SmartDataFilter;
  readonly limits: DeviceMetricsLimits;
  readonly #writer: DeviceMetricsWriter;
  readonly #log: Logger;
  readonly #now: () => number;
  /**
   * Per device, settles when every write its kept snapshot depends on is committed (rejects when
   * one failed). Present only while such writes are in flight.
   */
  readonly #pending = new Map<string, Promise<void>>();
  readonly #openStreams = new Map<string, number>();

  /** @throws Error when the filter options or limits are invalid. */
  constructor(options: DeviceMetricsIngestOptions) {
    this.filter = new SmartDataFilter(options.filter);
    const limits = { ...DEFAULT_INGEST_LIMITS, ...options.limits };
    for (const [name, value] of Object.entries(limits)) {
      if (!Number.isSafeInteger(value) || value < 1) throw new Error(`device metrics limit ${name} must be a positive integer`);
    }
    this.limits = Object.freeze(limits);
    this.#writer = options.writer;
    this.#log = options.log;
    this.#now = options.now ?? Date.now;
  }

  /** Problems with a whole message (device id, sample count, a malformed form), named by proto field. */
  validate(deviceId: string, samples: IngestSamples): Violation[] {
    const batch = asBatch(samples);
    const violations: Violation[] = [];
    const maxId = this.filter.options.maxIdLength;
    if (deviceId.trim() === "") violations.push({ field: "device_id", description: "is required" });
    else if (deviceId.length > maxId) {
      violations.push({ field: "device_id", description: `must be at most ${maxId} characters (got ${deviceId.length})` });
    } else checkNoNul("device_id", deviceId, violations);
    const max = this.limits.maxSamplesPerMessage;
    if (batch.length === 0 || batch.length > max) {
      violations.push({ field: batch.field, description: `must hold 1 to ${max} samples (got ${batch.length})` });
    }
    violations.push(...batch.violations);
    return violations;
  }

  /**
   * Decides every sample of one batch now (synchronously, in order) and starts writing the kept
   * ones; the promise settles once they, and the device's earlier writes they were compared
   * with, are committed.
   *
   * @throws ConnectError `InvalidArgument` (synchronously) when the message is invalid as a whole.
   * @returns rejects with `ResourceExhausted` (buffer full, unless `retryWhenFull`),
   *   `Unavailable` (database away) or `Internal`; the device's filter state is then forgotten.
   */
  submit(
    deviceId: string,
    samples: IngestSamples,
    options: { signal?: AbortSignal; retryWhenFull?: boolean; onFailure?: () => void } = {},
  ): Promise<IngestResult> {
    const batch = asBatch(samples);
    const violations = this.validate(deviceId, batch);
    if (violations.length > 0) throw invalidBatch(violations);
    return this.#decideAndWrite(deviceId, batch, options);
  }

  /** {@link submit} for a batch already validated (the stream validates to name the sequence). */
  #decideAndWrite(
    deviceId: string,
    batch: SampleBatch,
    options: { signal?: AbortSignal; retryWhenFull?: boolean; onFailure?: () => void },
  ): Promise<IngestResult> {
    const nowMs = this.#now();
    const counts: IngestCounts = { received: batch.length, stored: 0, filtered: 0, rejected: 0 };
    const rejections: SampleRejection[] = [];
    const rows: DeviceMetricRow[] = [];
    const dependsOn = this.#pending.get(deviceId);
    for (let index = 0; index < batch.length; index++) {
      const decision = batch.decide(this.filter, deviceId, index, nowMs);
      if (decision.action === "filter") counts.filtered++;
      else if (decision.action === "reject") {
        counts.rejected++;
        rejections.push({ index, code: decision.code, message: decision.message });
      } else {
        counts.stored++;
        rows.push({
          device_id: deviceId,
          occurred_at: new Date(batch.occurredAtMs(index)),
          metrics: new JsonText(JSON.stringify(batch.metrics(index))),
          reason: decision.reason,
        });
      }
    }

    let durable: Promise<void>;
    if (rows.length > 0) {
      const own = this.#write(rows, options);
      durable = dependsOn === undefined ? own : Promise.all([dependsOn, own]).then(noop);
      // Later batches of this device were (or will be) compared with these rows.
      this.#pending.set(deviceId, durable);
      const settled = (): void => {
        if (this.#pending.get(deviceId) === durable) this.#pending.delete(deviceId);
      };
      durable.then(settled, settled);
    } else {
      durable = dependsOn ?? RESOLVED;
    }

    const result: IngestResult = { counts, rejections };
    return durable.then(
      () => result,
      (err: unknown) => {
        // Synchronously with the failure: nothing may be decided against the lost snapshot.
        this.filter.forget(deviceId);
        options.onFailure?.();
        if (options.signal?.aborted === true) throw ConnectError.from(options.signal.reason, Code.Canceled);
        throw storageErrorToConnect(err, this.#log, "device metrics write");
      },
    );
  }

  /**
   * Runs one device stream through the ordered pipeline (`ingest-pipeline.ts`): reads batches,
   * submits each (at most `maxInFlightBatches` written at once, and no read while the writer is
   * full, so HTTP/2 flow control slows the device down), and yields one acknowledgement per batch,
   * in order, each only after its samples are committed.
   *
   * A message that is invalid as a whole (`InvalidArgument`), names a device the caller may not
   * write (`PermissionDenied`), or exceeds the open-streams cap (`ResourceExhausted`) ends the
   * stream with that error, after the acknowledgements of the batches before it: gRPC has no
   * per-message error status, and the device must fix or drop the batch before resending. A failed
   * write ends the stream the same way. A stream carries one device: the first message's. An
   * expired token (`expirySignal`) and a server shutdown end it after acknowledging what it took,
   * with `Unauthenticated` and `Unavailable` respectively.
   */
  stream(requests: AsyncIterable<StreamBatch>, options: StreamOptions): AsyncGenerator<StreamAck, void, undefined> {
    let release: (() => void) | undefined;
    let device: string | undefined;
    let batches = 0;
    let samplesIn = 0;
    return runIngestPipeline(requests, options, {
      maxInFlight: this.limits.maxInFlightBatches,
      writer: this.#writer,
      start: ({ sequence, deviceId, samples: message }, halt) => {
        const samples = asBatch(message);
        const violations = this.validate(deviceId, samples);
        if (violations.length > 0) throw invalidBatch(violations, sequence);
        options.authorize?.(deviceId);
        if (device === undefined) {
          release = this.acquireStream(deviceId);
          device = deviceId;
        } else if (deviceId !== device) {
          throw invalidBatch(
            [{ field: "device_id", description: `must stay "${device}": a stream carries one device (got "${deviceId}")` }],
            sequence,
          );
        }
        const result = this.#decideAndWrite(deviceId, samples, { signal: options.signal, retryWhenFull: true, onFailure: halt });
        batches++;
        samplesIn += samples.length;
        return { sequence, samples: samples.length, result };
      },
      end: () => {
        release?.();
        this.#log.debug("device metrics stream ended", { deviceId: device, batches, samples: samplesIn });
      },
    });
  }

  /**
   * Counts an open stream for `deviceId`; call the returned function when it ends.
   *
   * @throws ConnectError `ResourceExhausted` when the device already has `maxStreamsPerDevice`.
   */
  acquireStream(deviceId: string): () => void {
    const open = this.#openStreams.get(deviceId) ?? 0;
    if (open >= this.limits.maxStreamsPerDevice) {
      throw new ConnectError(
        `device "${deviceId}" already has ${open} open metrics streams (the limit is ${this.limits.maxStreamsPerDevice}); ` +
          "close one before opening another",
        Code.ResourceExhausted,
      );
    }
    this.#openStreams.set(deviceId, open + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.#openStreams.get(deviceId) ?? 1) - 1;
      if (left <= 0) this.#openStreams.delete(deviceId);
      else this.#openStreams.set(deviceId, left);
    };
  }

  /** Streams open for `deviceId` now. */
  openStreams(deviceId: string): number {
    return this.#openStreams.get(deviceId) ?? 0;
  }

  /** Forgets devices idle for the filter's `idleEvictionMs`; returns how many. */
  evictIdle(): number {
    return this.filter.evictIdle(this.#now());
  }

  /**
   * Runs {@link evictIdle} on a timer (a quarter of the idle time, between 1 s and 60 s) that
   * does not keep the process alive. Returns the function that stops it (call it at shutdown).
   */
  startEvictionTimer(): () => void {
    const idle = this.filter.options.idleEvictionMs;
    const everyMs = Math.min(60_000, Math.max(1_000, Number.isFinite(idle) ? idle / 4 : 60_000));
    const timer = setInterval(() => {
      const evicted = this.evictIdle();
      if (evicted > 0) {
        this.#log.debug("metrics filter evicted idle devices", { evicted, tracked: this.filter.size, stateBytes: this.filter.stateBytes });
      }
    }, everyMs);
    timer.unref();
    return () => clearInterval(timer);
  }

  async #write(rows: readonly DeviceMetricRow[], options: { signal?: AbortSignal; retryWhenFull?: boolean }): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        await this.#writer.write("device_metrics", rows);
        return;
      } catch (err) {
        const full = err instanceof ConnectError && err.code === Code.ResourceExhausted;
        const retry = full && options.retryWhenFull === true && attempt < FULL_BUFFER_RETRIES && this.#writer.whenWritable;
        if (!retry || options.signal?.aborted === true) throw err;
        await this.#writer.whenWritable!(rows.length, options.signal);
      }
    }
  }
}

/** How often to retry a write the full buffer refused before giving the error to the client. */
const FULL_BUFFER_RETRIES = 5;

const RESOLVED: Promise<void> = Promise.resolve();

/**
 * `InvalidArgument` for a whole message; on a stream it names the batch's sequence, in words and
 * as an `analytics.v1.RefusedBatch` detail (which the device's streamer reads to drop the batch).
 */
function invalidBatch(violations: readonly Violation[], sequence?: bigint): ConnectError {
  if (sequence === undefined) return invalidArgument(violations);
  return invalidArgument(violations, { context: ` (batch sequence ${sequence})`, details: [refusedBatch(sequence)] });
}

const noop = (): void => {};

/** The samples of a message as a {@link SampleBatch}, whichever form they came in. */
function asBatch(samples: IngestSamples): SampleBatch {
  return Array.isArray(samples) ? new MapSampleBatch(samples as readonly MetricSampleMessage[]) : (samples as SampleBatch);
}
