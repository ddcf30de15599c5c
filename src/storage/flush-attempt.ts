/**
 * One attempt at storing a batch: a pooled connection leased and handed back, the attempt bounded
 * in time, the insert as a lone COPY or inside BEGIN/COMMIT with the flush hooks, and a COPY that
 * meets a stored row redone with `unnest`. Apart from the retry loop (`flush-retry.ts`), which
 * only needs to know whether an attempt stored its rows or failed and how: what happens on the
 * connection stays here.
 */
import { runnerOn, type ConnectionSource, type SqlClient } from "../db/sql-runner.js";
import { isUniqueViolation } from "./copy-rows.js";
import { applyErrors, insertRows, type InsertRow, type Inserted } from "./row-inserter.js";
import { isTransientStorageError } from "./storage-errors.js";
import type { TableSpec } from "./table-specs.js";
import type { BatchWriterOptions, FlushContext, FlushHook, RowResult, WriterStats } from "./writer-types.js";

/** Destroys a node-postgres client's socket, so its pending query fails at once. */
function breakConnection(client: SqlClient): void {
  const stream = (client as unknown as { connection?: { stream?: { destroy(err?: Error): void } } }).connection?.stream;
  stream?.destroy(new Error("database write attempt timed out"));
}

/** Runs `work` between BEGIN and COMMIT on `client`; rolls back when it fails. */
async function inTransaction<T>(client: SqlClient, work: () => Promise<T>): Promise<T> {
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

/** The options a flush attempt reads. */
export type FlushAttemptOptions = Pick<BatchWriterOptions, "strategy" | "attemptTimeoutMs" | "binaryCopy" | "errorDedupIntervalMs">;

/** Stores batches, one attempt each, on connections leased from a pool. */
export class FlushAttempt {
  readonly #source: ConnectionSource;
  readonly #hooks: readonly FlushHook[];
  readonly #options: FlushAttemptOptions;
  readonly #stats: WriterStats;

  /**
   * @param args.source - where connections are leased.
   * @param args.hooks - run in the transaction of the flushes of their tables.
   * @param args.options - the writer's options (read at each attempt).
   * @param args.stats - the writer's counters; this adds to `flushes` and `copyFallbacks`.
   */
  constructor(args: { source: ConnectionSource; hooks: readonly FlushHook[]; options: FlushAttemptOptions; stats: WriterStats }) {
    this.#source = args.source;
    this.#hooks = args.hooks;
    this.#options = args.options;
    this.#stats = args.stats;
  }

  /**
   * One attempt at storing `batch`, answering one result per row; `retried` when an earlier
   * attempt failed (and may have committed). A failure is the database's error, or an
   * `ETIMEDOUT` one when the attempt ran out of time: transient, for the caller to retry.
   */
  async run(spec: TableSpec, batch: readonly InsertRow[], retried: boolean): Promise<RowResult[]> {
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
    }, this.#options.attemptTimeoutMs);
    try {
      client = await Promise.race([acquiring, acquireTimeout]);
      const conn = client;
      const hooks = this.#hooks.filter((h) => h.tables.has(spec.table));
      let strategy = this.#options.strategy;
      if (strategy === "copy" && spec.table !== "error_logs" && hooks.length === 0) {
        // One COPY statement is a transaction of its own: all its rows or none, committed (as
        // durably as a COMMIT) when PostgreSQL answers it. BEGIN and COMMIT would add two round
        // trips per flush, each answered only once the event loop is free again: the database
        // sat idle through them (docs/BENCHMARKS.md#measured-choices-in-the-code).
        try {
          return (await insertRows(conn, spec, batch, "copy", retried, this.#options.binaryCopy)).results;
        } catch (err) {
          if (!isUniqueViolation(err)) throw err;
          // Nothing of it is stored: redo the batch with the insert that skips stored rows.
          this.#stats.copyFallbacks++;
          strategy = "unnest";
        }
      }
      return await inTransaction(conn, async () => {
        let written: Inserted;
        if (spec.table === "error_logs") written = await applyErrors(conn, spec, batch, this.#options.errorDedupIntervalMs);
        else {
          try {
            written = await insertRows(conn, spec, batch, strategy, retried, this.#options.binaryCopy);
          } catch (err) {
            if (strategy !== "copy" || !isUniqueViolation(err)) throw err;
            // COPY met a row that is already stored (a resend, a retried event): redo the batch
            // with the insert that skips such rows and says which ones were new.
            this.#stats.copyFallbacks++;
            await conn.query("rollback");
            await conn.query("begin");
            written = await insertRows(conn, spec, batch, "unnest", retried, this.#options.binaryCopy);
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
}
