/**
 * The batch writer's shared vocabulary: the rows it takes, what it answers per row, the hooks
 * that run in a flush's transaction, its options with their defaults, and its counters. Apart
 * from `batch-writer.ts` so that the writer's parts (buffer, flush attempt and retry, row
 * inserter) use them without importing the writer itself; importers keep reaching them through
 * `batch-writer.ts`, which re-exports them.
 */
import type { SqlRunner } from "../db/sql-runner.js";
import type { InsertStrategy } from "./insert-sql.js";
import type { TableName } from "./table-specs.js";

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
