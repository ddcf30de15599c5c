import { defineEntity, type InferEntity } from "@mikro-orm/core";

/**
 * `device_metrics`: the samples the SmartDataFilter kept. The primary key (device_id, occurred_at)
 * is the natural identity of a sample: a device that resends unacknowledged batches after a
 * reconnect cannot create a second row, whichever instance it reconnects to, and the same index
 * serves GetDeviceMetrics (one device, newest first).
 */
export const DeviceMetricEntity = defineEntity({
  name: "DeviceMetric",
  tableName: "device_metrics",
  properties: (p) => ({
    deviceId: p.text().primary(),
    occurredAt: p.datetime().columnType("timestamptz").primary(),
    metrics: p.json<Record<string, number>>().columnType("jsonb"),
    /** Why the filter kept it: `first_contact`, `heartbeat` or `significant_change`. */
    reason: p.text(),
    receivedAt: p.datetime().columnType("timestamptz").defaultRaw("now()"),
  }),
  primaryKeys: ["deviceId", "occurredAt"],
  indexes: [
    // For the retention job's `occurred_at < cutoff` batches only: a BRIN index costs next to
    // nothing on this, the busiest insert path, and rows arrive roughly in time order.
    {
      name: "device_metrics_occurred_at_brin",
      expression: `create index "device_metrics_occurred_at_brin" on "device_metrics" using brin ("occurred_at")`,
    },
  ],
});

/** A row of `device_metrics`. */
export type DeviceMetric = InferEntity<typeof DeviceMetricEntity>;
