/**
 * The public shape of the browser tracker: its options, counters and interface, and the tracker
 * that does nothing (handed out where tracking cannot run). Apart from the tracker itself
 * (`browser-tracker.ts`) so the contract can be read without the machinery behind it.
 *
 * @module
 */
import type { JsonObject } from "@bufbuild/protobuf";
import type { AnalyticsClient } from "../analytics-client.js";
import type { EventQueueStats } from "../event-queue.js";
import type { RetryOptions } from "../retry.js";
import type { createWebTransport } from "./transport.js";

/** Where the tracker looks for marks on elements, and what it records. */
export interface BrowserTrackerOptions {
  /**
   * The service's URL, e.g. `https://analytics.example.com`. Page-hide beacons go there; without
   * it (a `client` given instead) the tracker can only try a regular flush when the page hides.
   */
  readonly baseUrl?: string;
  /** A client to send batches with (default: one over {@link createWebTransport} on `baseUrl` with the options below). */
  readonly client?: Pick<AnalyticsClient, "logEvents">;
  /** A bearer token; without `token`/`getToken` the `access_token` cookie is used. */
  readonly token?: string;
  /** Returns the current bearer token (the last one returned is used by page-hide beacons). */
  readonly getToken?: () => string | Promise<string>;
  /** Cookie mode for requests (default `"include"`). */
  readonly credentials?: RequestCredentials;
  /** Groups this tab's activities (default: a UUID kept in `sessionStorage` for the tab's life). */
  readonly sessionId?: string;
  /** The acting user; leave empty to let the server use the token's subject (a `user` token must). */
  readonly userId?: string;
  /** Record page views: at start and on every URL change (`pushState`, `replaceState`, back/forward, hash) (default true). */
  readonly pageViews?: boolean;
  /** Attribute marking clickable elements; a click inside one records its value (default `data-analytics-id`; `false` disables). */
  readonly clickAttribute?: string | false;
  /** Attribute marking search inputs; typing records the query, debounced (default `data-analytics-search`; `false` disables). */
  readonly searchAttribute?: string | false;
  /** Quiet time that ends a search burst, in ms (default 500): only the burst's last query is sent. */
  readonly searchDebounceMs?: number;
  /** Record `error` and `unhandledrejection` as `FRONTEND` errors (default true). */
  readonly captureErrors?: boolean;
  /** Cap on captured errors per minute (default 30), so an error loop cannot flood the queue. */
  readonly maxErrorsPerMinute?: number;
  /** Events per batch (default 50). */
  readonly maxBatch?: number;
  /** Longest an event waits before it is sent, in ms (default 5000). */
  readonly flushIntervalMs?: number;
  /** Most events kept while the service is unreachable (default 500; beyond it new events are dropped). */
  readonly maxQueue?: number;
  /** Backoff between failed sends (default 1 s doubling up to 60 s). */
  readonly retry?: Pick<RetryOptions, "initialBackoffMs" | "maxBackoffMs">;
  /** The page URL recorded with events (default `location.pathname + location.search + location.hash`). */
  readonly pageUrl?: () => string;
  /** Told about failed sends and internal problems (never thrown). */
  readonly onError?: (error: unknown) => void;
  /** The window to track (default `globalThis.window`). */
  readonly window?: Window;
}

/** Counters of a tracker. */
export interface BrowserTrackerStats extends EventQueueStats {
  /** Errors not recorded because of `maxErrorsPerMinute`. */
  readonly errorsSuppressed: number;
  /** Page-hide beacons sent. */
  readonly beacons: number;
}

/** See {@link createBrowserTracker}. Every method is safe to call in any state. */
export interface BrowserTracker {
  /** Records a page view (default URL: the current page). Automatic with `pageViews`. */
  pageView(url?: string): void;
  /** Records a click on `elementId`. Automatic for marked elements. */
  click(elementId: string, extraData?: JsonObject): void;
  /** Records a search, debounced: only the last query of a burst is sent. Automatic for marked inputs. */
  search(query: string, elementId?: string): void;
  /** Records any other interaction worth counting. */
  interaction(elementId: string, extraData?: JsonObject): void;
  /** Records an error (category `FRONTEND`). Automatic for uncaught errors with `captureErrors`. */
  error(error: unknown, context?: JsonObject): void;
  /** Sends what is queued now; resolves true when it all went out (never rejects). */
  flush(): Promise<boolean>;
  /** Removes every listener, restores `history`, and sends what is queued with a keepalive beacon. */
  stop(): void;
  /** The counters. */
  stats(): BrowserTrackerStats;
}

/** The tracker that does nothing: no window (server-side rendering), no way to send, or bad options. */
export const INERT_TRACKER: BrowserTracker = {
  pageView() {},
  click() {},
  search() {},
  interaction() {},
  error() {},
  flush: () => Promise.resolve(true),
  stop() {},
  stats: () => ({ queued: 0, sent: 0, rejected: 0, dropped: 0, discarded: 0, failedSends: 0, errorsSuppressed: 0, beacons: 0 }),
};
