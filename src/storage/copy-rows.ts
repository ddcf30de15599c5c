/**
 * COPY of a batch of rows through a node-postgres client (`copy-in.ts`), inside the caller's
 * transaction or as one of its own. Only for a real PostgreSQL server: over the embedded
 * database's socket COPY hangs.
 */
import type pg from "pg";
import { binaryCopyWriters, copyBinary, UnsupportedCopyValue } from "../wire/copy-binary.js";
import { copyFromBuffer } from "./copy-in.js";
import { copyText } from "../wire/copy-text.js";
import { copyIn } from "./insert-sql.js";
import type { SqlClient } from "../db/sql-runner.js";
import type { TableSpec } from "./table-specs.js";

/** PostgreSQL's `unique_violation`: a COPY met a row whose key is already stored. */
export function isUniqueViolation(err: unknown): boolean {
  return (err as { code?: unknown } | null)?.code === "23505";
}

/** Each table's binary value writers (null: a column type without one; the table goes as text). */
const binaryWriters = new WeakMap<TableSpec, ReturnType<typeof binaryCopyWriters> | null>();

/**
 * Copies `rows` (values in `spec.columns` order) into the spec's table. Resolves when the server
 * has accepted the whole COPY; rejects with the server's error (e.g. `23505` for a key already
 * stored), after which the transaction is aborted.
 *
 * Binary COPY when every column has a binary form and every value fits it (less parsing for
 * PostgreSQL, which shares the machine); otherwise text, so an odd value is judged by PostgreSQL
 * exactly as before (`copy-binary.ts`). `binary` false: always text.
 */
export async function copyRows(client: SqlClient, spec: TableSpec, rows: readonly (readonly unknown[])[], binary = true): Promise<void> {
  if (rows.length === 0) return;
  let writers = binary ? binaryWriters.get(spec) : null;
  if (writers === undefined) binaryWriters.set(spec, (writers = binaryCopyWriters(spec.columns) ?? null));
  let data: Buffer | undefined;
  if (writers) {
    try {
      data = copyBinary(writers, rows);
    } catch (err) {
      if (!(err instanceof UnsupportedCopyValue)) throw err;
    }
  }
  const statement = data ? `${copyIn(spec)} with (format binary)` : copyIn(spec);
  // The whole batch at once, behind the statement: a flush holds at most `batchRows` rows (~1 MB
  // at the default 4000).
  await copyFromBuffer(client as unknown as pg.Client, statement, data ?? copyText(rows));
}
