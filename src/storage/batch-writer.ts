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
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { resourceExhausted } from "../errors/error-details.js";
import { setTimeout as sleep } from "node:timers/promises";
import { errorFields, type Logger } from "../util/logger.js";
import { runnerOn, type ConnectionSource, type SqlClient, type SqlRunner } from "../db/sql-runner.js";
import { applyErrorOccurrence } from "./error-writes.js";
import { copyRows, isUniqueViolation } from "./copy-rows.js";
import { insertStatements, type InsertStrategy } from "./insert-sql.js";
import { isTransientStorageError, storageErrorToConnect } from "./storage-errors.js";
import { JsonText, wellFormedJson } from "../util/json-text.js";
import type { TableName, TableSpec } from "./table-specs.js";

export type { TableName } from "./table-specs.js";
export { JsonText } from "../util/json-text.js";

/** A row to write: database column names; timestamps as `Date`; JSON columns as plain values or {@link JsonText}. */
export type Row = Readonly<Record<string, unknown>>;

/** What a write did with one row. */
export interface RowResult {
  /** `stored`: new row; `replayed`: already stored (same event_id or key); `deduplicated`: counted on a stored error. */
  readonly outcome: "stored" | "replayed" | "deduplicated";
  /** The row id (for error_logs, the error the occurrence was counted on). */
  readonly id?: string;
  /** error_logs only: the error's occurrence count after this write. */
  readonly occurrenceCount?: number;
  /** error_logs only: the error is marked regressed. */
  readonly regressed?: boolean;
}

/**
 * Statements run inside a flush's transaction (node-postgres `$1` parameters). With
 * `options.name`, as a prepared statement of that name: PostgreSQL parses and plans it once per
 * connection rather than on every flush (the name must always go with the same text).
 */
export type FlushContext = SqlRunner;

/** Work done in the flush transaction of some tables (the rollups). */
export interface FlushHook {
  /**
   * The tables whose flushes it runs in. Only these flushes pay for an explicit transaction:
   * the others, on COPY, commit the statement alone.
   */
  readonly tables: ReadonlySet<TableName>;
  /**
   * Runs inside the flush transaction after the insert, with the rows that are new (replays
   * excluded). For `error_logs`, one row per occurrence, de-duplicated repeats included.
   */
  run(ctx: FlushContext, table: TableName, accepted: readonly Row[]): Promise<void>;
}

/** Tuning of the writer; defaults in {@link DEFAULT_WRITER_OPTIONS}. */
export interface BatchWriterOptions {
  /** Rows per flush (and per statement chunk). */
  readonly batchRows: number;
  /** Flushes of one table that may run at once, each on its own pooled connection. */
  readonly flushConcurrency: number;
  /** Longest a durable row waits for its batch to fill. */
  readonly maxDelayMs: number;
  /** Longest a fire-and-forget row (request log) waits for its batch to fill. */
  readonly offerMaxDelayMs: number;
  /** Cap on buffered plus in-flight rows, all tables together. */
  readonly maxBufferedRows: number;
  /** Cap on buffered plus in-flight bytes (estimated), all tables together. */
  readonly maxBufferedBytes: number;
  /** Longest a durable row waits through database errors before failing `Unavailable`. */
  readonly maxWaitMs: number;
  /**
   * Longest one flush attempt may take before its connection is broken and the attempt counts as
   * a transient failure (bounds the wait when the database stops answering without an error).
   */
  readonly attemptTimeoutMs: number;
  /** First retry delay after a transient error; doubles up to {@link maxBackoffMs}. */
  readonly initialBackoffMs: number;
  readonly maxBackoffMs: number;
  /** Longest `close()` spends draining before failing what is left. */
  readonly drainTimeoutMs: number;
  /**
   * How rows are inserted. `copy` only on a real PostgreSQL server (it hangs the embedded
   * database's socket); the default, `unnest`, works everywhere.
   */
  readonly strategy: InsertStrategy;
  /**
   * With `copy`: send rows in PostgreSQL's binary COPY format where they fit it (`src/wire/copy-binary.ts`);
   * false: always text (`ANALYTICS_WIRE_FAST_PATH=false`).
   */
  readonly binaryCopy: boolean;
  /** Error de-duplication interval (0 disables it). */
  readonly errorDedupIntervalMs: number;
}

/** Defaults, chosen from `npm run bench -- writer` (see docs/BENCHMARKS.md). */
export const DEFAULT_WRITER_OPTIONS: BatchWriterOptions = Object.freeze({
  batchRows: 4000,
  flushConcurrency: 2,
  maxDelayMs: 5,
  offerMaxDelayMs: 200,
  maxBufferedRows: 100_000,
  maxBufferedBytes: 64 * 1024 * 1024,
  maxWaitMs: 10_000,
  attemptTimeoutMs: 10_000,
  initialBackoffMs: 50,
  maxBackoffMs: 2_000,
  drainTimeoutMs: 10_000,
  strategy: "unnest",
  binaryCopy: true,
  errorDedupIntervalMs: 300_000,
});

/** Counters for logs, metrics and tests. */
export interface WriterStats {
  bufferedRows: number;
  bufferedBytes: number;
  storedRows: number;
  droppedOffers: number;
  rejectedFull: number;
  failedUnavailable: number;
  failedPermanent: number;
  retries: number;
  flushes: number;
  /** COPY batches redone with `unnest` because a row was already stored. */
  copyFallbacks: number;
  /**
   * Offered rows dropped because their {@link OfferShare} was used up (unauthenticated calls'
   * request-log rows), while the buffer itself still had room.
   */
  shedOffers: number;
}

/** Every counter at zero: a new writer's stats. */
export const NO_WRITER_STATS: Readonly<WriterStats> = Object.freeze({
  bufferedRows: 0,
  bufferedBytes: 0,
  storedRows: 0,
  droppedOffers: 0,
  rejectedFull: 0,
  failedUnavailable: 0,
  failedPermanent: 0,
  retries: 0,
  flushes: 0,
  copyFallbacks: 0,
  shedOffers: 0,
});

/**
 * A share of the buffer caps that some fire-and-forget rows may fill together, so that rows
 * anyone can cause (the request-log rows of unauthenticated calls) never take the room durable
 * writes need. Offered through it ({@link BatchWriter.offer}), rows over the share are dropped and
 * counted (`shedOffers`); its counts fall as its rows are flushed.
 */
export class OfferShare {
  /** Rows of this share buffered or being flushed now. */
  rows = 0;
  /** Their estimated bytes. */
  bytes = 0;

  /**
   * @param fraction - of `maxBufferedRows` and of `maxBufferedBytes`, from 0 (every row
   *   dropped) to 1 (no more limited than any offered row).
   * @throws RangeError when `fraction` is not in [0, 1].
   */
  constructor(readonly fraction: number) {
    if (!(fraction >= 0 && fraction <= 1)) throw new RangeError(`an offer share must be from 0 to 1 (got ${fraction})`);
  }
}

/**
 * Whether one more row fits in `share` under the caps (pure): rows as a count, bytes as the
 * buffer's own cap does (room while under it).
 */
export function fitsShare(
  share: Pick<OfferShare, "rows" | "bytes" | "fraction">,
  caps: Pick<BatchWriterOptions, "maxBufferedRows" | "maxBufferedBytes">,
): boolean {
  return share.rows + 1 <= Math.floor(caps.maxBufferedRows * share.fraction) && share.bytes < caps.maxBufferedBytes * share.fraction;
}

/** At most one log line per table per interval for refused fire-and-forget rows. */
const REFUSED_OFFERS_LOG_INTERVAL_MS = 10_000;

/**
 * The rows of one durable `write()` call, answered together: one promise per call rather than
 * a promise, two closures and `Promise.all` per row (a device stream stores ~100k rows/s:
 * docs/BENCHMARKS.md#measured-choices-in-the-code).
 */
class WriteGroup {
  readonly #results: RowResult[];
  #left: number;
  #failed = false;
  #failure: unknown;
  readonly #resolve: (results: RowResult[]) => void;
  readonly #reject: (err: unknown) => void;

  constructor(rows: number, resolve: (results: RowResult[]) => void, reject: (err: unknown) => void) {
    this.#results = new Array<RowResult>(rows);
    this.#left = rows;
    this.#resolve = resolve;
    this.#reject = reject;
  }

  /** Row `index` is stored (or replayed): the call resolves when every row is. */
  resolve(index: number, result: RowResult): void {
    this.#results[index] = result;
    this.#settleOne();
  }

  /**
   * A row failed: the call fails with the first failure, once every row of it is settled, so a
   * caller told of a failure knows that the rest of its rows are stored or failed too (none is
   * still on its way to the database, racing a retry).
   */
  reject(err: unknown): void {
    if (!this.#failed) {
      this.#failed = true;
      this.#failure = err;
    }
    this.#settleOne();
  }

  #settleOne(): void {
    if (--this.#left !== 0) return;
    if (this.#failed) this.#reject(this.#failure);
    else this.#resolve(this.#results);
  }
}

interface Pending {
  readonly row: Row;
  readonly values: unknown[];
  readonly bytes: number;
  readonly enqueuedAt: number;
  /** The durable write this row belongs to; none for offered (fire-and-forget) rows. */
  readonly settle: WriteGroup | undefined;
  /** The row's index in its write. */
  readonly index: number;
  /** The share an offered row counts against, if any. */
  readonly share: OfferShare | undefined;
}

/** The answer for a row that COPY stored: shared, rows are many. */
const STORED: RowResult = Object.freeze({ outcome: "stored" });

interface TableQueue {
  readonly spec: TableSpec;
  entries: Pending[];
  /** Flushes running now, at most `concurrency`. */
  readonly inflight: Set<Promise<void>>;
  /** Parallel flushes allowed (1 for error_logs, whose de-duplication reads what it writes). */
  readonly concurrency: number;
  timer: NodeJS.Timeout | undefined;
}

/** Rough in-memory size of a value, for the byte cap (exactness is not needed, boundedness is). */
function sizeOf(v: unknown): number {
  if (v === null || v === undefined) return 1;
  if (typeof v === "string") return 16 + v.length * 2;
  return 16;
}

const keyOf = (device: unknown, at: unknown) => `${String(device)}\u0000${at instanceof Date ? at.getTime() : Number(at)}`;

/** Destroys a node-postgres client's socket, so its pending query fails at once. */
function breakConnection(client: SqlClient): void {
  const stream = (client as unknown as { connection?: { stream?: { destroy(err?: Error): void } } }).connection?.stream;
  stream?.destroy(new Error("database write attempt timed out"));
}

/** See the module documentation. */
export class BatchWriter {
  readonly options: BatchWriterOptions;
  readonly #specs: Record<TableName, TableSpec>;
  readonly #queues = new Map<TableName, TableQueue>();
  readonly #source: ConnectionSource;
  readonly #hooks: readonly FlushHook[];
  readonly #log: Logger;
  readonly #stats: WriterStats = { ...NO_WRITER_STATS };
  #capacityWaiters: { rows: number; resolve(): void }[] = [];
  #closed = false;
  #abortRetries = false;
  #outage = false;
  /** Per table: when the next refused-offers log line may be written, and rows refused meanwhile. */
  readonly #refusedOffers = new Map<TableName, { quietUntil: number; suppressed: number }>();

  constructor(args: {
    specs: Record<TableName, TableSpec>;
    source: ConnectionSource;
    log: Logger;
    hooks?: readonly FlushHook[];
    options?: Partial<BatchWriterOptions>;
  }) {
    this.options = { ...DEFAULT_WRITER_OPTIONS, ...args.options };
    this.#specs = args.specs;
    this.#source = args.source;
    this.#hooks = args.hooks ?? [];
    this.#log = args.log;
  }

  /** A snapshot of the counters. */
  stats(): WriterStats {
    return { ...this.#stats };
  }

  /** True when `rows` more rows fit under the caps. */
  hasRoom(rows = 1): boolean {
    return (
      this.#stats.bufferedRows + rows <= this.options.maxBufferedRows && this.#stats.bufferedBytes < this.options.maxBufferedBytes
    );
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
      for (let i = 0; i < rows.length; i++) this.#enqueue(queue, rows[i]!, now, group, i);
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
    this.#enqueue(queue, row, Date.now(), undefined, 0, share);
    this.#schedule(queue, this.options.offerMaxDelayMs);
    return true;
  }

  /** Resolves when `rows` more rows fit (at once if they do); rejects if `signal` aborts. */
  whenWritable(rows: number, signal?: AbortSignal): Promise<void> {
    // A request bigger than the whole cap would never fit: let it through when the buffer is empty.
    const need = Math.min(rows, this.options.maxBufferedRows);
    if (this.hasRoom(need)) return Promise.resolve();
    if (signal?.aborted) return Promise.reject(signal.reason);
    return new Promise<void>((resolve, reject) => {
      const waiter = {
        rows: need,
        resolve: () => {
          signal?.removeEventListener("abort", onAbort);
          resolve();
        },
      };
      const onAbort = () => {
        this.#capacityWaiters = this.#capacityWaiters.filter((w) => w !== waiter);
        reject(signal!.reason);
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#capacityWaiters.push(waiter);
    });
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
      this.#abortRetries = true;
      this.#log.error("writer drain timed out; failing what is left", { bufferedRows: this.#stats.bufferedRows });
      for (const q of this.#queues.values()) {
        const left = q.entries.splice(0);
        this.#release(left);
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

  #enqueue(queue: TableQueue, row: Row, now: number, settle: WriteGroup | undefined, index: number, share?: OfferShare): void {
    const cols = queue.spec.columns;
    const values = new Array<unknown>(cols.length);
    let bytes = 64;
    for (let i = 0; i < cols.length; i++) {
      const col = cols[i]!;
      let v = row[col.name];
      if (v === undefined) v = col.fallback;
      if (col.json && v !== null && v !== undefined) v = v instanceof JsonText ? v.text : wellFormedJson(JSON.stringify(v));
      values[i] = v;
      bytes += sizeOf(v);
    }
    queue.entries.push({ row, values, bytes, enqueuedAt: now, settle, index, share });
    this.#stats.bufferedRows++;
    this.#stats.bufferedBytes += bytes;
    if (share !== undefined) {
      share.rows++;
      share.bytes += bytes;
    }
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
    const flushing: Promise<void> = this.#runBatch(queue.spec, batch).finally(() => {
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

  /** Stores `batch`, retrying and isolating refused rows; `retried`: an earlier attempt may have committed. */
  async #runBatch(spec: TableSpec, batch: Pending[], retried = false): Promise<void> {
    let attempt = 0;
    for (;;) {
      try {
        const results = await this.#flushOnce(spec, batch, retried || attempt > 0);
        if (this.#outage) {
          this.#outage = false;
          this.#log.info("database writes recovered", { table: spec.table, retries: attempt });
        }
        this.#release(batch);
        this.#stats.storedRows += batch.length;
        for (let i = 0; i < batch.length; i++) batch[i]!.settle?.resolve(batch[i]!.index, results[i]!);
        return;
      } catch (err) {
        if (isTransientStorageError(err) && !this.#abortRetries) {
          if (!this.#outage) {
            this.#outage = true;
            this.#log.warn("database write failed; retrying", { table: spec.table, ...errorFields(err) });
          }
          this.#stats.retries++;
          batch = this.#expire(batch);
          if (batch.length === 0) return;
          const delay = Math.min(this.options.maxBackoffMs, this.options.initialBackoffMs * 2 ** attempt++);
          await sleep(delay * (0.5 + Math.random() / 2));
          continue;
        }
        if (batch.length > 1 && !isTransientStorageError(err)) {
          // Isolate the row the database refuses by halving the batch, so the others still get
          // stored in a few flushes rather than one per row.
          const half = Math.ceil(batch.length / 2);
          await this.#runBatch(spec, batch.slice(0, half), retried || attempt > 0);
          await this.#runBatch(spec, batch.slice(half), retried || attempt > 0);
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
    for (const e of batch) (e.settle && now - e.enqueuedAt >= this.options.maxWaitMs ? expired : keep).push(e);
    if (expired.length > 0) {
      this.#release(expired);
      this.#stats.failedUnavailable += expired.length;
      const err = new ConnectError("storage is temporarily unavailable; retry later", Code.Unavailable);
      for (const e of expired) e.settle!.reject(err);
    }
    return keep;
  }

  /** One attempt at storing `batch`; `retried` when an earlier attempt failed (and may have committed). */
  async #flushOnce(spec: TableSpec, batch: readonly Pending[], retried: boolean): Promise<RowResult[]> {
    this.#stats.flushes++;
    // A database that stops answering without closing the connection (a network partition)
    // would hang the attempt, and every durable caller with it: bound each attempt, breaking the
    // connection when it runs out so the pending query fails and the normal retry path decides.
    let client: SqlClient | undefined;
    let timedOut = false;
    let giveUp!: (err: Error) => void;
    const acquireTimeout = new Promise<never>((_, reject) => (giveUp = reject));
    const acquiring = this.#source.acquire();
    const timer = setTimeout(() => {
      timedOut = true;
      if (client) return breakConnection(client);
      // Still waiting for a connection: stop waiting, and hand it back whenever it comes.
      void acquiring.then((late) => this.#source.release(late), () => undefined);
      giveUp(Object.assign(new Error("timed out acquiring a database connection"), { code: "ETIMEDOUT" }));
    }, this.options.attemptTimeoutMs);
    try {
      client = await Promise.race([acquiring, acquireTimeout]);
      const conn = client;
      const hooks = this.#hooks.filter((h) => h.tables.has(spec.table));
      let strategy = this.options.strategy;
      if (strategy === "copy" && spec.table !== "error_logs" && hooks.length === 0) {
        // One COPY statement is a transaction of its own: all its rows or none, committed (as
        // durably as a COMMIT) when PostgreSQL answers it. BEGIN and COMMIT would add two round
        // trips per flush, each answered only once the event loop is free again: the database
        // sat idle through them (bench/log-events.ts, ~10 % of the events per second).
        try {
          return (await this.#insert(conn, spec, batch, "copy", retried)).results;
        } catch (err) {
          if (!isUniqueViolation(err)) throw err;
          // Nothing of it is stored: redo the batch with the insert that skips stored rows.
          this.#stats.copyFallbacks++;
          strategy = "unnest";
        }
      }
      return await this.#inTransaction(conn, async () => {
        let written: { results: RowResult[]; accepted: Row[] };
        if (spec.table === "error_logs") written = await this.#applyErrors(conn, spec, batch);
        else {
          try {
            written = await this.#insert(conn, spec, batch, strategy, retried);
          } catch (err) {
            if (strategy !== "copy" || !isUniqueViolation(err)) throw err;
            // COPY met a row that is already stored (a resend, a retried event): redo the batch
            // with the insert that skips such rows and says which ones were new.
            this.#stats.copyFallbacks++;
            await conn.query("rollback");
            await conn.query("begin");
            written = await this.#insert(conn, spec, batch, "unnest", retried);
          }
        }
        const { results, accepted } = written;
        if (hooks.length > 0 && accepted.length > 0) {
          const ctx: FlushContext = runnerOn(conn);
          for (const hook of hooks) await hook.run(ctx, spec.table, accepted);
        }
        return results;
      });
    } catch (err) {
      const failure = timedOut ? Object.assign(new Error("database write attempt timed out"), { code: "ETIMEDOUT", cause: err }) : err;
      // A connection that failed mid-transaction must not go back to the pool as if healthy.
      if (client && isTransientStorageError(failure)) (client as unknown as { __knex__disposed?: unknown }).__knex__disposed = failure;
      throw failure;
    } finally {
      clearTimeout(timer);
      if (client) await this.#source.release(client);
    }
  }

  /** Runs `work` between BEGIN and COMMIT on `client`; rolls back when it fails. */
  async #inTransaction<T>(client: SqlClient, work: () => Promise<T>): Promise<T> {
    await client.query("begin");
    try {
      const done = await work();
      await client.query("commit");
      return done;
    } catch (err) {
      await client.query("rollback").catch(() => undefined);
      throw err;
    }
  }

  async #insert(
    client: SqlClient,
    spec: TableSpec,
    batch: readonly Pending[],
    strategy: InsertStrategy,
    retried: boolean,
  ): Promise<{ results: RowResult[]; accepted: Row[] }> {
    if (strategy === "copy") {
      // Every row is new, or the COPY fails with a unique violation and the caller redoes it.
      await copyRows(client, spec, batch.map((e) => e.values), this.options.binaryCopy);
      const accepted = batch.map((e) => e.row);
      const results = batch.map((e): RowResult => (spec.idempotency === "event_id" ? { outcome: "stored", id: e.row.id as string } : STORED));
      return { results, accepted };
    }
    const returned: Record<string, unknown>[] = [];
    // Rows without an event_id cannot conflict on it, only on their own id, made in this process
    // and new on a first attempt: they go without the ON CONFLICT / RETURNING tail, which costs
    // the database 10-20 % (bench/writer.ts). On a retry the earlier attempt may have committed
    // with its answer lost (the connection died after COMMIT): a row already there is then the
    // same row, stored, not a conflict to report, so retries pay for the tail.
    const plain = spec.idempotency === "event_id" ? batch.filter((e) => e.row.event_id == null) : [];
    const keyed = plain.length === 0 ? batch : batch.filter((e) => e.row.event_id != null);
    const run = async (tableSpec: TableSpec, entries: readonly Pending[], collect: boolean) => {
      if (entries.length === 0) return;
      for (const stmt of insertStatements(tableSpec, entries.map((e) => e.values), strategy)) {
        const res = await client.query(stmt.sql, stmt.params);
        if (collect) returned.push(...res.rows);
      }
    };
    await run({ ...spec, idempotency: retried ? "own_id" : "none" }, plain, retried);
    if (!retried) for (const e of plain) returned.push({ id: e.row.id });
    await run(spec, keyed, spec.idempotency !== "none");
    if (spec.idempotency === "none") {
      return { results: batch.map(() => ({ outcome: "stored" })), accepted: batch.map((e) => e.row) };
    }
    if (spec.idempotency === "primary_key") {
      const fresh = new Set(returned.map((r) => keyOf(r.device_id, r.occurred_at)));
      const accepted: Row[] = [];
      const results = batch.map((e): RowResult => {
        const isNew = fresh.delete(keyOf(e.row.device_id, e.row.occurred_at));
        if (isNew) accepted.push(e.row);
        return { outcome: isNew ? "stored" : "replayed" };
      });
      return { results, accepted };
    }
    // event_id tables: rows not returned were already stored, under their event_id or (rows
    // without one) as themselves by an earlier attempt, whose hooks ran in its own transaction.
    const fresh = new Set(returned.map((r) => r.id as string));
    const replayedEventIds = batch.filter((e) => !fresh.has(e.row.id as string) && e.row.event_id != null).map((e) => e.row.event_id as string);
    const idByEventId = new Map<string, string>();
    if (replayedEventIds.length > 0) {
      const { rows } = await client.query<{ id: string; event_id: string }>(
        `select "id", "event_id" from "${spec.table}" where "event_id" = any($1::uuid[])`,
        [replayedEventIds],
      );
      for (const r of rows) idByEventId.set(r.event_id, r.id);
    }
    const accepted: Row[] = [];
    const results = batch.map((e): RowResult => {
      if (fresh.has(e.row.id as string)) {
        accepted.push(e.row);
        return { outcome: "stored", id: e.row.id as string };
      }
      if (e.row.event_id == null) return { outcome: "stored", id: e.row.id as string };
      const id = idByEventId.get(e.row.event_id as string);
      if (id === undefined) throw new Error(`event_id conflict on ${spec.table} without a stored row`);
      return { outcome: "replayed", id };
    });
    return { results, accepted };
  }

  async #applyErrors(client: SqlClient, spec: TableSpec, batch: readonly Pending[]): Promise<{ results: RowResult[]; accepted: Row[] }> {
    const results: RowResult[] = [];
    const accepted: Row[] = [];
    for (const e of batch) {
      const { result, isNew } = await applyErrorOccurrence(client, spec, e.row, e.values, this.options.errorDedupIntervalMs);
      results.push(result);
      if (isNew) accepted.push(e.row);
    }
    return { results, accepted };
  }

  #release(entries: readonly Pending[]): void {
    for (const e of entries) {
      this.#stats.bufferedRows--;
      this.#stats.bufferedBytes -= e.bytes;
      if (e.share !== undefined) {
        e.share.rows--;
        e.share.bytes -= e.bytes;
      }
    }
    if (this.#capacityWaiters.length === 0) return;
    const waiting = this.#capacityWaiters;
    this.#capacityWaiters = [];
    for (const w of waiting) {
      if (this.hasRoom(w.rows)) w.resolve();
      else this.#capacityWaiters.push(w);
    }
  }

  /** How long a client should wait before retrying a write the full buffer refused. */
  #retryHintMs(): number {
    return Math.min(5_000, Math.max(100, this.options.maxDelayMs * 20));
  }
}
