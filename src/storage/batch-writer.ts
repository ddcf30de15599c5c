/**
 * The batch writer: every write path of the service goes through it.
 *
 * - Rows are buffered per table and flushed by size (`batchRows`) or age (`maxDelayMs`, per
 *   table), a bounded number of flushes at a time per table (group commit: rows that arrive during
 *   a flush go in the next one), as COPY (real PostgreSQL), `unnest` or multi-row inserts on a
 *   pooled connection, off the ORM's unit of work.
 * - Durable-before-ack: {@link BatchWriter.write} resolves only after the rows' transaction has
 *   committed; {@link BatchWriter.offer} (the request log) is fire-and-forget.
 * - Bounded: buffered (and in-flight) rows and bytes are capped. A durable write that does not fit
 *   fails at once with `ResourceExhausted` and a retry hint; streams call
 *   {@link BatchWriter.whenWritable} before reading on, which pushes back through HTTP/2 flow
 *   control; offered rows are dropped and counted.
 * - Database errors: transient ones (connection lost, server restarting) are retried with capped
 *   exponential backoff; a durable row that has waited `maxWaitMs` fails `Unavailable` and is never
 *   written afterwards. A non-transient error halves the batch until the bad row is alone, so the
 *   rows beside it are still stored.
 * - Flush hooks (rollups) run inside the same transaction as the insert. A COPY into a table no
 *   hook reads is its own transaction (one statement: atomic, and committed when PostgreSQL
 *   answers it), without BEGIN and COMMIT round trips.
 * - `close()` stops intake and drains the buffers; call it before closing the ORM.
 *
 * Its parts: `writer-types.ts` (rows, results, hooks, options, counters), `write-buffer.ts` (the
 * bounded buffer and its back-pressure), `flush-retry.ts` (retries, backoff, isolating refused
 * rows), `flush-attempt.ts` (one attempt: connection, time bound, transaction, COPY fallback) and
 * `row-inserter.ts` (the statements and each row's answer). This file schedules flushes per table.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { resourceExhausted } from "../errors/error-details.js";
import { setTimeout as sleep } from "node:timers/promises";
import type { Logger } from "../util/logger.js";
import type { ConnectionSource } from "../db/sql-runner.js";
import { FlushAttempt } from "./flush-attempt.js";
import { FlushRetry } from "./flush-retry.js";
import { fitsShare, WriteBuffer, WriteGroup, type OfferShare, type Pending } from "./write-buffer.js";
import {
  DEFAULT_WRITER_OPTIONS,
  NO_WRITER_STATS,
  type BatchWriterOptions,
  type FlushHook,
  type Row,
  type RowResult,
  type WriterStats,
} from "./writer-types.js";
import type { TableName, TableSpec } from "./table-specs.js";

export type { TableName } from "./table-specs.js";
export { JsonText } from "../util/json-text.js";
export { fitsShare, OfferShare } from "./write-buffer.js";
export {
  DEFAULT_WRITER_OPTIONS,
  NO_WRITER_STATS,
  type BatchWriterOptions,
  type FlushContext,
  type FlushHook,
  type Row,
  type RowResult,
  type WriterStats,
} from "./writer-types.js";

/** One table's buffered rows and the flushes running for it. */
interface TableQueue {
  readonly spec: TableSpec;
  entries: Pending[];
  /** Flushes running now, at most `concurrency`. */
  readonly inflight: Set<Promise<void>>;
  /** Parallel flushes allowed (1 for error_logs, whose de-duplication reads what it writes). */
  readonly concurrency: number;
  timer: NodeJS.Timeout | undefined;
}

/** See the module documentation. */
export class BatchWriter {
  readonly options: BatchWriterOptions;
  readonly #specs: Record<TableName, TableSpec>;
  readonly #queues = new Map<TableName, TableQueue>();
  readonly #log: Logger;
  readonly #stats: WriterStats = { ...NO_WRITER_STATS };
  readonly #buffer: WriteBuffer;
  readonly #retry: FlushRetry;
  #closed = false;

  constructor(args: {
    specs: Record<TableName, TableSpec>;
    source: ConnectionSource;
    log: Logger;
    hooks?: readonly FlushHook[];
    options?: Partial<BatchWriterOptions>;
  }) {
    this.options = { ...DEFAULT_WRITER_OPTIONS, ...args.options };
    this.#specs = args.specs;
    this.#log = args.log;
    this.#buffer = new WriteBuffer(this.options, this.#stats);
    const attempt = new FlushAttempt({ source: args.source, hooks: args.hooks ?? [], options: this.options, stats: this.#stats });
    this.#retry = new FlushRetry({
      attempt: (spec, batch, retried) => attempt.run(spec, batch, retried),
      release: (entries) => this.#buffer.release(entries),
      options: this.options,
      stats: this.#stats,
      log: this.#log,
    });
  }

  /** A snapshot of the counters. */
  stats(): WriterStats {
    return { ...this.#stats };
  }

  /** True when `rows` more rows fit under the caps. */
  hasRoom(rows = 1): boolean {
    return this.#buffer.hasRoom(rows);
  }

  /**
   * Durable write: resolves with one result per row once committed. Fails `ResourceExhausted`
   * when the buffer is full, `Unavailable` when the database stays away longer than `maxWaitMs`
   * or the writer is closing.
   */
  write(table: TableName, rows: readonly Row[]): Promise<RowResult[]> {
    if (this.#closed) return Promise.reject(new ConnectError("server is shutting down; retry on another instance", Code.Unavailable));
    if (rows.length === 0) return Promise.resolve([]);
    if (!this.hasRoom(rows.length)) return Promise.reject(this.bufferFullError());
    const queue = this.#queue(table);
    const now = Date.now();
    const written = new Promise<RowResult[]>((resolve, reject) => {
      const group = new WriteGroup(rows.length, resolve, reject);
      for (let i = 0; i < rows.length; i++) this.#buffer.add(queue.entries, queue.spec, rows[i]!, now, group, i);
    });
    this.#schedule(queue, this.options.maxDelayMs);
    return written;
  }

  /**
   * The `ResourceExhausted` answer for a write that does not fit, with a retry hint (a
   * `google.rpc.RetryInfo` detail, the `retry-after-ms` header, and in the message) that clients
   * and the SDK's retry policy honour. Counts the refusal.
   */
  bufferFullError(): ConnectError {
    this.#stats.rejectedFull++;
    const hint = this.#retryHintMs();
    return resourceExhausted(`write buffer is full (${this.#stats.bufferedRows} rows buffered); retry after ${hint} ms`, hint);
  }

  /**
   * Fire-and-forget write (request logs). Returns false when the row was dropped: the buffer is
   * full or closing (`droppedOffers`), or `share` is used up (`shedOffers`).
   */
  offer(table: TableName, row: Row, share?: OfferShare): boolean {
    if (this.#closed || !this.hasRoom(1)) {
      this.#stats.droppedOffers++;
      return false;
    }
    if (share !== undefined && !fitsShare(share, this.options)) {
      this.#stats.shedOffers++;
      return false;
    }
    const queue = this.#queue(table);
    this.#buffer.add(queue.entries, queue.spec, row, Date.now(), undefined, 0, share);
    this.#schedule(queue, this.options.offerMaxDelayMs);
    return true;
  }

  /** Resolves when `rows` more rows fit (at once if they do); rejects if `signal` aborts. */
  whenWritable(rows: number, signal?: AbortSignal): Promise<void> {
    return this.#buffer.whenWritable(rows, signal);
  }

  /** Flushes everything buffered now and waits for it. */
  async flush(): Promise<void> {
    for (;;) {
      const busy = [...this.#queues.values()].filter((q) => q.entries.length > 0 || q.inflight.size > 0);
      if (busy.length === 0) return;
      await Promise.all(busy.map((q) => this.#flushNow(q)));
    }
  }

  /** Stops intake and drains; after `drainTimeoutMs` what is left fails `Unavailable`. */
  async close(): Promise<void> {
    this.#closed = true;
    const drained = this.flush();
    const timedOut = await Promise.race([
      drained.then(() => false),
      sleep(this.options.drainTimeoutMs, true, { ref: false }),
    ]);
    if (timedOut) {
      this.#retry.abort();
      this.#log.error("writer drain timed out; failing what is left", { bufferedRows: this.#stats.bufferedRows });
      for (const q of this.#queues.values()) {
        const left = q.entries.splice(0);
        this.#buffer.release(left);
        for (const e of left) e.settle?.reject(new ConnectError("server stopped before the write was stored", Code.Unavailable));
      }
      await drained.catch(() => undefined);
    }
  }

  #queue(table: TableName): TableQueue {
    let q = this.#queues.get(table);
    if (!q) {
      const spec = this.#specs[table];
      if (!spec) throw new Error(`unknown table ${table}`);
      const concurrency = table === "error_logs" ? 1 : this.options.flushConcurrency;
      q = { spec, entries: [], inflight: new Set(), concurrency, timer: undefined };
      this.#queues.set(table, q);
    }
    return q;
  }

  #schedule(queue: TableQueue, delayMs: number): void {
    if (queue.entries.length >= this.options.batchRows || this.#closed) {
      void this.#flushNow(queue);
      return;
    }
    if (queue.inflight.size > 0) return; // a running flush takes these rows when it ends (group commit)
    if (queue.timer === undefined) {
      queue.timer = setTimeout(() => void this.#flushNow(queue), delayMs);
    } else if (delayMs < this.options.offerMaxDelayMs && queue.entries.some((e) => e.settle)) {
      // A durable row joined a queue waiting on the long fire-and-forget delay: shorten it.
      clearTimeout(queue.timer);
      queue.timer = setTimeout(() => void this.#flushNow(queue), delayMs);
    }
  }

  /** Starts a flush if the table has rows and a free flush slot; resolves when one settles. */
  #flushNow(queue: TableQueue): Promise<void> {
    if (queue.timer !== undefined) {
      clearTimeout(queue.timer);
      queue.timer = undefined;
    }
    if (queue.entries.length === 0) return Promise.all(queue.inflight).then(() => undefined);
    if (queue.inflight.size >= queue.concurrency) return Promise.race(queue.inflight);
    const batch = queue.entries.splice(0, this.options.batchRows);
    const flushing: Promise<void> = this.#retry.run(queue.spec, batch).finally(() => {
      queue.inflight.delete(flushing);
      if (queue.entries.length === 0) return;
      // Durable rows that waited through the previous flush have waited long enough (group
      // commit); fire-and-forget rows keep collecting until their batch fills or ages.
      if (queue.entries.length >= this.options.batchRows || queue.entries.some((e) => e.settle)) void this.#flushNow(queue);
      else this.#schedule(queue, this.options.offerMaxDelayMs);
    });
    queue.inflight.add(flushing);
    // A backlog of full batches uses the other flush slots at once.
    if (queue.entries.length >= this.options.batchRows && queue.inflight.size < queue.concurrency) void this.#flushNow(queue);
    return flushing;
  }

  /** How long a client should wait before retrying a write the full buffer refused. */
  #retryHintMs(): number {
    return Math.min(5_000, Math.max(100, this.options.maxDelayMs * 20));
  }
}
