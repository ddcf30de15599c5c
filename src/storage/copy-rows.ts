/**
 * COPY of a batch of rows through a node-postgres client (pg-copy-streams), inside the caller's
 * transaction. Only for a real PostgreSQL server: over the embedded database's socket COPY hangs.
 */
import type pg from "pg";
import { finished } from "node:stream/promises";
import { from as copyFrom } from "pg-copy-streams";
import { copyText } from "./copy-text.js";
import { copyIn } from "./insert-sql.js";
import type { SqlClient } from "./error-writes.js";
import type { TableSpec } from "./table-specs.js";

/** PostgreSQL's `unique_violation`: a COPY met a row whose key is already stored. */
export function isUniqueViolation(err: unknown): boolean {
  return (err as { code?: unknown } | null)?.code === "23505";
}

/**
 * Copies `rows` (values in `spec.columns` order) into the spec's table. Resolves when the server
 * has accepted the whole COPY; rejects with the server's error (e.g. `23505` for a key already
 * stored), after which the transaction is aborted.
 */
export async function copyRows(client: SqlClient, spec: TableSpec, rows: readonly (readonly unknown[])[]): Promise<void> {
  if (rows.length === 0) return;
  const stream = (client as unknown as pg.Client).query(copyFrom(copyIn(spec)));
  // One write of the whole batch: a flush holds at most `batchRows` rows (~1 MB at the default 4000).
  stream.end(copyText(rows));
  await finished(stream);
}
