/**
 * What the batch writer needs to know about each table it writes: columns with their PostgreSQL
 * types (for `unnest` casts), which are JSON, and how a repeated row is recognised. Columns come
 * from the MikroORM metadata, so the entities stay the single description of the schema.
 */
import type { MikroORM } from "@mikro-orm/core";
import {
  ApiRequestLogEntity,
  DeviceMetricEntity,
  DeviceStateChangeEntity,
  ErrorLogEntity,
  JobOutcomeEntity,
  UserActivityEntity,
} from "../db/entities/index.js";

/** Tables the batch writer writes. */
export type TableName =
  | "api_request_logs"
  | "user_activities"
  | "error_logs"
  | "device_state_history"
  | "job_outcomes"
  | "device_metrics";

/** One column as the writer sees it. */
export interface ColumnSpec {
  readonly name: string;
  /** PostgreSQL type, e.g. `timestamptz`, `jsonb`, `int`. */
  readonly type: string;
  readonly json: boolean;
  /** Value used when a row leaves the column out (the column's default, else null). */
  readonly fallback: unknown;
}

/** How a table's rows are inserted and how a repeat is recognised. */
export interface TableSpec {
  readonly table: TableName;
  readonly columns: readonly ColumnSpec[];
  /**
   * `event_id`: client events, idempotent on the partial unique index (rows carry `id`);
   * `primary_key`: idempotent on the primary key (device metrics);
   * `none`: plain append (request logs);
   * `own_id`: rows that carry the id the service made for them (the rows of an `event_id` table
   * that have no event_id): one already stored is the same row, from an earlier attempt.
   */
  readonly idempotency: "event_id" | "primary_key" | "none" | "own_id";
  /** The unique key columns that identify a row for `primary_key` idempotency. */
  readonly key: readonly string[];
}

const ENTITY_OF: Record<TableName, { meta: { className: string } }> = {
  api_request_logs: ApiRequestLogEntity,
  user_activities: UserActivityEntity,
  error_logs: ErrorLogEntity,
  device_state_history: DeviceStateChangeEntity,
  job_outcomes: JobOutcomeEntity,
  device_metrics: DeviceMetricEntity,
};

/** Columns the database fills itself (identity ids, receive time). */
const DATABASE_FILLED = new Set(["received_at"]);

/** Builds the specs of every table from the ORM's metadata. */
export function tableSpecs(orm: MikroORM): Record<TableName, TableSpec> {
  const out = {} as Record<TableName, TableSpec>;
  for (const [table, entity] of Object.entries(ENTITY_OF) as [TableName, (typeof ENTITY_OF)[TableName]][]) {
    const meta = orm.getMetadata().find(entity.meta.className);
    if (!meta) throw new Error(`no metadata for ${table}`);
    const columns: ColumnSpec[] = [];
    for (const prop of meta.props) {
      if (prop.persist === false || !prop.fieldNames?.[0]) continue;
      const name = prop.fieldNames[0];
      if (DATABASE_FILLED.has(name) || prop.autoincrement) continue;
      const type = (prop.columnTypes?.[0] ?? "text").toLowerCase();
      // Multi-row inserts send every column, so a column's default must be applied here.
      columns.push({ name, type, json: type === "jsonb" || type === "json", fallback: prop.default ?? null });
    }
    const hasEventId = columns.some((c) => c.name === "event_id");
    out[table] = {
      table,
      columns,
      idempotency: hasEventId ? "event_id" : table === "device_metrics" ? "primary_key" : "none",
      key: table === "device_metrics" ? ["device_id", "occurred_at"] : hasEventId ? ["id"] : [],
    };
  }
  return out;
}
