/**
 * Validation rules, declared once per request message. Handlers call `assertValid(req, RULES)`;
 * `LogEvents` runs the same rules per item and rejects only the invalid items. A field's size
 * check comes before any check of its content (`text` before `required`), so an oversized value
 * is refused for its size before it is scanned.
 */
import type {
  LogDeviceStateChangeRequest,
  LogErrorRequest,
  LogJobOutcomeRequest,
  LogUserActivityRequest,
  ResolveErrorRequest,
} from "../../sdk/src/gen/analytics/v1/analytics_service_pb.js";
import {
  ActivityType,
  ErrorCategory,
  JobStatus,
  Severity,
} from "../../sdk/src/gen/analytics/v1/common_pb.js";
import {
  definedEnum,
  field,
  fitsIntegerColumn,
  jsonPayload,
  optionalEventTime,
  optionalUuid,
  required,
  text,
  rules,
  type Rules,
} from "./field-rules.js";

/** Field length limits, documented in the .proto comments. */
export const LIMITS = {
  id: 128,
  shortText: 256,
  url: 2048,
  message: 4096,
  stackTrace: 32 * 1024,
} as const;

const now = () => Date.now();

/** LogUserActivity. */
export const USER_ACTIVITY_RULES: Rules<LogUserActivityRequest> = rules(
  field("activity_type", (m) => m.activityType, definedEnum(ActivityType, false)),
  field("page_url", (m) => m.pageUrl, ...text(LIMITS.url)),
  field("element_id", (m) => m.elementId, ...text(LIMITS.shortText)),
  field("search_query", (m) => m.searchQuery, ...text(LIMITS.shortText)),
  field("session_id", (m) => m.sessionId, ...text(LIMITS.id)),
  field("duration_ms", (m) => m.durationMs, fitsIntegerColumn),
  field("extra_data", (m) => m.extraData, jsonPayload),
  field("occurred_at", (m) => m.occurredAt, optionalEventTime(now)),
  field("event_id", (m) => m.eventId, optionalUuid),
  field("user_id", (m) => m.userId, ...text(LIMITS.id)),
);

/** LogError. */
export const ERROR_RULES: Rules<LogErrorRequest> = rules(
  field("category", (m) => m.category, definedEnum(ErrorCategory, true)),
  field("severity", (m) => m.severity, definedEnum(Severity, true)),
  field("error_code", (m) => m.errorCode, ...text(LIMITS.id)),
  field("error_message", (m) => m.errorMessage, ...text(LIMITS.message), required),
  field("stack_trace", (m) => m.stackTrace, ...text(LIMITS.stackTrace)),
  field("endpoint", (m) => m.endpoint, ...text(LIMITS.url)),
  field("device_id", (m) => m.deviceId, ...text(LIMITS.id)),
  field("context", (m) => m.context, jsonPayload),
  field("occurred_at", (m) => m.occurredAt, optionalEventTime(now)),
  field("event_id", (m) => m.eventId, optionalUuid),
);

/** LogDeviceStateChange. */
export const DEVICE_STATE_CHANGE_RULES: Rules<LogDeviceStateChangeRequest> = rules(
  field("device_id", (m) => m.deviceId, ...text(LIMITS.id), required),
  field("previous_state", (m) => m.previousState, ...text(LIMITS.shortText)),
  field("new_state", (m) => m.newState, ...text(LIMITS.shortText), required),
  field("changed_by", (m) => m.changedBy, ...text(LIMITS.shortText)),
  field("reason", (m) => m.reason, ...text(LIMITS.message)),
  field("extra_data", (m) => m.extraData, jsonPayload),
  field("occurred_at", (m) => m.occurredAt, optionalEventTime(now)),
  field("event_id", (m) => m.eventId, optionalUuid),
);

/** LogJobOutcome. */
export const JOB_OUTCOME_RULES: Rules<LogJobOutcomeRequest> = rules(
  field("job_id", (m) => m.jobId, ...text(LIMITS.id), required),
  field("job_type", (m) => m.jobType, ...text(LIMITS.id), required),
  field("status", (m) => m.status, definedEnum(JobStatus, false)),
  field("device_id", (m) => m.deviceId, ...text(LIMITS.id)),
  field("duration_ms", (m) => m.durationMs, fitsIntegerColumn),
  field("error_code", (m) => m.errorCode, ...text(LIMITS.id)),
  field("error_message", (m) => m.errorMessage, ...text(LIMITS.message)),
  field("retry_count", (m) => m.retryCount, fitsIntegerColumn),
  field("initiated_by", (m) => m.initiatedBy, ...text(LIMITS.shortText)),
  field("extra_data", (m) => m.extraData, jsonPayload),
  field("occurred_at", (m) => m.occurredAt, optionalEventTime(now)),
  field("event_id", (m) => m.eventId, optionalUuid),
);

/** ResolveError. */
export const RESOLVE_ERROR_RULES: Rules<ResolveErrorRequest> = rules(
  field("error_id", (m) => m.errorId, required, (v) => optionalUuid(v)),
);
