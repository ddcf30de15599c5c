/**
 * Pure translation from validated requests to table rows. Decisions about who the user is, what
 * the defaults are and how enums are stored live here, so every write path (unary calls,
 * `LogEvents`, the batch writer) stores the same thing.
 */
import type { JsonObject } from "@bufbuild/protobuf";
import { timestampMs, type Timestamp } from "@bufbuild/protobuf/wkt";
import type {
  LogDeviceStateChangeRequest,
  LogErrorRequest,
  LogJobOutcomeRequest,
  LogUserActivityRequest,
} from "../../sdk/src/gen/analytics/v1/analytics_service_pb.js";
import { ActivityType, ErrorCategory, JobStatus, Severity } from "../../sdk/src/gen/analytics/v1/common_pb.js";
import type { Principal } from "../auth/principal.js";
import { jsonTextOf, type JsonText } from "../util/json-text.js";
import { uuidV7 } from "../util/uuid-v7.js";
import { dedupKey, dedupReporter } from "./error-dedup.js";

/** The four client event tables. */
export type EventTable = "user_activities" | "error_logs" | "device_state_history" | "job_outcomes";

/** A row ready to insert: column names as in the database. */
export interface EventRow {
  readonly table: EventTable;
  /** Always has `id`, `event_id` and `occurred_at`. */
  readonly columns: Readonly<Record<string, unknown>> & { id: string; event_id: string | null; occurred_at: Date };
}

/** Stores a proto enum value as its lower-case name without prefix (`ERROR_CATEGORY_API` → `api`). */
export function enumText(values: Record<number, string>, value: number, fallback: string): string {
  const name = values[value];
  return name === undefined || value === 0 ? fallback : name.toLowerCase();
}

/** Reads a stored enum name back into the proto value (0 when unknown). */
export function enumFromText<E extends number>(values: Record<string, number | string>, text: string): E {
  const v = values[text.toUpperCase()];
  return (typeof v === "number" ? v : 0) as E;
}

const orNull = (s: string): string | null => (s === "" ? null : s);
/** A JSON payload as stored: the text validation already made when it measured the payload. */
const jsonColumn = (v: JsonObject | undefined): JsonText | null => (v === undefined ? null : jsonTextOf(v));
const time = (ts: Timestamp | undefined, nowMs: number): Date => new Date(ts ? timestampMs(ts) : nowMs);

/**
 * The stored user of an activity: the request's `user_id` when no principal is known or the
 * principal may act for others (service, admin); otherwise the principal itself.
 */
export function activityUserId(req: LogUserActivityRequest, principal: Principal | undefined): string | null {
  if (!principal) return orNull(req.userId);
  if ((principal.role === "service" || principal.role === "admin") && req.userId !== "") return req.userId;
  return principal.subject;
}

/** `user_activities` row. */
export function userActivityRow(req: LogUserActivityRequest, principal: Principal | undefined, nowMs: number): EventRow {
  return {
    table: "user_activities",
    columns: {
      id: uuidV7(nowMs),
      event_id: orNull(req.eventId),
      occurred_at: time(req.occurredAt, nowMs),
      user_id: activityUserId(req, principal),
      activity_type: enumText(ActivityType, req.activityType, "interaction"),
      page_url: orNull(req.pageUrl),
      element_id: orNull(req.elementId),
      search_query: orNull(req.searchQuery),
      session_id: orNull(req.sessionId),
      duration_ms: req.durationMs ?? null,
      extra_data: jsonColumn(req.extraData),
    },
  };
}

/** `error_logs` row for a first occurrence; its de-duplication group follows `dedupReporter`. */
export function errorRow(req: LogErrorRequest, principal: Principal | undefined, nowMs: number): EventRow {
  const occurredAt = time(req.occurredAt, nowMs);
  return {
    table: "error_logs",
    columns: {
      id: uuidV7(nowMs),
      event_id: orNull(req.eventId),
      occurred_at: occurredAt,
      category: enumText(ErrorCategory, req.category, "unknown"),
      severity: enumText(Severity, req.severity, "error"),
      error_code: orNull(req.errorCode),
      error_message: req.errorMessage,
      stack_trace: orNull(req.stackTrace),
      endpoint: orNull(req.endpoint),
      device_id: orNull(req.deviceId),
      user_id: principal?.subject ?? null,
      context: jsonColumn(req.context),
      dedup_key: dedupKey({
        deviceId: req.deviceId,
        errorCode: req.errorCode,
        errorMessage: req.errorMessage,
        reporter: dedupReporter(principal),
      }),
      occurrence_count: 1,
      last_seen_at: occurredAt,
    },
  };
}

/** `device_state_history` row; `changed_by` defaults to the principal, else "system". */
export function deviceStateChangeRow(req: LogDeviceStateChangeRequest, principal: Principal | undefined, nowMs: number): EventRow {
  return {
    table: "device_state_history",
    columns: {
      id: uuidV7(nowMs),
      event_id: orNull(req.eventId),
      occurred_at: time(req.occurredAt, nowMs),
      device_id: req.deviceId,
      previous_state: orNull(req.previousState),
      new_state: req.newState,
      changed_by: req.changedBy !== "" ? req.changedBy : (principal?.subject ?? "system"),
      reason: orNull(req.reason),
      extra_data: jsonColumn(req.extraData),
    },
  };
}

/** `job_outcomes` row. */
export function jobOutcomeRow(req: LogJobOutcomeRequest, principal: Principal | undefined, nowMs: number): EventRow {
  return {
    table: "job_outcomes",
    columns: {
      id: uuidV7(nowMs),
      event_id: orNull(req.eventId),
      occurred_at: time(req.occurredAt, nowMs),
      job_id: req.jobId,
      job_type: req.jobType,
      status: enumText(JobStatus, req.status, "failed"),
      device_id: orNull(req.deviceId),
      duration_ms: req.durationMs ?? null,
      error_code: orNull(req.errorCode),
      error_message: orNull(req.errorMessage),
      retry_count: req.retryCount,
      initiated_by: req.initiatedBy !== "" ? req.initiatedBy : (principal?.subject ?? null),
      extra_data: jsonColumn(req.extraData),
    },
  };
}
