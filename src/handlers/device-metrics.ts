/**
 * Device metrics handlers: `StreamDeviceMetrics` and `IngestDeviceMetrics` (AnalyticsService) and
 * `GetDeviceMetrics` (MetricsService). Thin: the decisions and the stream's pipelining live in
 * `src/metrics/device-metrics-ingest.ts`; this file translates messages and reads stored samples.
 */
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import type { EntityManager } from "@mikro-orm/postgresql";
import type { AnalyticsService, StreamDeviceMetricsRequest } from "../../sdk/src/gen/analytics/v1/analytics_service_pb.js";
import type { MetricsService } from "../../sdk/src/gen/analytics/v1/metrics_service_pb.js";
import { assertMayWriteDevice } from "../auth/access-policy.js";
import { credentialExpiry, type ExpiryTimers } from "../auth/credential-expiry.js";
import { kPrincipal } from "../auth/principal.js";
import type { DeviceMetricsIngest, StreamBatch } from "../metrics/device-metrics-ingest.js";
import { sampleBatchOf } from "../metrics/sample-batch.js";
import { pageTokenWindowProblem } from "../queries/page-token.js";
import { resolveWindow, WindowError } from "../util/time-window.js";
import { storageErrorToConnect } from "../storage/storage-errors.js";
import type { Logger } from "../util/logger.js";
import { checkNoNul, invalidArgument, type Violation } from "../validation/field-rules.js";

/** What the device metrics handlers need. */
export interface DeviceMetricsHandlerDeps {
  /** The process-wide ingest (one SmartDataFilter). */
  readonly ingest: DeviceMetricsIngest;
  /** For GetDeviceMetrics; forked per call. */
  readonly em: EntityManager;
  readonly log: Logger;
  /** The server's shutdown signal: streams acknowledge what they took and end `Unavailable`. */
  readonly shutdownSignal?: AbortSignal;
  /** The server clock (ms); injectable for tests. */
  readonly now?: () => number;
  /** The timers that end a stream when its token expires; injectable for tests. */
  readonly timers?: ExpiryTimers;
}

/** The three methods, to spread into their services' implementations. */
export type DeviceMetricsHandlers = Pick<ServiceImpl<typeof AnalyticsService>, "streamDeviceMetrics" | "ingestDeviceMetrics"> &
  Pick<ServiceImpl<typeof MetricsService>, "getDeviceMetrics">;

/** `GetDeviceMetrics` limits, as documented in metrics_service.proto. */
export const DEVICE_METRICS_QUERY_LIMITS = Object.freeze({
  hours: Object.freeze({ min: 1, max: 720, default: 24 }),
  pageSize: Object.freeze({ max: 1000, default: 100 }),
});

/**
 * The authorisation hook of a call: a principal may write only the devices the access policy
 * allows. Without a principal (no auth configured, in-process tests) every device is allowed;
 * when auth is on, the interceptor never lets an unauthenticated call reach the handler.
 */
function deviceAuthorizer(ctx: HandlerContext): ((deviceId: string) => void) | undefined {
  const principal = ctx.values.get(kPrincipal);
  return principal === undefined ? undefined : (deviceId) => assertMayWriteDevice(principal, deviceId);
}

/**
 * The stream's messages with their samples read in whatever form each came in (map, compact or
 * columnar). A malformed form is not thrown here: the ingest rejects the batch naming its sequence.
 */
async function* batchesOf(requests: AsyncIterable<StreamDeviceMetricsRequest>): AsyncIterable<StreamBatch> {
  for await (const req of requests) {
    yield { sequence: req.sequence, deviceId: req.deviceId, samples: sampleBatchOf(req) };
  }
}

/** Creates the handlers; see {@link DeviceMetricsHandlers}. */
export function createDeviceMetricsHandlers(deps: DeviceMetricsHandlerDeps): DeviceMetricsHandlers {
  const now = deps.now ?? Date.now;
  const { ingest } = deps;

  return {
    async *streamDeviceMetrics(requests, ctx) {
      // The token was checked once, when the call began; the stream must not outlive it.
      const expiry = credentialExpiry(ctx.values.get(kPrincipal)?.expiresAtMs, { now, ...(deps.timers ? { timers: deps.timers } : {}) });
      try {
        const acks = ingest.stream(batchesOf(requests), {
          signal: ctx.signal,
          shutdownSignal: deps.shutdownSignal,
          expirySignal: expiry.signal,
          authorize: deviceAuthorizer(ctx),
        });
        for await (const ack of acks) {
          yield { sequence: ack.sequence, counts: ack.counts, rejections: [...ack.rejections] };
        }
      } finally {
        expiry.dispose();
      }
    },

    async ingestDeviceMetrics(req, ctx) {
      deviceAuthorizer(ctx)?.(req.deviceId);
      // No waiting for room: a unary caller gets ResourceExhausted with a retry hint at once.
      const result = await ingest.submit(req.deviceId, sampleBatchOf(req), { signal: ctx.signal });
      return { counts: result.counts, rejections: [...result.rejections] };
    },

    async getDeviceMetrics(req) {
      const violations: Violation[] = [];
      if (req.deviceId.trim() === "") violations.push({ field: "device_id", description: "is required" });
      else checkNoNul("device_id", req.deviceId, violations);
      const limits = DEVICE_METRICS_QUERY_LIMITS;
      const pageSize = req.pageSize === 0 ? limits.pageSize.default : req.pageSize;
      if (pageSize > limits.pageSize.max) {
        violations.push({ field: "page_size", description: `must be 1 to ${limits.pageSize.max} (got ${pageSize})` });
      }
      let window: { startUs: bigint; endUs: bigint } | undefined;
      const nowMs = now();
      try {
        const w = resolveWindow(req.hours, nowMs, limits.hours);
        window = { startUs: BigInt(w.startMs) * 1000n, endUs: BigInt(w.endMs) * 1000n };
      } catch (err) {
        if (!(err instanceof WindowError)) throw err;
        // The window module words its messages for a log ("hours must be ..."); name the field once.
        violations.push({ field: err.field, description: err.message.replace(/^hours /, "") });
      }
      let cursor: PageCursor | undefined;
      if (req.pageToken !== "") {
        cursor = decodePageCursor(req.pageToken);
        const problem =
          cursor === undefined || cursor.deviceId !== req.deviceId
            ? "is not a page token of this query"
            : pageTokenWindowProblem(cursor, nowMs, limits.hours.max);
        if (problem !== undefined) violations.push({ field: "page_token", description: problem });
      }
      if (violations.length > 0 || window === undefined) throw invalidArgument(violations);

      // Later pages keep the first page's window start, so rows ageing out of "the last N hours"
      // while a client pages do not shift what the remaining pages hold.
      const startUs = cursor?.startUs ?? window.startUs;
      const params: unknown[] = [req.deviceId, String(startUs), String(window.endUs)];
      let before = "";
      if (cursor !== undefined) {
        before = ` and "occurred_at" < timestamptz 'epoch' + ?::bigint * interval '1 microsecond'`;
        params.push(String(cursor.beforeUs));
      }
      params.push(pageSize + 1);
      const sql =
        `select (extract(epoch from "occurred_at") * 1000000)::bigint::text as "us", "metrics", "reason" ` +
        `from "device_metrics" where "device_id" = ? ` +
        `and "occurred_at" >= timestamptz 'epoch' + ?::bigint * interval '1 microsecond' ` +
        `and "occurred_at" <= timestamptz 'epoch' + ?::bigint * interval '1 microsecond'${before} ` +
        `order by "occurred_at" desc limit ?`;
      let rows: { us: string; metrics: Record<string, number>; reason: string }[];
      try {
        rows = await deps.em.fork().getConnection().execute(sql, params, "all");
      } catch (err) {
        throw storageErrorToConnect(err, deps.log, "GetDeviceMetrics");
      }
      const page = rows.slice(0, pageSize);
      const last = page[page.length - 1];
      const nextPageToken =
        rows.length > pageSize && last !== undefined
          ? encodePageCursor({ deviceId: req.deviceId, startUs, beforeUs: BigInt(last.us) })
          : "";
      return {
        samples: page.map((row) => {
          const us = BigInt(row.us);
          const seconds = us / 1_000_000n - (us % 1_000_000n < 0n ? 1n : 0n);
          return {
            occurredAt: { seconds, nanos: Number(us - seconds * 1_000_000n) * 1000 },
            metrics: row.metrics,
            reason: row.reason,
          };
        }),
        nextPageToken,
      };
    },
  };
}

/** Where the next page of a `GetDeviceMetrics` query starts. */
interface PageCursor {
  readonly deviceId: string;
  /** The window start of the first page, epoch microseconds. */
  readonly startUs: bigint;
  /** The page holds samples strictly older than this, epoch microseconds. */
  readonly beforeUs: bigint;
}

/** Opaque to clients (base64url JSON); keyset on `occurred_at`, which is unique per device. */
function encodePageCursor(cursor: PageCursor): string {
  const json = JSON.stringify({ v: 1, d: cursor.deviceId, s: String(cursor.startUs), b: String(cursor.beforeUs) });
  return Buffer.from(json).toString("base64url");
}

function decodePageCursor(token: string): PageCursor | undefined {
  if (token.length > 1024 || !/^[A-Za-z0-9_-]+$/.test(token)) return undefined;
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(Buffer.from(token, "base64url").toString("utf8")) as Record<string, unknown>;
  } catch {
    return undefined;
  }
  if (typeof raw !== "object" || raw === null) return undefined;
  if (raw.v !== 1 || typeof raw.d !== "string" || typeof raw.s !== "string" || typeof raw.b !== "string") return undefined;
  if (!/^-?\d{1,18}$/.test(raw.s) || !/^-?\d{1,18}$/.test(raw.b)) return undefined; // fits a bigint bind
  return { deviceId: raw.d, startUs: BigInt(raw.s), beforeUs: BigInt(raw.b) };
}
