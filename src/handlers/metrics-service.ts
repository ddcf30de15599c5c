/**
 * MetricsService handlers: validate the request, resolve the window on the server clock, call the
 * query module (`src/queries/`) and translate its plain results into messages.
 */
import type { ServiceImpl } from "@connectrpc/connect";
import type { Timestamp } from "@bufbuild/protobuf/wkt";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { ErrorCategory, JobStatus, Severity } from "../../sdk/src/gen/analytics/v1/common_pb.js";
import type { MetricsService } from "../../sdk/src/gen/analytics/v1/metrics_service_pb.js";
import { enumFromText, enumText } from "../ingest/event-rows.js";
import type { MetricsQueries } from "../queries/metrics-queries.js";
import {
  decodeDeviceMetricsToken,
  decodeStateHistoryToken,
  encodeDeviceMetricsToken,
  encodeStateHistoryToken,
  pageTokenWindowProblem,
  type PageTokenWindow,
} from "../queries/page-token.js";
import { resolveWindow, WindowError, type TimeWindow, type WindowLimits } from "../util/time-window.js";
import { storageErrorToConnect } from "../storage/storage-errors.js";
import type { Logger } from "../util/logger.js";
import { checkNoNul, definedEnum, invalidArgument, type Violation } from "../validation/field-rules.js";

/** What the MetricsService handlers need. */
export interface MetricsServiceDeps {
  readonly metricsQueries: MetricsQueries;
  readonly log: Logger;
  /** The server clock (ms); injectable for tests. */
  readonly now?: () => number;
}

/** The MetricsService methods. */
export type MetricsServiceHandlers = Pick<
  ServiceImpl<typeof MetricsService>,
  "getApiPerformance" | "getJobOutcomes" | "getErrorTrends" | "getDeviceStateHistory" | "getDeviceMetrics"
>;

/** Request limits, as documented in metrics_service.proto. */
export const METRICS_QUERY_LIMITS = Object.freeze({
  /** GetApiPerformance, GetJobOutcomes, GetErrorTrends. */
  hours: Object.freeze({ min: 1, max: 168, default: 24 }) satisfies WindowLimits,
  /** GetDeviceStateHistory. */
  historyHours: Object.freeze({ min: 1, max: 720, default: 24 }) satisfies WindowLimits,
  pageSize: Object.freeze({ max: 1000, default: 100 }),
});

/** `GetDeviceMetrics` limits, as documented in metrics_service.proto. */
export const DEVICE_METRICS_QUERY_LIMITS = Object.freeze({
  hours: Object.freeze({ min: 1, max: 720, default: 24 }) satisfies WindowLimits,
  pageSize: Object.freeze({ max: 1000, default: 100 }),
});

/** Resolves `hours` into a window or records the violation. */
function windowOf(hours: number | undefined, nowMs: number, limits: WindowLimits, violations: Violation[]): TimeWindow | undefined {
  try {
    return resolveWindow(hours, nowMs, limits);
  } catch (err) {
    if (!(err instanceof WindowError)) throw err;
    // The window module words its messages for a log ("hours must be ..."); name the field once.
    violations.push({ field: err.field, description: err.message.replace(/^hours /, "") });
    return undefined;
  }
}

/**
 * The page token of a per-device query, or undefined for a first page; a token that is not one of
 * this query (another device's, or not a token) or whose window is outside what a first request
 * may ask is a `page_token` violation.
 */
function pageTokenOf<T extends PageTokenWindow & { readonly deviceId: string }>(
  raw: string,
  decode: (raw: string) => T | undefined,
  deviceId: string,
  nowMs: number,
  maxHours: number,
  violations: Violation[],
): T | undefined {
  if (raw === "") return undefined;
  const token = decode(raw);
  const problem = token === undefined || token.deviceId !== deviceId ? "is not a page token of this query" : pageTokenWindowProblem(token, nowMs, maxHours);
  if (problem !== undefined) violations.push({ field: "page_token", description: problem });
  return token;
}

/** The page size a request asks (its default for 0), recording a violation when over `limits.max`. */
function pageSizeOf(requested: number, limits: { readonly max: number; readonly default: number }, violations: Violation[]): number {
  const pageSize = requested === 0 ? limits.default : requested;
  if (pageSize > limits.max) violations.push({ field: "page_size", description: `must be 1 to ${limits.max} (got ${pageSize})` });
  return pageSize;
}

function windowMessage(w: TimeWindow) {
  return { start: timestampFromMs(w.startMs), end: timestampFromMs(w.endMs) };
}

/** Epoch microseconds from epoch milliseconds (a whole number of them). */
function microsFromMs(ms: number): bigint {
  return BigInt(ms) * 1000n;
}

/** A Timestamp from epoch microseconds, without losing the microseconds. */
function timestampFromMicros(us: bigint): Timestamp {
  const seconds = us / 1_000_000n - (us % 1_000_000n < 0n ? 1n : 0n);
  return { seconds, nanos: Number(us - seconds * 1_000_000n) * 1000 } as Timestamp;
}

/** Creates the handlers; see {@link MetricsServiceHandlers}. */
export function createMetricsService(deps: MetricsServiceDeps): MetricsServiceHandlers {
  const now = deps.now ?? Date.now;
  const q = deps.metricsQueries;
  const run = async <T>(operation: string, fn: () => Promise<T>): Promise<T> => {
    try {
      return await fn();
    } catch (err) {
      throw storageErrorToConnect(err, deps.log, operation);
    }
  };

  return {
    async getApiPerformance(req) {
      const violations: Violation[] = [];
      const window = windowOf(req.hours, now(), METRICS_QUERY_LIMITS.hours, violations);
      checkNoNul("endpoint", req.endpoint, violations);
      if (window === undefined || violations.length > 0) throw invalidArgument(violations);
      const result = await run("GetApiPerformance", () => q.apiPerformance({ window, endpoint: req.endpoint || undefined }));
      return {
        window: windowMessage(result.window),
        endpoints: result.endpoints.map((e) => ({
          endpoint: e.endpoint,
          requestCount: BigInt(e.requestCount),
          errorCount: BigInt(e.errorCount),
          avgResponseMs: e.avgMs,
          minResponseMs: e.minMs,
          maxResponseMs: e.maxMs,
          p50ResponseMs: e.p50Ms,
          p95ResponseMs: e.p95Ms,
          p99ResponseMs: e.p99Ms,
        })),
      };
    },

    async getJobOutcomes(req) {
      const violations: Violation[] = [];
      const window = windowOf(req.hours, now(), METRICS_QUERY_LIMITS.hours, violations);
      checkNoNul("job_type", req.jobType, violations);
      if (window === undefined || violations.length > 0) throw invalidArgument(violations);
      const result = await run("GetJobOutcomes", () => q.jobOutcomes({ window, jobType: req.jobType || undefined }));
      return {
        window: windowMessage(result.window),
        jobTypes: result.jobTypes.map((t) => ({
          jobType: t.jobType,
          total: BigInt(t.total),
          successRate: t.successRate,
          statuses: t.statuses.map((s) => ({
            status: enumFromText<JobStatus>(JobStatus, s.status),
            count: BigInt(s.count),
            ...(s.avgDurationMs === undefined ? {} : { avgDurationMs: s.avgDurationMs }),
          })),
        })),
      };
    },

    async getErrorTrends(req) {
      const violations: Violation[] = [];
      const window = windowOf(req.hours, now(), METRICS_QUERY_LIMITS.hours, violations);
      const badCategory = definedEnum(ErrorCategory, true)(req.category);
      if (badCategory !== undefined) violations.push({ field: "category", description: badCategory });
      if (window === undefined || violations.length > 0) throw invalidArgument(violations);
      const category = req.category === ErrorCategory.UNSPECIFIED ? undefined : enumText(ErrorCategory, req.category, "unknown");
      const result = await run("GetErrorTrends", () => q.errorTrends({ window, category }));
      return {
        window: windowMessage(result.window),
        total: BigInt(result.total),
        counts: result.counts.map((c) => ({
          category: enumFromText<ErrorCategory>(ErrorCategory, c.category),
          severity: enumFromText<Severity>(Severity, c.severity),
          count: BigInt(c.count),
        })),
        timeline: result.timeline.map((b) => ({ hourStart: timestampFromMs(b.hourStartMs), count: BigInt(b.count) })),
      };
    },

    async getDeviceStateHistory(req) {
      const violations: Violation[] = [];
      if (req.deviceId.trim() === "") violations.push({ field: "device_id", description: "is required" });
      else checkNoNul("device_id", req.deviceId, violations);
      const nowMs = now();
      const window = windowOf(req.hours, nowMs, METRICS_QUERY_LIMITS.historyHours, violations);
      const pageSize = pageSizeOf(req.pageSize, METRICS_QUERY_LIMITS.pageSize, violations);
      const token = pageTokenOf(req.pageToken, decodeStateHistoryToken, req.deviceId, nowMs, METRICS_QUERY_LIMITS.historyHours.max, violations);
      if (window === undefined || violations.length > 0) throw invalidArgument(violations);

      // Later pages keep the first page's window start (see page-token.ts).
      const startUs = token?.startUs ?? microsFromMs(window.startMs);
      const endUs = microsFromMs(window.endMs);
      const rows = await run("GetDeviceStateHistory", () =>
        q.deviceStateHistory({
          deviceId: req.deviceId,
          startUs,
          endUs,
          limit: pageSize + 1,
          cursor: token === undefined ? undefined : { beforeUs: token.beforeUs, beforeId: token.beforeId },
        }),
      );
      const page = rows.slice(0, pageSize);
      const last = page[page.length - 1];
      const nextPageToken =
        rows.length > pageSize && last !== undefined
          ? encodeStateHistoryToken({ deviceId: req.deviceId, startUs, beforeUs: last.occurredAtUs, beforeId: last.id })
          : "";
      return {
        changes: page.map((c) => ({
          id: c.id,
          deviceId: c.deviceId,
          previousState: c.previousState ?? "",
          newState: c.newState,
          changedBy: c.changedBy,
          reason: c.reason ?? "",
          ...(c.extraData === null ? {} : { extraData: c.extraData as never }),
          occurredAt: timestampFromMicros(c.occurredAtUs),
        })),
        nextPageToken,
      };
    },

    async getDeviceMetrics(req) {
      const violations: Violation[] = [];
      if (req.deviceId.trim() === "") violations.push({ field: "device_id", description: "is required" });
      else checkNoNul("device_id", req.deviceId, violations);
      const limits = DEVICE_METRICS_QUERY_LIMITS;
      const pageSize = pageSizeOf(req.pageSize, limits.pageSize, violations);
      const nowMs = now();
      const window = windowOf(req.hours, nowMs, limits.hours, violations);
      const token = pageTokenOf(req.pageToken, decodeDeviceMetricsToken, req.deviceId, nowMs, limits.hours.max, violations);
      if (violations.length > 0 || window === undefined) throw invalidArgument(violations);

      // Later pages keep the first page's window start, so rows ageing out of "the last N hours"
      // while a client pages do not shift what the remaining pages hold.
      const startUs = token?.startUs ?? microsFromMs(window.startMs);
      const endUs = microsFromMs(window.endMs);
      const rows = await run("GetDeviceMetrics", () =>
        q.deviceMetrics({ deviceId: req.deviceId, startUs, endUs, limit: pageSize + 1, beforeUs: token?.beforeUs }),
      );
      const page = rows.slice(0, pageSize);
      const last = page[page.length - 1];
      const nextPageToken =
        rows.length > pageSize && last !== undefined
          ? encodeDeviceMetricsToken({ deviceId: req.deviceId, startUs, beforeUs: last.occurredAtUs })
          : "";
      return {
        samples: page.map((row) => ({ occurredAt: timestampFromMicros(row.occurredAtUs), metrics: row.metrics, reason: row.reason })),
        nextPageToken,
      };
    },
  };
}
