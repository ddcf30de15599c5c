import type { defineEntity } from "@mikro-orm/core";

type Builders = typeof defineEntity.properties;

/**
 * Columns every client-sent event table shares: an app-generated time-ordered UUID (so a batch
 * insert knows its ids without a round trip), the optional client `event_id` that makes retries
 * idempotent (unique where present), when it happened and when the server received it.
 */
export const eventColumns = (p: Builders) => ({
  id: p.uuid().primary(),
  eventId: p.uuid().nullable(),
  occurredAt: p.datetime().columnType("timestamptz"),
  receivedAt: p.datetime().columnType("timestamptz").defaultRaw("now()"),
});

/** The partial unique index on `event_id` that makes a retried event a no-op. */
export const eventIdUnique = (table: string) => ({
  name: `${table}_event_id_key`,
  expression: `create unique index "${table}_event_id_key" on "${table}" ("event_id") where "event_id" is not null`,
});
