import { defineEntity, type InferEntity } from "@mikro-orm/core";
import { eventColumns, eventIdUnique } from "./event-columns.js";

/** `device_state_history`: every state transition of every device. */
export const DeviceStateChangeEntity = defineEntity({
  name: "DeviceStateChange",
  tableName: "device_state_history",
  properties: (p) => ({
    ...eventColumns(p),
    deviceId: p.text(),
    previousState: p.text().nullable(),
    newState: p.text(),
    changedBy: p.text(),
    reason: p.text().nullable(),
    extraData: p.json<Record<string, unknown>>().columnType("jsonb").nullable(),
  }),
  indexes: [
    // Serves GetDeviceStateHistory: one device, newest first, keyset-paged on (occurred_at, id).
    { name: "device_state_history_device_id_occurred_at_id_idx", properties: ["deviceId", "occurredAt", "id"] },
    // For the retention job's `occurred_at < cutoff` batches (the index above leads with the device).
    {
      name: "device_state_history_occurred_at_brin",
      expression: `create index "device_state_history_occurred_at_brin" on "device_state_history" using brin ("occurred_at")`,
    },
  ],
  uniques: [eventIdUnique("device_state_history")],
});

/** A row of `device_state_history`. */
export type DeviceStateChange = InferEntity<typeof DeviceStateChangeEntity>;
