/**
 * One `LogEvents` item → a validated row, or the reasons it is rejected. Items are judged alone so
 * that one bad item never stops the valid items beside it.
 */
import type { Event } from "../../sdk/src/gen/analytics/v1/analytics_service_pb.js";
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

/** Validates one item and builds its row; `prefix` names the item in violations (`events[3].`). */
export function eventToRow(
  event: Event,
  principal: Principal | undefined,
  nowMs: number,
  prefix: string,
): { row: EventRow } | { violations: Violation[] } {
  const kind = event.kind;
  const check = (violations: Violation[], build: () => EventRow) => (violations.length > 0 ? { violations } : { row: build() });
  switch (kind.case) {
    case "userActivity":
      return check(validate(kind.value, USER_ACTIVITY_RULES, `${prefix}user_activity.`), () => userActivityRow(kind.value, principal, nowMs));
    case "error":
      return check(validate(kind.value, ERROR_RULES, `${prefix}error.`), () => errorRow(kind.value, principal, nowMs));
    case "deviceStateChange":
      return check(validate(kind.value, DEVICE_STATE_CHANGE_RULES, `${prefix}device_state_change.`), () =>
        deviceStateChangeRow(kind.value, principal, nowMs),
      );
    case "jobOutcome":
      return check(validate(kind.value, JOB_OUTCOME_RULES, `${prefix}job_outcome.`), () => jobOutcomeRow(kind.value, principal, nowMs));
    default:
      return { violations: [{ field: `${prefix}kind`, description: "exactly one event kind must be set" }] };
  }
}
