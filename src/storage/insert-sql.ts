/**
 * SQL for batch inserts, pure. Three strategies, measured by `npm run bench -- writer`:
 * - `multi-row`: `INSERT ... VALUES ($1, $2), ($3, $4) ...`, chunked under PostgreSQL's 65 535
 *   bind-parameter limit;
 * - `unnest`: `INSERT ... SELECT * FROM unnest($1::type[], $2::type[])`, one array parameter per
 *   column, so the statement text and parameter count stay constant whatever the batch size;
 * - `copy`: `COPY ... FROM STDIN` in text format, PostgreSQL's bulk path and the fastest on a real
 *   server. It hangs the embedded database's socket (pglite-socket), so it is never used there,
 *   and it cannot express ON CONFLICT: the writer uses it optimistically and redoes a batch that
 *   hits a unique key (a resend, a retried event) with `unnest` and the idempotency clause.
 */
import type { TableSpec } from "./table-specs.js";

/** Insert strategies the writer can use. */
export type InsertStrategy = "multi-row" | "unnest" | "copy";

/** A statement and its parameters. */
export interface Statement {
  readonly sql: string;
  readonly params: unknown[];
}

/** PostgreSQL's limit on bind parameters in one statement. */
export const MAX_BIND_PARAMS = 65_535;

/**
 * Characters of parameter text one statement carries at most (a row larger than this goes alone).
 * The embedded database (PGlite) runs PostgreSQL on the server's own thread, one protocol message
 * at a time: a flush of hostile rows in one statement (4 MiB of `Struct`s with 1,000 keys or long
 * backslash runs) blocked every other call while its jsonb was parsed, for hundreds of ms per
 * flush (docs/BENCHMARKS.md#measured-choices-in-the-code). Chunked, the same work is done in short statements with the event loop free between them, in the
 * same transaction. A real server pays the same work in another process; its statements are
 * chunked too (a few more round trips per hostile flush, none for ordinary rows).
 */
export const MAX_STATEMENT_CHARS = 256 * 1024;

/** A row's parameter text, roughly: strings by length, anything else as a few characters. */
function rowChars(row: readonly unknown[]): number {
  let n = 0;
  for (let c = 0; c < row.length; c++) {
    const v = row[c];
    n += typeof v === "string" ? v.length : 8;
  }
  return n;
}

/** `rows` in runs of at most `maxChars` parameter characters each (in order; a larger row alone). */
export function chunkByChars<R extends readonly unknown[]>(rows: readonly R[], maxChars = MAX_STATEMENT_CHARS): R[][] {
  const out: R[][] = [];
  let chunk: R[] = [];
  let chars = 0;
  for (const row of rows) {
    const n = rowChars(row);
    if (chunk.length > 0 && chars + n > maxChars) {
      out.push(chunk);
      chunk = [];
      chars = 0;
    }
    chunk.push(row);
    chars += n;
  }
  if (chunk.length > 0) out.push(chunk);
  return out;
}

const q = (name: string) => `"${name.replace(/"/g, '""')}"`;

/** The ON CONFLICT / RETURNING tail that makes a table's inserts idempotent and reports what was new. */
export function conflictClause(spec: TableSpec): string {
  switch (spec.idempotency) {
    case "event_id":
      return ` on conflict ("event_id") where "event_id" is not null do nothing returning "id"`;
    case "primary_key":
      // Times come back as epoch ms: the ORM's pool parses timestamptz to strings, not Dates.
      return ` on conflict (${spec.key.map(q).join(", ")}) do nothing returning ${spec.key
        .map((k) => (k === "occurred_at" ? `(extract(epoch from "occurred_at") * 1000)::float8 as "occurred_at"` : q(k)))
        .join(", ")}`;
    case "own_id":
      return ` on conflict ("id") do nothing returning "id"`;
    case "none":
      return "";
  }
}

/**
 * Multi-row INSERT statements for `rows` (each row's values in `spec.columns` order), chunked so
 * no statement exceeds {@link MAX_BIND_PARAMS} or `maxRowsPerStatement`.
 */
export function multiRowInserts(spec: TableSpec, rows: readonly (readonly unknown[])[], maxRowsPerStatement = 1000): Statement[] {
  const width = spec.columns.length;
  const perStatement = Math.max(1, Math.min(maxRowsPerStatement, Math.floor(MAX_BIND_PARAMS / width)));
  const head = `insert into ${q(spec.table)} (${spec.columns.map((c) => q(c.name)).join(", ")}) values `;
  const tail = conflictClause(spec);
  const out: Statement[] = [];
  for (let start = 0; start < rows.length; start += perStatement) {
    const chunk = rows.slice(start, start + perStatement);
    const params: unknown[] = new Array(chunk.length * width);
    const tuples: string[] = new Array(chunk.length);
    let p = 0;
    for (let r = 0; r < chunk.length; r++) {
      const row = chunk[r]!;
      const marks: string[] = new Array(width);
      for (let c = 0; c < width; c++) {
        params[p] = row[c];
        marks[c] = `$${++p}`;
      }
      tuples[r] = `(${marks.join(", ")})`;
    }
    out.push({ sql: head + tuples.join(", ") + tail, params });
  }
  return out;
}

/** One `INSERT ... SELECT FROM unnest(...)` statement for all `rows`. */
export function unnestInsert(spec: TableSpec, rows: readonly (readonly unknown[])[]): Statement {
  const columns = spec.columns;
  const params = columns.map((_, c) => rows.map((row) => row[c]));
  const arrays = columns.map((col, c) => `$${c + 1}::${col.type}[]`).join(", ");
  const names = columns.map((c) => q(c.name)).join(", ");
  return {
    sql: `insert into ${q(spec.table)} (${names}) select * from unnest(${arrays})${conflictClause(spec)}`,
    params,
  };
}

/**
 * The statements for `rows` with an INSERT strategy (COPY is not a statement with parameters: see
 * {@link copyIn}), each carrying at most {@link MAX_STATEMENT_CHARS} of parameter text.
 */
export function insertStatements(spec: TableSpec, rows: readonly (readonly unknown[])[], strategy: Exclude<InsertStrategy, "copy">): Statement[] {
  const chunks = chunkByChars(rows);
  return strategy === "unnest" ? chunks.map((chunk) => unnestInsert(spec, chunk)) : chunks.flatMap((chunk) => multiRowInserts(spec, chunk));
}

/** `COPY table (columns) FROM STDIN` for a table's columns, text format (rows: `copy-text.ts`). */
export function copyIn(spec: TableSpec): string {
  return `copy ${q(spec.table)} (${spec.columns.map((c) => q(c.name)).join(", ")}) from stdin`;
}
