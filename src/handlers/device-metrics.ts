/**
 * Device metrics ingest handlers: `StreamDeviceMetrics` and `IngestDeviceMetrics`
 * (AnalyticsService). Thin: the decisions and the stream's pipelining live in
 * `src/metrics/device-metrics-ingest.ts`; this file translates messages. Stored samples are read
 * by `GetDeviceMetrics`, with the other MetricsService queries (`metrics-service.ts`).
 */
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import type { AnalyticsService, StreamDeviceMetricsRequest } from "../../sdk/src/gen/analytics/v1/analytics_service_pb.js";
import { assertMayWriteDevice } from "../auth/access-policy.js";
import { credentialExpiry, type ExpiryTimers } from "../auth/credential-expiry.js";
import { kPrincipal } from "../auth/principal.js";
import type { DeviceMetricsIngest, StreamBatch } from "../metrics/device-metrics-ingest.js";
import { sampleBatchOf } from "../metrics/sample-batch.js";

/** What the device metrics handlers need. */
export interface DeviceMetricsHandlerDeps {
  /** The process-wide ingest (one SmartDataFilter). */
  readonly ingest: DeviceMetricsIngest;
  /** The server's shutdown signal: streams acknowledge what they took and end `Unavailable`. */
  readonly shutdownSignal?: AbortSignal;
  /** The server clock (ms); injectable for tests. */
  readonly now?: () => number;
  /** The timers that end a stream when its token expires; injectable for tests. */
  readonly timers?: ExpiryTimers;
}

/** The two AnalyticsService methods. */
export type DeviceMetricsHandlers = Pick<ServiceImpl<typeof AnalyticsService>, "streamDeviceMetrics" | "ingestDeviceMetrics">;

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
  };
}
