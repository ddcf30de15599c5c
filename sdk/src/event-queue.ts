/**
 * The queue behind the Node event logger and the browser tracker (platform-neutral): events wait
 * in memory and go out with `LogEvents` when a batch is full or the oldest event is old enough.
 *
 * Delivery rules, which the loggers document:
 * - An event keeps the id it got when it was recorded, so resending it never stores it twice.
 * - A send failing with a transient code (see `isTransientError`) puts the batch back at the
 *   head of the queue and retries after a backoff (the server's retry hint when it gives
 *   one, see `retryHintMs`). Nothing is dropped because a send failed.
 * - A send failing with a final code (`InvalidArgument`, `PermissionDenied`, `Unimplemented`...)
 *   discards that batch (counted in `discarded`, reported to `onSendError`): retrying it could
 *   never succeed and would block everything behind it.
 * - A batch too large for the server's message cap (`ResourceExhausted` without a retry hint) is
 *   put back and sent again at once as smaller batches (halved each time, doubled back after each
 *   success); an event too large alone is discarded, as above.
 * - An event the server rejects on its own (`WRITE_OUTCOME_REJECTED`) is counted in `rejected`
 *   and reported to `onRejected`; the events beside it are stored.
 * - The queue is bounded (`maxQueue`, events waiting or being sent): when it is full, the NEW
 *   event is dropped and counted in `dropped` (the events already queued are older and were
 *   promised first; a burst that overflows is usually repetitive).
 * - One send at a time, so batches are sent in order.
 *
 * @module
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { WriteOutcome } from "./gen/analytics/v1/common_pb.js";
import type { Event, LogEventsResponse } from "./gen/analytics/v1/analytics_service_pb.js";
import { MAX_EVENTS_PER_BATCH } from "./analytics-client.js";
import { isTransientError, retryDelayMs, retryHintMs } from "./retry.js";
import type { BeaconBatch, CloseResult, EventQueueOptions, EventQueueStats } from "./event-queue-types.js";

export type { BeaconBatch, CloseResult, DropReason, EventQueueOptions, EventQueueStats } from "./event-queue-types.js";

interface Entry {
  readonly event: Event;
  readonly at: number;
  readonly seq: number;
}

const DEFAULT_RETRY = { initialBackoffMs: 500, maxBackoffMs: 30_000 };

type Timer = ReturnType<typeof setTimeout>;

/** Swallows a callback's exception: a user callback must never break the queue. */
function safely<A extends unknown[]>(fn: ((...args: A) => void) | undefined, ...args: A): void {
  try {
    fn?.(...args);
  } catch {
    // The callback's problem, not the queue's.
  }
}

/** See the module documentation. */
export class EventQueue {
  readonly #options: EventQueueOptions;
  readonly #maxBatch: number;
  readonly #flushIntervalMs: number;
  readonly #maxQueue: number;
  readonly #now: () => number;
  #queue: Entry[] = [];
  #inFlight: Entry[] = [];
  readonly #beacons = new Set<Entry[]>();
  /** Entries whose delivery was counted (a beacon and a regular send may both carry one). */
  readonly #delivered = new WeakSet<Entry>();
  #seq = 0;
  #sending: Promise<ConnectError | undefined> | undefined;
  #timer: Timer | undefined;
  #timerAt = 0;
  #retries = 0;
  #retryAt = 0;
  /**
   * Events the next batch may hold: `maxBatch`, halved while batches are refused as too large for
   * the server's message cap, doubled back after each batch that goes through.
   */
  #batchLimit: number;
  #closed = false;
  readonly #abort = new AbortController();
  #sent = 0;
  #rejected = 0;
  #dropped = 0;
  #discarded = 0;
  #failedSends = 0;

  /** @throws RangeError when `maxBatch` is not 1 to 500 or `maxQueue` is below 1. */
  constructor(options: EventQueueOptions) {
    this.#options = options;
    this.#maxBatch = options.maxBatch ?? MAX_EVENTS_PER_BATCH;
    this.#batchLimit = this.#maxBatch;
    this.#flushIntervalMs = options.flushIntervalMs ?? 1000;
    this.#maxQueue = options.maxQueue ?? 10_000;
    this.#now = options.now ?? Date.now;
    if (!Number.isInteger(this.#maxBatch) || this.#maxBatch < 1 || this.#maxBatch > MAX_EVENTS_PER_BATCH) {
      throw new RangeError(`maxBatch must be an integer from 1 to ${MAX_EVENTS_PER_BATCH} (got ${this.#maxBatch})`);
    }
    if (!Number.isInteger(this.#maxQueue) || this.#maxQueue < 1) throw new RangeError(`maxQueue must be a positive integer (got ${this.#maxQueue})`);
    if (!(this.#flushIntervalMs >= 0)) throw new RangeError(`flushIntervalMs must be >= 0 (got ${this.#flushIntervalMs})`);
  }

  /** Events waiting or being sent. */
  get size(): number {
    let beacons = 0;
    for (const b of this.#beacons) beacons += b.length;
    return this.#queue.length + this.#inFlight.length + beacons;
  }

  /** True once {@link close} was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /** The counters. */
  stats(): EventQueueStats {
    return {
      queued: this.size,
      sent: this.#sent,
      rejected: this.#rejected,
      dropped: this.#dropped,
      discarded: this.#discarded,
      failedSends: this.#failedSends,
    };
  }

  /**
   * Queues an event (already complete: id and time set).
   *
   * @returns false when it was dropped (queue full or closed).
   */
  enqueue(event: Event): boolean {
    if (this.#closed || this.size >= this.#maxQueue) {
      this.#dropped++;
      safely(this.#options.onDropped, event, this.#closed ? "closed" : "queue_full");
      return false;
    }
    this.#queue.push({ event, at: this.#now(), seq: ++this.#seq });
    this.#schedule();
    return true;
  }

  /**
   * Sends everything queued now, batch after batch, without waiting for batches to fill (and
   * without waiting out a backoff).
   *
   * @returns resolves once every event queued at the call has been sent (or rejected by the
   *   server); rejects with the `ConnectError` of a send that failed transiently: those events
   *   stay queued and are retried in the background.
   */
  async flush(): Promise<void> {
    const target = this.#seq;
    for (;;) {
      if (this.#sending) {
        await this.#sending;
        continue;
      }
      const head = this.#queue[0];
      if (head === undefined || head.seq > target) return;
      const err = await this.#startSend();
      if (err !== undefined && isTransientError(err)) throw err;
    }
  }

  /**
   * Stops taking events and delivers what is queued: sends batch after batch, retrying transient
   * failures with backoff, until the queue is empty or `timeoutMs` (default 10000) has passed;
   * then cancels a send still running (its events count as unsent) and stops the timers.
   */
  async close(options: { timeoutMs?: number } = {}): Promise<CloseResult> {
    this.#closed = true;
    this.#clearTimer();
    const deadline = this.#now() + (options.timeoutMs ?? 10_000);
    // Ref'd timers from here on: `await logger.close()` must keep a Node process alive.
    const outcome = await new Promise<"drained" | "expired">((resolve) => {
      const timer = setTimeout(() => resolve("expired"), Math.max(0, deadline - this.#now()));
      void this.#drain(deadline).then((drained) => {
        clearTimeout(timer);
        resolve(drained ? "drained" : "expired");
      });
    });
    if (outcome === "expired") {
      this.#abort.abort(new ConnectError("event queue closed before the send finished"));
      await this.#sending?.catch(() => undefined);
    }
    this.#clearTimer();
    const unsent = [...this.#inFlight, ...this.#queue].map((e) => e.event);
    for (const b of this.#beacons) unsent.push(...b.map((e) => e.event));
    return { unsent };
  }

  /** Sends until nothing is queued (true) or the deadline passes (false). */
  async #drain(deadline: number): Promise<boolean> {
    const empty = (): boolean => this.#queue.length === 0 && this.#inFlight.length === 0;
    while (!empty() && this.#now() < deadline && !this.#abort.signal.aborted) {
      try {
        await this.flush();
      } catch {
        const wait = Math.min(Math.max(0, this.#retryAt - this.#now()), deadline - this.#now());
        if (wait > 0) await this.#sleep(wait);
      }
    }
    return empty();
  }

  /**
   * Takes queued events (and copies of those being sent, which a page unload would cancel) for
   * page-hide beacons, as batches of at most `maxBatch` events and `budgetBytes` in all, measured
   * by `sizeOf`. Events that do not fit stay queued. Each batch must be settled.
   */
  takeForBeacon(budgetBytes: number, sizeOf: (event: Event) => number): BeaconBatch[] {
    const batches: BeaconBatch[] = [];
    let budget = budgetBytes;
    // Copies of in-flight events first: they are the oldest.
    const candidates = [...this.#inFlight.filter((e) => !this.#delivered.has(e)), ...this.#queue];
    let current: Entry[] = [];
    const taken = new Set<Entry>();
    for (const entry of candidates) {
      const size = sizeOf(entry.event) + 2;
      if (size > budget) break;
      budget -= size;
      current.push(entry);
      taken.add(entry);
      if (current.length === this.#maxBatch) {
        batches.push(this.#beacon(current));
        current = [];
      }
    }
    if (current.length > 0) batches.push(this.#beacon(current));
    this.#queue = this.#queue.filter((e) => !taken.has(e));
    return batches;
  }

  #beacon(entries: Entry[]): BeaconBatch {
    // In-flight copies stay owned by their regular send; the beacon owns what it took from the queue.
    const inFlight = new Set(this.#inFlight);
    const owned = entries.filter((e) => !inFlight.has(e));
    this.#beacons.add(owned);
    let settled = false;
    return {
      events: entries.map((e) => e.event),
      settle: (result) => {
        if (settled) return;
        settled = true;
        this.#beacons.delete(owned);
        if (result instanceof Error) {
          this.#queue = [...owned, ...this.#queue].sort((a, b) => a.seq - b.seq);
          this.#failedSends++;
          this.#schedule();
          return;
        }
        this.#account(entries, result);
      },
    };
  }

  /** Counts a batch's results, each entry once, whichever send delivered it first. */
  #account(entries: readonly Entry[], response: LogEventsResponse): void {
    entries.forEach((entry, i) => {
      if (this.#delivered.has(entry)) return;
      this.#delivered.add(entry);
      const result = response.results[i];
      if (result?.outcome === WriteOutcome.REJECTED) {
        this.#rejected++;
        safely(this.#options.onRejected, entry.event, result);
      } else {
        this.#sent++;
      }
    });
  }

  /** Sends the next batch now (the timer calls it when a batch is due; flush and close at once). */
  #startSend(): Promise<ConnectError | undefined> {
    if (this.#sending) return this.#sending;
    const run = async (): Promise<ConnectError | undefined> => {
      const batch = this.#queue.splice(0, this.#batchLimit);
      if (batch.length === 0) return undefined;
      this.#inFlight = batch;
      let response: LogEventsResponse;
      try {
        response = await this.#options.send(
          batch.map((e) => e.event),
          this.#abort.signal,
        );
      } catch (raw) {
        const err = ConnectError.from(raw);
        const back = batch.filter((e) => !this.#delivered.has(e));
        this.#inFlight = [];
        // Too large for the message cap (ResourceExhausted without a retry hint, which a full
        // buffer or a rate limit gives): the same batch would fail forever. Smaller batches are
        // sent at once; an event too large alone is discarded.
        if (err.code === Code.ResourceExhausted && retryHintMs(err) === undefined) {
          if (back.length > 1) {
            this.#queue = [...back, ...this.#queue];
            this.#batchLimit = Math.max(1, Math.floor(back.length / 2));
            safely(this.#options.onSendError, err, true);
          } else {
            this.#discarded += back.length;
            safely(this.#options.onSendError, err, false);
          }
          return err;
        }
        if (isTransientError(err)) {
          this.#queue = [...back, ...this.#queue];
          this.#failedSends++;
          this.#retryAt = this.#now() + retryDelayMs(err, this.#retries++, this.#options.retry ?? DEFAULT_RETRY);
          safely(this.#options.onSendError, err, true);
        } else {
          this.#discarded += back.length;
          safely(this.#options.onSendError, err, false);
        }
        return err;
      }
      this.#inFlight = [];
      this.#retries = 0;
      this.#retryAt = 0;
      this.#batchLimit = Math.min(this.#maxBatch, this.#batchLimit * 2);
      this.#account(batch, response);
      return undefined;
    };
    const sending = run();
    this.#sending = sending;
    void sending.finally(() => {
      if (this.#sending === sending) this.#sending = undefined;
      this.#schedule();
    });
    return sending;
  }

  /** When the next automatic send is due, or undefined when nothing is queued. */
  #dueAt(): number | undefined {
    const head = this.#queue[0];
    if (head === undefined) return undefined;
    const due = this.#queue.length >= this.#maxBatch ? this.#now() : head.at + this.#flushIntervalMs;
    return Math.max(due, this.#retryAt);
  }

  #schedule(): void {
    if (this.#sending || (this.#closed && this.#abort.signal.aborted)) return;
    if (this.#closed) return; // close() drives the sends itself
    const due = this.#dueAt();
    if (due === undefined) {
      this.#clearTimer();
      return;
    }
    const wait = Math.max(0, due - this.#now());
    if (this.#timer !== undefined && this.#timerAt <= due) return;
    this.#clearTimer();
    this.#timerAt = due;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      const next = this.#dueAt();
      if (next !== undefined && next <= this.#now()) void this.#startSend();
      else this.#schedule();
    }, wait);
    this.#unref(this.#timer);
  }

  #clearTimer(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #unref(timer: Timer): void {
    if (this.#options.unrefTimers === false) return;
    (timer as { unref?: () => void }).unref?.();
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => setTimeout(resolve, ms));
  }
}
