/**
 * AnalyticsService handlers: thin translations between messages and the ingest modules.
 * RPCs whose issue has not landed are left out, so Connect answers them `Unimplemented`.
 */
import { create } from "@bufbuild/protobuf";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import {
  LogDeviceStateChangeResponseSchema,
  LogErrorResponseSchema,
  LogJobOutcomeResponseSchema,
  LogUserActivityResponseSchema,
  type AnalyticsService,
} from "../../sdk/src/gen/analytics/v1/analytics_service_pb.js";
import { WriteOutcome } from "../../sdk/src/gen/analytics/v1/common_pb.js";
import { kPrincipal } from "../auth/principal.js";
import { deviceStateChangeRow, errorRow, jobOutcomeRow, userActivityRow, type EventRow } from "../ingest/event-rows.js";
import type { EventSink, WriteResult } from "../storage/event-store.js";
import { storageErrorToConnect } from "../storage/storage-errors.js";
import type { Logger } from "../util/logger.js";
import { assertValid } from "../validation/field-rules.js";
import {
  DEVICE_STATE_CHANGE_RULES,
  ERROR_RULES,
  JOB_OUTCOME_RULES,
  USER_ACTIVITY_RULES,
} from "../validation/request-rules.js";

/** What the AnalyticsService handlers need. */
export interface AnalyticsServiceDeps {
  readonly events: EventSink;
  readonly log: Logger;
  /** The server clock (ms); injectable for tests. */
  readonly now?: () => number;
}

/** Maps a sink result to the proto outcome. */
export function writeOutcome(result: WriteResult): WriteOutcome {
  return result.outcome === "replayed" ? WriteOutcome.REPLAYED : WriteOutcome.STORED;
}

/** Creates the AnalyticsService implementation. */
export function createAnalyticsService(deps: AnalyticsServiceDeps): Partial<ServiceImpl<typeof AnalyticsService>> {
  const now = deps.now ?? Date.now;
  const store = async (row: EventRow, operation: string): Promise<WriteResult> => {
    try {
      return await deps.events.write(row);
    } catch (err) {
      throw storageErrorToConnect(err, deps.log, operation);
    }
  };
  const principal = (ctx: HandlerContext) => ctx.values.get(kPrincipal);

  return {
    async logUserActivity(req, ctx) {
      assertValid(req, USER_ACTIVITY_RULES);
      const result = await store(userActivityRow(req, principal(ctx), now()), "LogUserActivity");
      return create(LogUserActivityResponseSchema, { id: result.id, outcome: writeOutcome(result) });
    },
    async logError(req, ctx) {
      assertValid(req, ERROR_RULES);
      const result = await store(errorRow(req, principal(ctx), now()), "LogError");
      return create(LogErrorResponseSchema, { id: result.id, outcome: writeOutcome(result), occurrenceCount: 1 });
    },
    async logDeviceStateChange(req, ctx) {
      assertValid(req, DEVICE_STATE_CHANGE_RULES);
      const result = await store(deviceStateChangeRow(req, principal(ctx), now()), "LogDeviceStateChange");
      return create(LogDeviceStateChangeResponseSchema, { id: result.id, outcome: writeOutcome(result) });
    },
    async logJobOutcome(req, ctx) {
      assertValid(req, JOB_OUTCOME_RULES);
      const result = await store(jobOutcomeRow(req, principal(ctx), now()), "LogJobOutcome");
      return create(LogJobOutcomeResponseSchema, { id: result.id, outcome: writeOutcome(result) });
    },
  };
}
