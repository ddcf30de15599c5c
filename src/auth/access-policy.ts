/**
 * Who may call what: the role × RPC matrix in ONE table, plus the per-message rules (a user logs
 * only as itself, a device writes only its own device id). Pure: the auth interceptor applies it
 * to every call, `LogEvents` to every item ({@link authorizeEvent}), the metrics stream to every
 * message ({@link assertMayWriteDevice}), and the unit tests read it cell by cell.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import type {
  Event,
  IngestDeviceMetricsRequest,
  LogErrorRequest,
  LogUserActivityRequest,
  StreamDeviceMetricsRequest,
} from "../../sdk/src/gen/analytics/v1/analytics_service_pb.js";
import type { Principal, Role } from "./principal.js";

/** Why a principal may not do something; becomes `PermissionDenied` or a per-item violation. */
export interface Denial {
  /** The request field that made it a denial (`user_id`, `device_id`) or the event kind. */
  readonly field: string;
  readonly reason: string;
}

/** One row of the matrix. */
export interface AccessRule {
  /** `open`: no token needed. Otherwise the roles that may call at all. */
  readonly allow: "open" | readonly Role[];
  /**
   * A check of one request message (the unary request, or each message of a client stream),
   * run after the role check.
   */
  readonly check?: (principal: Principal, message: unknown) => Denial | undefined;
}

const ANYONE: readonly Role[] = ["admin", "service", "user", "device"];
const WRITERS: readonly Role[] = ["admin", "service"];
const METRIC_WRITERS: readonly Role[] = ["admin", "service", "device"];
const ADMIN: readonly Role[] = ["admin"];

/** A `user` or `device` logs activity only as itself; `service` and `admin` may name any user. */
function mayActForUser(principal: Principal, userId: string): Denial | undefined {
  if (userId === "" || userId === principal.subject || principal.role === "service" || principal.role === "admin") return undefined;
  return { field: "user_id", reason: `a ${principal.role} may only log its own activity (user_id must be empty or "${principal.subject}")` };
}

/** A `device` names only its own device id (an empty id is left to validation). */
function mayNameDevice(principal: Principal, deviceId: string): Denial | undefined {
  if (principal.role !== "device" || deviceId === "" || deviceId === principal.subject) return undefined;
  return { field: "device_id", reason: `a device may only write data for its own device_id "${principal.subject}"` };
}

const checked =
  <M>(check: (principal: Principal, message: M) => Denial | undefined) =>
  (principal: Principal, message: unknown) =>
    check(principal, message as M);

/**
 * THE matrix. Keys are `package.Service/Method`, or `package.Service` for every method of a
 * service. A procedure in neither form is admin-only, so a new RPC is never open by accident.
 */
export const ACCESS_MATRIX: Readonly<Record<string, AccessRule>> = {
  "analytics.v1.AnalyticsService/LogUserActivity": {
    allow: ANYONE,
    check: checked<LogUserActivityRequest>((p, m) => mayActForUser(p, m.userId)),
  },
  "analytics.v1.AnalyticsService/LogError": {
    allow: ANYONE,
    check: checked<LogErrorRequest>((p, m) => mayNameDevice(p, m.deviceId)),
  },
  "analytics.v1.AnalyticsService/LogDeviceStateChange": { allow: WRITERS },
  "analytics.v1.AnalyticsService/LogJobOutcome": { allow: WRITERS },
  // Each item is checked by the handler with authorizeEvent, against the row of its kind above.
  "analytics.v1.AnalyticsService/LogEvents": { allow: ANYONE },
  "analytics.v1.AnalyticsService/StreamDeviceMetrics": {
    allow: METRIC_WRITERS,
    check: checked<StreamDeviceMetricsRequest>((p, m) => mayNameDevice(p, m.deviceId)),
  },
  "analytics.v1.AnalyticsService/IngestDeviceMetrics": {
    allow: METRIC_WRITERS,
    check: checked<IngestDeviceMetricsRequest>((p, m) => mayNameDevice(p, m.deviceId)),
  },
  "analytics.v1.AnalyticsService/ResolveError": { allow: ADMIN },
  "analytics.v1.MetricsService": { allow: ADMIN },
  "grpc.health.v1.Health": { allow: "open" },
  "grpc.reflection.v1.ServerReflection": { allow: "open" },
  "grpc.reflection.v1alpha.ServerReflection": { allow: "open" },
};

const DEFAULT_RULE: AccessRule = { allow: ADMIN };

/** The rule of one procedure (`typeName` of the service, method `name` as in the proto). */
export function accessRule(serviceTypeName: string, methodName: string): AccessRule {
  return ACCESS_MATRIX[`${serviceTypeName}/${methodName}`] ?? ACCESS_MATRIX[serviceTypeName] ?? DEFAULT_RULE;
}

/** The role check of a rule: a denial when `principal` may not call the procedure at all. */
export function checkRole(rule: AccessRule, principal: Principal, procedure: string): Denial | undefined {
  if (rule.allow === "open" || rule.allow.includes(principal.role)) return undefined;
  return { field: procedure, reason: `role "${principal.role}" may not call ${procedure} (allowed: ${rule.allow.join(", ")})` };
}

/** The kinds of event a `LogEvents` item can hold (the `Event.kind` oneof cases). */
export type EventKind = NonNullable<Event["kind"]["case"]>;

/** The proto field name of each `LogEvents` item kind (denials and violations name items by it). */
export const EVENT_KIND_FIELDS: Readonly<Record<EventKind, string>> = {
  userActivity: "user_activity",
  error: "error",
  deviceStateChange: "device_state_change",
  jobOutcome: "job_outcome",
};

/** The unary RPC whose matrix row governs each `LogEvents` item kind. */
const EVENT_PROCEDURES: Readonly<Record<EventKind, string>> = {
  userActivity: "LogUserActivity",
  error: "LogError",
  deviceStateChange: "LogDeviceStateChange",
  jobOutcome: "LogJobOutcome",
};

/**
 * Authorises one `LogEvents` item with exactly the rules of its unary RPC. A denied item is
 * rejected on its own; the items beside it are unaffected.
 *
 * ```ts
 * const denial = authorizeEvent(ctx.values.get(kPrincipal), item.kind.case, item.kind.value);
 * if (denial) results.push({ outcome: REJECTED, violations: [{ field: `events[${i}].${denial.field}`, description: denial.reason }] });
 * ```
 *
 * @param principal - the caller; `undefined` only in in-process tests without auth, where every
 *   item is allowed (the interceptor never lets an unauthenticated call reach `LogEvents`).
 * @param kind - `event.kind.case`; `undefined` (an empty item) is validation's business.
 * @returns a denial (`field` relative to the item, e.g. `user_id`, or the kind for a role denial)
 *   or `undefined` when allowed.
 */
export function authorizeEvent(principal: Principal | undefined, kind: EventKind | undefined, event: unknown): Denial | undefined {
  if (!principal || kind === undefined) return undefined;
  const field = EVENT_KIND_FIELDS[kind];
  const rule = accessRule("analytics.v1.AnalyticsService", EVENT_PROCEDURES[kind]);
  if (rule.allow !== "open" && !rule.allow.includes(principal.role)) {
    return { field, reason: `role "${principal.role}" may not log ${field} events (allowed: ${rule.allow.join(", ")})` };
  }
  return rule.check?.(principal, event);
}

/**
 * Throws unless `principal` may write metrics or state for `deviceId`: a `device` only for its
 * own id (its token subject), `service` and `admin` for any, `user` never. For the metrics
 * stream handler, per message (the auth interceptor already applies it to every message of
 * `StreamDeviceMetrics` and to `IngestDeviceMetrics`; calling it again is cheap and harmless).
 *
 * @throws ConnectError `Unauthenticated` without a principal, `PermissionDenied` otherwise.
 */
export function assertMayWriteDevice(principal: Principal | undefined, deviceId: string): void {
  if (!principal) throw new ConnectError("authentication required", Code.Unauthenticated);
  if (!METRIC_WRITERS.includes(principal.role)) {
    throw new ConnectError(`role "${principal.role}" may not write device metrics`, Code.PermissionDenied);
  }
  const denial = mayNameDevice(principal, deviceId);
  if (denial) throw new ConnectError(`${denial.field}: ${denial.reason}`, Code.PermissionDenied);
}
