/**
 * The tracker's page-hide flush: when the page hides or unloads, the queue goes out in `LogEvents`
 * requests sent with `fetch(..., { keepalive: true })`, which outlive the page (Connect JSON, so
 * no client is needed while the page goes away). Apart from the tracker because it speaks the
 * wire protocol by hand and has its own budget rules.
 *
 * @module
 */
import { create, fromJson, toJson, type JsonValue } from "@bufbuild/protobuf";
import type { EventQueue } from "../event-queue.js";
import { EventSchema, LogEventsRequestSchema, LogEventsResponseSchema, type Event } from "../gen/analytics/v1/analytics_service_pb.js";

/** Chromium caps the bodies of in-flight keepalive requests of a page at 64 KiB in all. */
const BEACON_BUDGET_BYTES = 60_000;

/** What a page-hide beacon needs from its tracker. */
export interface PageHideBeaconOptions {
  readonly win: Window;
  /** The service's URL; without it there is no keepalive request, only a regular flush. */
  readonly baseUrl: string | undefined;
  readonly queue: EventQueue;
  /** The last bearer token obtained ("" for none: cookie auth). */
  readonly token: () => string;
  readonly credentials: RequestCredentials | undefined;
  readonly report: (err: unknown) => void;
}

/** See {@link pageHideBeacon}. */
export interface PageHideBeacon {
  /** Sends the queue now, synchronously (as a page that hides requires). */
  send(): void;
  /** Beacon requests sent so far. */
  count(): number;
}

/**
 * The page-hide sender of one tracker. Each request carries what fits the keepalive budget; a
 * request that fails puts its events back in the queue (`BeaconBatch.settle`).
 */
export function pageHideBeacon(options: PageHideBeaconOptions): PageHideBeacon {
  const { win, baseUrl, queue, report } = options;
  let beacons = 0;
  const endpoint = baseUrl === undefined ? undefined : `${baseUrl.replace(/\/+$/, "")}/analytics.v1.AnalyticsService/LogEvents`;
  const encoder = new TextEncoder();
  const jsonOf = (event: Event): JsonValue => toJson(EventSchema, event);
  const send = (): void => {
    if (endpoint === undefined) {
      // No URL for a keepalive request: a regular send, which may not survive an unload.
      void queue.flush().catch(report);
      return;
    }
    const batches = queue.takeForBeacon(BEACON_BUDGET_BYTES, (e) => encoder.encode(JSON.stringify(jsonOf(e))).length);
    for (const batch of batches) {
      beacons++;
      const body = JSON.stringify(toJson(LogEventsRequestSchema, create(LogEventsRequestSchema, { events: [...batch.events] })));
      const headers: Record<string, string> = { "content-type": "application/json", "connect-protocol-version": "1" };
      const lastToken = options.token();
      if (lastToken !== "") headers.authorization = `Bearer ${lastToken}`;
      let sent: Promise<Response>;
      try {
        sent = win.fetch(endpoint, { method: "POST", body, headers, keepalive: true, credentials: options.credentials ?? "include" });
      } catch (err) {
        batch.settle(err instanceof Error ? err : new Error(String(err)));
        continue;
      }
      sent
        .then(async (res) => {
          if (!res.ok) throw new Error(`LogEvents beacon answered HTTP ${res.status}`);
          batch.settle(fromJson(LogEventsResponseSchema, (await res.json()) as JsonValue, { ignoreUnknownFields: true }));
        })
        .catch((err: unknown) => {
          batch.settle(err instanceof Error ? err : new Error(String(err)));
          report(err);
        });
    }
  };
  return { send, count: () => beacons };
}
