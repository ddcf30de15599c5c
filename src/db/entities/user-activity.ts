import { defineEntity, type InferEntity } from "@mikro-orm/core";
import { eventColumns, eventIdUnique } from "./event-columns.js";

/** `user_activities`: page views, clicks, searches and interactions reported by frontends. */
export const UserActivityEntity = defineEntity({
  name: "UserActivity",
  tableName: "user_activities",
  properties: (p) => ({
    ...eventColumns(p),
    userId: p.text().nullable(),
    /** `page_view`, `click`, `search` or `interaction`. */
    activityType: p.text(),
    pageUrl: p.text().nullable(),
    elementId: p.text().nullable(),
    searchQuery: p.text().nullable(),
    sessionId: p.text().nullable(),
    durationMs: p.integer().nullable(),
    extraData: p.json<Record<string, unknown>>().columnType("jsonb").nullable(),
  }),
  indexes: [
    { name: "user_activities_occurred_at_idx", properties: ["occurredAt"] },
    { name: "user_activities_user_id_occurred_at_idx", properties: ["userId", "occurredAt"] },
  ],
  uniques: [eventIdUnique("user_activities")],
});

/** A row of `user_activities`. */
export type UserActivity = InferEntity<typeof UserActivityEntity>;
