/**
 * One `LogEvents` item → a validated row, or the reasons it is rejected. Items are judged alone so
 * that one bad item never stops the valid items beside it.
 */
import type { Event } from "../../sdk/src/gen/analytics/v1/analytics_service_pb.js";
import { EVENT_KIND_FIELDS } from "../auth/access-policy.js";
import type { Principal } from "../auth/principal.js";
import { validate, type Violation } from "../validation/field-rules.js";
import {
  DEVICE_STATE_CHANGE_RULES,
  ERROR_RULES,
  JOB_OUTCOME_RULES,
  USER_ACTIVITY_RULES,
} from "../validation/request-rules.js";
import { deviceStateChangeRow, errorRow, jobOutcomeRow, userActivityRow, type EventRow } from "./event-rows.js";

/** Most events one `LogEvents` call may carry (documented in the proto). */
export const MAX_EVENTS_PER_BATCH = 500;

/**
 * Validates item `index` of a batch and builds its row; violations name the item
 * (`events[3].error.error_message`). No closures or field-path strings unless an item is invalid:
 * this runs for every event of every batch.
 */
export function eventToRow(event: Event, principal: Principal | undefined, nowMs: number, index: number): { row: EventRow } | { violations: Violation[] } {
  const kind = event.kind;
  let violations: Violation[];
  switch (kind.case) {
    case "userActivity":
      violations = validate(kind.value, USER_ACTIVITY_RULES);
      if (violations.length === 0) return { row: userActivityRow(kind.value, principal, nowMs) };
      break;
    case "error":
      violations = validate(kind.value, ERROR_RULES);
      if (violations.length === 0) return { row: errorRow(kind.value, principal, nowMs) };
      break;
    case "deviceStateChange":
      violations = validate(kind.value, DEVICE_STATE_CHANGE_RULES);
      if (violations.length === 0) return { row: deviceStateChangeRow(kind.value, principal, nowMs) };
      break;
    case "jobOutcome":
      violations = validate(kind.value, JOB_OUTCOME_RULES);
      if (violations.length === 0) return { row: jobOutcomeRow(kind.value, principal, nowMs) };
      break;
    default:
      return { violations: [{ field: `events[${index}].kind`, description: "exactly one event kind must be set" }] };
  }
  const prefix = `events[${index}].${EVENT_KIND_FIELDS[kind.case]}.`;
  return { violations: violations.map((v) => ({ field: prefix + v.field, description: v.description })) };
}
