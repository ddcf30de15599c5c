import { defineEntity, type InferEntity } from "@mikro-orm/core";

/**
 * `error_event_receipts`: the answer given to each LogError `event_id`. A de-duplicated occurrence
 * has no row of its own in `error_logs`, so without this a retried report would be counted again.
 */
export const ErrorEventReceiptEntity = defineEntity({
  name: "ErrorEventReceipt",
  tableName: "error_event_receipts",
  properties: (p) => ({
    eventId: p.uuid().primary(),
    errorId: p.uuid(),
    /** `stored` or `deduplicated` (`pending` only inside the writing transaction). */
    outcome: p.text(),
    occurrenceCount: p.integer(),
    regressed: p.boolean(),
    createdAt: p.datetime().columnType("timestamptz").defaultRaw("now()"),
  }),
  indexes: [{ name: "error_event_receipts_created_at_idx", properties: ["createdAt"] }],
});

/** A row of `error_event_receipts`. */
export type ErrorEventReceipt = InferEntity<typeof ErrorEventReceiptEntity>;
