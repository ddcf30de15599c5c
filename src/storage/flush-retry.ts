/**
 * What a flush does with the outcome of its attempts: transient database errors retried with
 * capped, jittered exponential backoff (durable rows that waited `maxWaitMs` failed `Unavailable`
 * meanwhile), a batch the database refuses halved until the bad row is alone, and every row
 * settled in the end: its write answered, or its failure counted and, for fire-and-forget rows,
 * logged at most once per interval. Apart from the attempt itself (`flush-attempt.ts`) so the
 * policy reads on its own; it sees the attempt and the buffer only through the two functions it
 * is given.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { setTimeout as sleep } from "node:timers/promises";
import { errorFields, type Logger } from "../util/logger.js";
import { isTransientStorageError, storageErrorToConnect } from "./storage-errors.js";
import type { TableName, TableSpec } from "./table-specs.js";
import type { Pending } from "./write-buffer.js";
import type { BatchWriterOptions, RowResult, WriterStats } from "./writer-types.js";

/** At most one log line per table per interval for refused fire-and-forget rows. */
const REFUSED_OFFERS_LOG_INTERVAL_MS = 10_000;

/** The options the retry loop reads. */
export type FlushRetryOptions = Pick<BatchWriterOptions, "maxWaitMs" | "initialBackoffMs" | "maxBackoffMs">;

/** Stores batches through an attempt function, retrying and isolating refused rows. */
export class FlushRetry {
  readonly #attempt: (spec: TableSpec, batch: readonly Pending[], retried: boolean) => Promise<RowResult[]>;
  readonly #release: (entries: readonly Pending[]) => void;
  readonly #options: FlushRetryOptions;
  readonly #stats: WriterStats;
  readonly #log: Logger;
  #aborted = false;
  /** Whether the last attempt failed transiently: logs the first failure and the recovery once. */
  #outage = false;
  /** Per table: when the next refused-offers log line may be written, and rows refused meanwhile. */
  readonly #refusedOffers = new Map<TableName, { quietUntil: number; suppressed: number }>();

  /**
   * @param args.attempt - one attempt at storing a batch (`FlushAttempt.run`).
   * @param args.release - uncounts rows from the buffer once settled (`WriteBuffer.release`).
   * @param args.options - the writer's options (read at each retry).
   * @param args.stats - the writer's counters; this adds to `storedRows`, `retries`,
   *   `failedUnavailable` and `failedPermanent`.
   */
  constructor(args: {
    attempt: (spec: TableSpec, batch: readonly Pending[], retried: boolean) => Promise<RowResult[]>;
    release: (entries: readonly Pending[]) => void;
    options: FlushRetryOptions;
    stats: WriterStats;
    log: Logger;
  }) {
    this.#attempt = args.attempt;
    this.#release = args.release;
    this.#options = args.options;
    this.#stats = args.stats;
    this.#log = args.log;
  }

  /** From now on, transient errors fail rows rather than being retried (a drain that timed out). */
  abort(): void {
    this.#aborted = true;
  }

  /**
   * Stores `batch`, retrying and isolating refused rows, and settles every row of it.
   * `retried`: an earlier attempt may have committed.
   */
  async run(spec: TableSpec, batch: Pending[], retried = false): Promise<void> {
    let attempt = 0;
    for (;;) {
      try {
        const results = await this.#attempt(spec, batch, retried || attempt > 0);
        if (this.#outage) {
          this.#outage = false;
          this.#log.info("database writes recovered", { table: spec.table, retries: attempt });
        }
        this.#release(batch);
        this.#stats.storedRows += batch.length;
        for (let i = 0; i < batch.length; i++) batch[i]!.settle?.resolve(batch[i]!.index, results[i]!);
        return;
      } catch (err) {
        if (isTransientStorageError(err) && !this.#aborted) {
          if (!this.#outage) {
            this.#outage = true;
            this.#log.warn("database write failed; retrying", { table: spec.table, ...errorFields(err) });
          }
          this.#stats.retries++;
          batch = this.#expire(batch);
          if (batch.length === 0) return;
          const delay = Math.min(this.#options.maxBackoffMs, this.#options.initialBackoffMs * 2 ** attempt++);
          await sleep(delay * (0.5 + Math.random() / 2));
          continue;
        }
        if (batch.length > 1 && !isTransientStorageError(err)) {
          // Isolate the row the database refuses by halving the batch, so the others still get
          // stored in a few flushes rather than one per row.
          const half = Math.ceil(batch.length / 2);
          await this.run(spec, batch.slice(0, half), retried || attempt > 0);
          await this.run(spec, batch.slice(half), retried || attempt > 0);
          return;
        }
        this.#release(batch);
        if (batch.every((e) => !e.settle)) {
          // Fire-and-forget rows have no caller to give a correlation id to: count them and log
          // once per interval, so a table-wide failure does not log a line per row.
          this.#stats.failedPermanent += batch.length;
          this.#reportRefusedOffers(spec.table, batch.length, err);
          return;
        }
        const failure = storageErrorToConnect(err, this.#log, `write ${spec.table}`);
        if (failure.code === Code.Unavailable) this.#stats.failedUnavailable += batch.length;
        else this.#stats.failedPermanent += batch.length;
        for (const e of batch) e.settle?.reject(failure);
        return;
      }
    }
  }

  /** Logs offered rows the database refused: the first at once, then one summary per interval. */
  #reportRefusedOffers(table: TableName, rows: number, err: unknown): void {
    const now = Date.now();
    const seen = this.#refusedOffers.get(table);
    if (seen && now < seen.quietUntil) {
      seen.suppressed += rows;
      return;
    }
    this.#log.error("storage refused fire-and-forget rows; dropped", {
      table,
      rows: rows + (seen?.suppressed ?? 0),
      ...errorFields(err),
    });
    this.#refusedOffers.set(table, { quietUntil: now + REFUSED_OFFERS_LOG_INTERVAL_MS, suppressed: 0 });
  }

  /** Fails durable rows that waited too long; keeps the rest (offered rows wait within the caps). */
  #expire(batch: Pending[]): Pending[] {
    const now = Date.now();
    const keep: Pending[] = [];
    const expired: Pending[] = [];
    for (const e of batch) (e.settle && now - e.enqueuedAt >= this.#options.maxWaitMs ? expired : keep).push(e);
    if (expired.length > 0) {
      this.#release(expired);
      this.#stats.failedUnavailable += expired.length;
      const err = new ConnectError("storage is temporarily unavailable; retry later", Code.Unavailable);
      for (const e of expired) e.settle!.reject(err);
    }
    return keep;
  }
}
