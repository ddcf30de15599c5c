/**
 * AnalyticsService handlers: thin translations between messages and the ingest modules. Every
 * write goes through the batch writer and is answered only after it is committed.
 */
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import type { EntityManager } from "@mikro-orm/postgresql";
import {
  LogDeviceStateChangeResponseSchema,
  LogErrorResponseSchema,
  LogJobOutcomeResponseSchema,
  LogUserActivityResponseSchema,
  ResolveErrorResponseSchema,
  type AnalyticsService,
} from "../../sdk/src/gen/analytics/v1/analytics_service_pb.js";
import { WriteOutcome } from "../../sdk/src/gen/analytics/v1/common_pb.js";
import { kPrincipal } from "../auth/principal.js";
import { deviceStateChangeRow, errorRow, jobOutcomeRow, userActivityRow, type EventRow } from "../ingest/event-rows.js";
import type { BatchWriter, RowResult } from "../storage/batch-writer.js";
import { storageErrorToConnect } from "../storage/storage-errors.js";
import { setErrorResolved, type ErrorResolution } from "../storage/error-resolution.js";
import type { Logger } from "../util/logger.js";
import { assertValid } from "../validation/field-rules.js";
import {
  DEVICE_STATE_CHANGE_RULES,
  ERROR_RULES,
  JOB_OUTCOME_RULES,
  RESOLVE_ERROR_RULES,
  USER_ACTIVITY_RULES,
} from "../validation/request-rules.js";
import { writeOutcome } from "./log-events.js";

/** What the AnalyticsService handlers need. */
export interface AnalyticsServiceDeps {
  readonly writer: Pick<BatchWriter, "write" | "hasRoom" | "bufferFullError">;
  /** For admin changes to single rows (ResolveError: `storage/error-resolution.ts`); forked per call. */
  readonly em: EntityManager;
  readonly log: Logger;
  /** The server clock (ms); injectable for tests. */
  readonly now?: () => number;
}

/**
 * Creates the unary AnalyticsService methods; `LogEvents` is `log-events.ts`'s, the device-metrics
 * methods `device-metrics.ts`'s, and `src/server/routes.ts` registers them all.
 */
export function createAnalyticsService(deps: AnalyticsServiceDeps): Partial<ServiceImpl<typeof AnalyticsService>> {
  const now = deps.now ?? Date.now;
  const principal = (ctx: HandlerContext) => ctx.values.get(kPrincipal);
  const store = async (row: EventRow, operation: string): Promise<RowResult> => {
    try {
      const [result] = await deps.writer.write(row.table, [row.columns]);
      return result!;
    } catch (err) {
      throw storageErrorToConnect(err, deps.log, operation);
    }
  };

  return {
    async logUserActivity(req, ctx) {
      assertValid(req, USER_ACTIVITY_RULES);
      const result = await store(userActivityRow(req, principal(ctx), now()), "LogUserActivity");
      return create(LogUserActivityResponseSchema, { id: result.id, outcome: writeOutcome(result) });
    },
    async logError(req, ctx) {
      assertValid(req, ERROR_RULES);
      const result = await store(errorRow(req, principal(ctx), now()), "LogError");
      return create(LogErrorResponseSchema, {
        id: result.id,
        outcome: writeOutcome(result),
        occurrenceCount: result.occurrenceCount ?? 1,
        regressed: result.regressed ?? false,
      });
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

    async resolveError(req) {
      assertValid(req, RESOLVE_ERROR_RULES);
      let error: ErrorResolution | undefined;
      try {
        error = await setErrorResolved(deps.em, req.errorId, req.resolved, new Date(now()));
      } catch (err) {
        throw storageErrorToConnect(err, deps.log, "ResolveError");
      }
      if (!error) throw new ConnectError(`error ${req.errorId} not found`, Code.NotFound);
      return create(ResolveErrorResponseSchema, {
        errorId: error.id,
        resolved: error.resolved,
        resolvedAt: error.resolvedAt ? timestampFromDate(error.resolvedAt) : undefined,
      });
    },
  };
}
