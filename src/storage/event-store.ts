/**
 * Writes client events. An event with an `event_id` is inserted with `ON CONFLICT DO NOTHING`
 * against the partial unique index, so a retry (even a concurrent one) stores nothing new and
 * answers with the first call's row id.
 */
import type { EntityManager } from "@mikro-orm/postgresql";
import type { EventRow } from "../ingest/event-rows.js";

/** What a write did. */
export interface WriteResult {
  /** The stored row's id (the first call's on a replay). */
  readonly id: string;
  /** `stored`: a new row; `replayed`: the event_id was already stored. */
  readonly outcome: "stored" | "replayed";
}

/** Anything that durably stores event rows: answers only after the row is committed. */
export interface EventSink {
  write(row: EventRow): Promise<WriteResult>;
}

const JSON_COLUMNS = new Set(["extra_data", "context", "metrics"]);

/** Converts a column value for node-postgres (JSON columns are sent as JSON text). */
export function sqlValue(column: string, value: unknown): unknown {
  if (value !== null && JSON_COLUMNS.has(column)) return JSON.stringify(value);
  return value;
}

/** Builds the single-row idempotent insert for `row`. */
export function insertSql(row: EventRow): { sql: string; params: unknown[] } {
  const cols = Object.keys(row.columns);
  const params = cols.map((c) => sqlValue(c, row.columns[c]));
  const conflict = row.columns.event_id === null ? "" : ` on conflict ("event_id") where "event_id" is not null do nothing`;
  const sql = `insert into "${row.table}" (${cols.map((c) => `"${c}"`).join(", ")}) values (${cols.map(() => "?").join(", ")})${conflict} returning "id"`;
  return { sql, params };
}

/**
 * An {@link EventSink} that inserts each row in its own statement (autocommit), on a fork of the
 * ORM's entity manager per call.
 */
export function createDirectEventSink(em: EntityManager): EventSink {
  return {
    async write(row) {
      const conn = em.fork().getConnection();
      const { sql, params } = insertSql(row);
      const inserted = await conn.execute<{ id: string }[]>(sql, params, "all");
      if (inserted[0]) return { id: inserted[0].id, outcome: "stored" };
      const existing = await conn.execute<{ id: string }[]>(
        `select "id" from "${row.table}" where "event_id" = ?`,
        [row.columns.event_id],
        "all",
      );
      if (!existing[0]) throw new Error(`event_id conflict on ${row.table} without a stored row`);
      return { id: existing[0].id, outcome: "replayed" };
    },
  };
}
