/**
 * The public types of the event queue (`event-queue.ts`): its options, counters and the results
 * of `close()` and of a page-hide beacon, apart from the queue's logic so the loggers that expose
 * them (`./node`, `./web`) import no code to name them.
 *
 * @module
 */
import type { ConnectError } from "@connectrpc/connect";
import type { Event, EventResult, LogEventsResponse } from "./gen/analytics/v1/analytics_service_pb.js";
import type { RetryOptions } from "./retry.js";

/** Counters of an event queue, since it was created. */
export interface EventQueueStats {
  /** Events waiting or being sent now. */
  readonly queued: number;
  /** Events the server accepted (stored, de-duplicated or replayed). */
  readonly sent: number;
  /** Events the server rejected one by one (invalid or not allowed); not retried. */
  readonly rejected: number;
  /** Events not queued because the queue was full or closed. */
  readonly dropped: number;
  /** Events thrown away because their batch failed with a final (non-transient) error. */
  readonly discarded: number;
  /** Sends that failed transiently and were retried (their events stayed queued). */
  readonly failedSends: number;
}

/** Why an event was not queued. */
export type DropReason = "queue_full" | "closed";

/** Options of {@link EventQueue}. */
export interface EventQueueOptions {
  /** Sends one batch (1 to `maxBatch` events) and returns the server's answer. */
  readonly send: (events: Event[], signal: AbortSignal) => Promise<LogEventsResponse>;
  /** Events per `LogEvents` call, 1 to 500 (default 500). A full batch is sent at once. */
  readonly maxBatch?: number;
  /** Longest an event waits for its batch to fill, in ms (default 1000). */
  readonly flushIntervalMs?: number;
  /** Most events waiting or being sent (default 10000); see the drop policy above. */
  readonly maxQueue?: number;
  /** Backoff between failed sends (default 500 ms doubling up to 30 s). */
  readonly retry?: Pick<RetryOptions, "initialBackoffMs" | "maxBackoffMs">;
  /** Called for each event the server rejected, with its result (violations). */
  readonly onRejected?: (event: Event, result: EventResult) => void;
  /** Called for each event that could not be queued. */
  readonly onDropped?: (event: Event, reason: DropReason) => void;
  /** Called when a send fails; `willRetry` false means its events were discarded. */
  readonly onSendError?: (error: ConnectError, willRetry: boolean) => void;
  /** Do not let the queue's timers keep a Node process alive (default true). */
  readonly unrefTimers?: boolean;
  /** Clock, epoch ms (tests). */
  readonly now?: () => number;
}

/** What {@link EventQueue.close} could not deliver. */
export interface CloseResult {
  /** Events still queued when the time ran out (empty when everything was sent). */
  readonly unsent: readonly Event[];
}

/** A batch taken out of the queue for a page-hide beacon; see {@link EventQueue.takeForBeacon}. */
export interface BeaconBatch {
  readonly events: readonly Event[];
  /** Reports the outcome: the server's answer, or the failure (the events are then queued again). */
  settle(result: LogEventsResponse | Error): void;
}
