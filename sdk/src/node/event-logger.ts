/**
 * A fire-and-forget event logger for backend services: `log*` queue an event and return at once;
 * the events go out in `LogEvents` batches by size or age, and at shutdown.
 *
 * @module
 */
import {
  toEvent,
  type AnalyticsClient,
  type DeviceStateChangeInput,
  type ErrorInput,
  type EventInput,
  type JobOutcomeInput,
  type UserActivityInput,
} from "../analytics-client.js";
import { EventQueue, type CloseResult, type EventQueueOptions, type EventQueueStats } from "../event-queue.js";
import type { Event } from "../gen/analytics/v1/analytics_service_pb.js";

/** Options of {@link createEventLogger}. */
export interface EventLoggerOptions
  extends Pick<EventQueueOptions, "onRejected" | "onDropped" | "onSendError" | "retry" | "now"> {
  /** Events per `LogEvents` call, 1 to 500 (default 500). A full batch is sent at once. */
  readonly maxBatch?: number;
  /** Longest an event waits before it is sent, in ms (default 1000). */
  readonly flushIntervalMs?: number;
  /**
   * Most events held (waiting or being sent; default 10000). When full, NEW events are dropped
   * and counted in `stats().dropped` (and reported to `onDropped`).
   */
  readonly maxQueue?: number;
}

/**
 * A queueing logger. Every `log*` method returns the event's id (a UUIDv7 the logger assigns
 * unless the input has one), or `undefined` when the event was dropped because the queue was
 * full or the logger closed. Events are stamped with the client's time when logged (unless they
 * carry `occurredAt`), since they reach the server later.
 */
export interface EventLogger {
  /** Queues a user activity. */
  logUserActivity(input: UserActivityInput): string | undefined;
  /** Queues an error. */
  logError(input: ErrorInput): string | undefined;
  /** Queues a device state change. */
  logDeviceStateChange(input: DeviceStateChangeInput): string | undefined;
  /** Queues a job outcome. */
  logJobOutcome(input: JobOutcomeInput): string | undefined;
  /** Queues any event. */
  log(input: EventInput): string | undefined;
  /**
   * Sends what is queued now without waiting for the batch to fill.
   *
   * @returns rejects with the `ConnectError` of a transient failure (the events stay queued and
   *   are retried in the background).
   */
  flush(): Promise<void>;
  /**
   * Stops taking events and sends what is queued, retrying transient failures, for up to
   * `timeoutMs` (default 10000). Resolves with the events it could not send (empty when all
   * went out), for example to write them to disk.
   */
  close(options?: { timeoutMs?: number }): Promise<CloseResult>;
  /** Counters: queued, sent, rejected, dropped, discarded, failedSends. */
  stats(): EventQueueStats;
}

/**
 * Creates an {@link EventLogger} on top of an AnalyticsService client.
 *
 * ```ts
 * const logger = createEventLogger(createAnalyticsClient(createNodeTransport({ baseUrl, token })));
 * logger.logJobOutcome({ jobId: "job-1", jobType: "backup", status: JobStatus.SUCCESS, durationMs: 5200 });
 * process.on("SIGTERM", async () => { await logger.close(); process.exit(0); });
 * ```
 *
 * Delivery: a send failing with a transient code (`Unavailable`, `ResourceExhausted`,
 * `DeadlineExceeded`, `Internal`, `Unknown`, `Unauthenticated`...) keeps its events queued and
 * is retried with backoff (honouring the server's retry hint); event ids make the resend idempotent. A
 * final code (`InvalidArgument`, `PermissionDenied`, `Unimplemented`...) discards the batch.
 * Timers do not keep the process alive; `close()` does until it is done.
 *
 * @throws RangeError when `maxBatch` is outside 1-500 or `maxQueue` below 1.
 */
export function createEventLogger(client: Pick<AnalyticsClient, "logEvents">, options: EventLoggerOptions = {}): EventLogger {
  const queue = new EventQueue({
    ...options,
    send: (events, signal) => client.logEvents(events, { signal }),
  });
  const now = options.now ?? Date.now;
  const push = (input: EventInput): string | undefined => {
    let event: Event;
    try {
      event = toEvent(input, { clientTimestamps: true, now });
    } catch {
      return undefined;
    }
    return queue.enqueue(event) ? (event.kind.value?.eventId ?? "") : undefined;
  };
  return {
    logUserActivity: (userActivity) => push({ userActivity }),
    logError: (error) => push({ error }),
    logDeviceStateChange: (deviceStateChange) => push({ deviceStateChange }),
    logJobOutcome: (jobOutcome) => push({ jobOutcome }),
    log: push,
    flush: () => queue.flush(),
    close: (o) => queue.close(o),
    stats: () => queue.stats(),
  };
}
