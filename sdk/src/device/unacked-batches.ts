/**
 * The streamer's resend window: every batch sealed and not yet acknowledged, oldest first, under
 * its sequence number, and the `flushed()` callers waiting for the window to move past a sequence.
 * Apart from the streaming loop because this is the part that decides what is resent after a
 * reconnection and when a caller's samples count as delivered.
 *
 * @module
 */
import type { ConnectError } from "@connectrpc/connect";
import type { MetricSample } from "../gen/analytics/v1/analytics_service_pb.js";
import { refusedBatchSequence } from "../error-details.js";

/** One numbered batch, kept until the server acknowledges it. */
export interface Batch {
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
 * The unacknowledged batches and the waiters on them. Waiters are settled only by
 * {@link UnackedBatches.settleWaiters}, so the streamer decides when (after its own callbacks).
 */
export class UnackedBatches {
  /** The batches, oldest (lowest sequence) first: the order they are (re)sent in. */
  readonly batches: Batch[] = [];
  #nextSequence = 1;
  #waiters: Waiter[] = [];

  /** Batches in the window. */
  get length(): number {
    return this.batches.length;
  }

  /** The sequence number of the last batch sealed (0 before the first). */
  get lastSequence(): number {
    return this.#nextSequence - 1;
  }

  /** Numbers `samples` as the next batch and keeps it until acknowledged. */
  add(samples: MetricSample[]): Batch {
    const batch: Batch = { sequence: this.#nextSequence++, samples, sends: 0 };
    this.batches.push(batch);
    return batch;
  }

  /**
   * Takes the batch `sequence` out of the window. Returns undefined when it is not there: already
   * acknowledged (an old stream's late answer).
   */
  acknowledge(sequence: number): Batch | undefined {
    const index = this.batches.findIndex((b) => b.sequence === sequence);
    if (index < 0) return undefined;
    return this.batches.splice(index, 1)[0];
  }

  /**
   * Drops the batch an `InvalidArgument` names (its `analytics.v1.RefusedBatch` detail), else the
   * oldest unacknowledged: the server acknowledges every batch before the one it refuses.
   *
   * @returns whether a batch was dropped (false when the window was empty).
   */
  dropRefused(err: ConnectError): boolean {
    const sequence = refusedBatchSequence(err);
    const named = sequence === undefined ? -1 : this.batches.findIndex((b) => BigInt(b.sequence) === sequence);
    const index = named >= 0 ? named : 0;
    if (this.batches.length === 0) return false;
    this.batches.splice(index, 1);
    return true;
  }

  /** Samples in the window. */
  sampleCount(): number {
    return this.batches.reduce((n, b) => n + b.samples.length, 0);
  }

  /** Every sample in the window, oldest first. */
  samples(): MetricSample[] {
    return this.batches.flatMap((b) => b.samples);
  }

  /** Resolves once every batch up to `target` has left the window (at once if they have). */
  whenPast(target: number): Promise<void> {
    if ((this.batches[0]?.sequence ?? Infinity) > target) return Promise.resolve();
    return new Promise<void>((resolve, reject) => this.#waiters.push({ target, resolve, reject }));
  }

  /** Resolves the waiters whose batches have all left the window. */
  settleWaiters(): void {
    const oldest = this.batches[0]?.sequence ?? Infinity;
    this.#waiters = this.#waiters.filter((w) => {
      if (w.target < oldest) {
        w.resolve();
        return false;
      }
      return true;
    });
  }

  /** Rejects every waiter with `err`. */
  rejectWaiters(err: unknown): void {
    for (const w of this.#waiters) w.reject(err);
    this.#waiters = [];
  }
}
