import { defineEntity, type InferEntity } from "@mikro-orm/core";
import { eventColumns, eventIdUnique } from "./event-columns.js";

/** `job_outcomes`: how each job ended, for success rates and durations per job type. */
export const JobOutcomeEntity = defineEntity({
  name: "JobOutcome",
  tableName: "job_outcomes",
  properties: (p) => ({
    ...eventColumns(p),
    jobId: p.text(),
    jobType: p.text(),
    /** `success`, `failed`, `timeout` or `cancelled`. */
    status: p.text(),
    deviceId: p.text().nullable(),
    durationMs: p.integer().nullable(),
    errorCode: p.text().nullable(),
    errorMessage: p.text().nullable(),
    retryCount: p.integer().default(0),
    initiatedBy: p.text().nullable(),
    extraData: p.json<Record<string, unknown>>().columnType("jsonb").nullable(),
  }),
  indexes: [
    { name: "job_outcomes_occurred_at_idx", properties: ["occurredAt"] },
    { name: "job_outcomes_job_type_occurred_at_idx", properties: ["jobType", "occurredAt"] },
  ],
  uniques: [eventIdUnique("job_outcomes")],
});

/** A row of `job_outcomes`. */
export type JobOutcome = InferEntity<typeof JobOutcomeEntity>;
