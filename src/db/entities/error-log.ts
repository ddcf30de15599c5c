import { defineEntity, type InferEntity } from "@mikro-orm/core";
import { eventColumns, eventIdUnique } from "./event-columns.js";

/**
 * `error_logs`: categorised errors. A repeat of the same device, code and message within the
 * de-duplication interval increments `occurrence_count` and `last_seen_at` on the stored row;
 * `dedup_key` also carries the reporter scope (a `user`'s reports are grouped apart, see
 * `dedupReporter`), so no column of its own is needed for it.
 */
export const ErrorLogEntity = defineEntity({
  name: "ErrorLog",
  tableName: "error_logs",
  properties: (p) => ({
    ...eventColumns(p),
    /** `api`, `database`, `external_service`, `validation`, `frontend`, `device` or `unknown`. */
    category: p.text(),
    /** `critical`, `error`, `warning` or `info`. */
    severity: p.text(),
    errorCode: p.text().nullable(),
    errorMessage: p.text(),
    stackTrace: p.text().nullable(),
    endpoint: p.text().nullable(),
    deviceId: p.text().nullable(),
    userId: p.text().nullable(),
    context: p.json<Record<string, unknown>>().columnType("jsonb").nullable(),
    /** Identifies "the same error" for de-duplication (device, code and message). */
    dedupKey: p.text(),
    occurrenceCount: p.integer().default(1),
    lastSeenAt: p.datetime().columnType("timestamptz"),
    resolved: p.boolean().default(false),
    resolvedAt: p.datetime().columnType("timestamptz").nullable(),
    /** Set when a resolved error is seen again. */
    regressed: p.boolean().default(false),
  }),
  indexes: [
    { name: "error_logs_occurred_at_idx", properties: ["occurredAt"] },
    { name: "error_logs_category_occurred_at_idx", properties: ["category", "occurredAt"] },
    { name: "error_logs_dedup_key_last_seen_at_idx", properties: ["dedupKey", "lastSeenAt"] },
  ],
  uniques: [eventIdUnique("error_logs")],
});

/** A row of `error_logs`. */
export type ErrorLog = InferEntity<typeof ErrorLogEntity>;
