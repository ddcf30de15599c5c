/**
 * The statements of one flush: a batch's rows inserted by COPY, `unnest` or multi-row INSERT,
 * with the ON CONFLICT / RETURNING tail only where a row may already be stored, and each row's
 * answer (stored or replayed, and its id) worked out from what the database returned; for
 * `error_logs`, the de-duplicating writes of `error-writes.ts`. Apart from the flush attempt so
 * that what the database is asked, and how its answer becomes per-row results, reads in one place;
 * the attempt decides the strategy and owns the connection and transaction.
 */
import { applyErrorOccurrence } from "./error-writes.js";
import { copyRows } from "./copy-rows.js";
import { insertStatements, type InsertStrategy } from "./insert-sql.js";
import type { SqlClient } from "../db/sql-runner.js";
import type { TableSpec } from "./table-specs.js";
import type { Row, RowResult } from "./writer-types.js";

/** A row as the inserter needs it: the row itself and its encoded column values. */
export type InsertRow = { readonly row: Row; readonly values: unknown[] };

/** What an insert did: one result per row, in order, and the rows that are new (for flush hooks). */
export interface Inserted {
  readonly results: RowResult[];
  readonly accepted: Row[];
}

/** The answer for a row that COPY stored: shared, rows are many. */
const STORED: RowResult = Object.freeze({ outcome: "stored" });

const keyOf = (device: unknown, at: unknown) => `${String(device)}\u0000${at instanceof Date ? at.getTime() : Number(at)}`;

/**
 * Inserts `batch` into `spec`'s table on `client` with `strategy`. With `copy` every row must be
 * new: a row already stored fails the whole COPY with a unique violation, for the caller to redo
 * with another strategy. `retried`: an earlier attempt may have committed these rows.
 */
export async function insertRows(
  client: SqlClient,
  spec: TableSpec,
  batch: readonly InsertRow[],
  strategy: InsertStrategy,
  retried: boolean,
  binaryCopy: boolean,
): Promise<Inserted> {
  if (strategy === "copy") {
    // Every row is new, or the COPY fails with a unique violation and the caller redoes it.
    await copyRows(client, spec, batch.map((e) => e.values), binaryCopy);
    const accepted = batch.map((e) => e.row);
    const results = batch.map((e): RowResult => (spec.idempotency === "event_id" ? { outcome: "stored", id: e.row.id as string } : STORED));
    return { results, accepted };
  }
  const returned: Record<string, unknown>[] = [];
  // Rows without an event_id cannot conflict on it, only on their own id, made in this process
  // and new on a first attempt: they go without the ON CONFLICT / RETURNING tail, which costs
  // the database measurably (docs/BENCHMARKS.md#measured-choices-in-the-code). On a retry the
  // earlier attempt may have committed with its answer lost (the connection died after COMMIT):
  // a row already there is then the same row, stored, not a conflict to report, so retries pay
  // for the tail.
  const plain = spec.idempotency === "event_id" ? batch.filter((e) => e.row.event_id == null) : [];
  const keyed = plain.length === 0 ? batch : batch.filter((e) => e.row.event_id != null);
  const run = async (tableSpec: TableSpec, entries: readonly InsertRow[], collect: boolean) => {
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

/**
 * Writes a batch of `error_logs` rows one occurrence at a time (`error-writes.ts`: counted on
 * a stored error seen within `dedupIntervalMs`, or stored as a new one); accepted: the new
 * occurrences, de-duplicated repeats included, replayed event_ids not.
 */
export async function applyErrors(client: SqlClient, spec: TableSpec, batch: readonly InsertRow[], dedupIntervalMs: number): Promise<Inserted> {
  const results: RowResult[] = [];
  const accepted: Row[] = [];
  for (const e of batch) {
    const { result, isNew } = await applyErrorOccurrence(client, spec, e.row, e.values, dedupIntervalMs);
    results.push(result);
    if (isNew) accepted.push(e.row);
  }
  return { results, accepted };
}
