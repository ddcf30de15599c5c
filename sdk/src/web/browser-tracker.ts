/**
 * The browser tracker: page views (single-page-app navigation included), clicks on marked
 * elements, debounced searches, and uncaught errors, queued and sent in `LogEvents` batches;
 * on page hide the queue goes out with `fetch(..., { keepalive: true })`, which outlives the page.
 * It never throws into the host page and never rejects a promise it hands out.
 *
 * @module
 */
import { create, fromJson, toJson, type JsonValue } from "@bufbuild/protobuf";
import type { JsonObject } from "@bufbuild/protobuf";
import { createAnalyticsClient, toEvent, type AnalyticsClient, type EventInput } from "../analytics-client.js";
import { newEventId } from "../event-id.js";
import { EventQueue, type EventQueueStats } from "../event-queue.js";
import { EventSchema, LogEventsRequestSchema, LogEventsResponseSchema, type Event } from "../gen/analytics/v1/analytics_service_pb.js";
import { ActivityType, ErrorCategory, Severity } from "../gen/analytics/v1/common_pb.js";
import type { RetryOptions } from "../retry.js";
import { createWebTransport } from "./transport.js";

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

const SESSION_KEY = "fleet-analytics-session";
/** Chromium caps the bodies of in-flight keepalive requests of a page at 64 KiB in all. */
const BEACON_BUDGET_BYTES = 60_000;
const LIMITS = { url: 2048, shortText: 256, message: 4096, stack: 32 * 1024 } as const;

const clip = (s: string, n: number): string => (s.length > n ? s.slice(0, n) : s);

const INERT: BrowserTracker = {
  pageView() {},
  click() {},
  search() {},
  interaction() {},
  error() {},
  flush: () => Promise.resolve(true),
  stop() {},
  stats: () => ({ queued: 0, sent: 0, rejected: 0, dropped: 0, discarded: 0, failedSends: 0, errorsSuppressed: 0, beacons: 0 }),
};

/** Name, message and stack of anything thrown. */
function describe(error: unknown): { name: string; message: string; stack: string } {
  if (error instanceof Error) return { name: error.name || "Error", message: error.message || String(error), stack: error.stack ?? "" };
  if (typeof error === "string") return { name: "Error", message: error, stack: "" };
  try {
    return { name: "NonError", message: JSON.stringify(error) ?? String(error), stack: "" };
  } catch {
    return { name: "NonError", message: String(error), stack: "" };
  }
}

/**
 * Starts tracking the page.
 *
 * ```ts
 * import { createBrowserTracker } from "@fleet/analytics-sdk/web";
 *
 * const tracker = createBrowserTracker({ baseUrl: "https://analytics.example.com" });
 * // <button data-analytics-id="save-device">Save</button>   → a CLICK with element_id "save-device"
 * // <input data-analytics-search="device-search">            → one SEARCH per typing burst
 * ```
 *
 * Without a browser `window` (server-side rendering), or without `baseUrl` and `client`, it returns
 * a tracker that does nothing.
 * Failures (network down, server away, CORS) keep events queued and retried with backoff; a
 * full queue drops new events (`stats().dropped`). Nothing the tracker does can throw into the
 * page or leave an unhandled rejection.
 */
export function createBrowserTracker(options: BrowserTrackerOptions): BrowserTracker {
  const report = (err: unknown): void => {
    try {
      options.onError?.(err);
    } catch {
      // Nothing may escape into the page.
    }
  };
  const win = options.window ?? (typeof window === "undefined" ? undefined : window);
  if (win === undefined) return INERT;
  if (options.baseUrl === undefined && options.client === undefined) {
    report(new TypeError("createBrowserTracker needs baseUrl or client: tracking is off"));
    return INERT;
  }
  try {
    return startTracker(options, win, report);
  } catch (err) {
    // Bad options (e.g. maxBatch over 500) turn tracking off; they never break the page.
    report(err);
    return INERT;
  }
}

function startTracker(options: BrowserTrackerOptions, win: Window, report: (err: unknown) => void): BrowserTracker {
  const baseUrl = options.baseUrl;
  const doc = win.document;
  const safe =
    <A extends unknown[]>(fn: (...args: A) => void) =>
    (...args: A): void => {
      try {
        fn(...args);
      } catch (err) {
        report(err);
      }
    };

  // The last token obtained, for beacons, which must be sent synchronously while the page hides.
  let lastToken = options.token ?? "";
  const getToken =
    options.getToken === undefined
      ? undefined
      : async (): Promise<string> => {
          lastToken = await options.getToken!();
          return lastToken;
        };
  const client =
    options.client ??
    createAnalyticsClient(createWebTransport({ baseUrl: baseUrl!, token: options.token, getToken, credentials: options.credentials }));
  // A client of the page's own calls getToken itself; keep a fresh token for beacons anyway.
  const refreshToken = (): void => {
    if (options.client !== undefined && getToken !== undefined) getToken().catch(report);
  };
  refreshToken();

  const queue = new EventQueue({
    send: (events, signal) => {
      refreshToken();
      return client.logEvents(events, { signal });
    },
    maxBatch: options.maxBatch ?? 50,
    flushIntervalMs: options.flushIntervalMs ?? 5000,
    maxQueue: options.maxQueue ?? 500,
    retry: options.retry ?? { initialBackoffMs: 1000, maxBackoffMs: 60_000 },
    onSendError: (err) => report(err),
    unrefTimers: false,
  });

  let sessionId = options.sessionId ?? "";
  if (sessionId === "") {
    try {
      sessionId = win.sessionStorage.getItem(SESSION_KEY) ?? "";
      if (sessionId === "") {
        sessionId = newEventId();
        win.sessionStorage.setItem(SESSION_KEY, sessionId);
      }
    } catch {
      sessionId = newEventId(); // storage blocked (privacy mode, sandboxed frame)
    }
  }
  const userId = options.userId ?? "";
  const pageUrl = (): string => {
    try {
      const url = options.pageUrl?.() ?? `${win.location.pathname}${win.location.search}${win.location.hash}`;
      return clip(url, LIMITS.url);
    } catch (err) {
      report(err);
      return "";
    }
  };

  const push = (input: EventInput): void => {
    queue.enqueue(toEvent(input, { clientTimestamps: true }));
  };
  const activity = (activityType: ActivityType, fields: { elementId?: string; searchQuery?: string; pageUrl?: string; extraData?: JsonObject; at?: number }): void => {
    push({
      userActivity: {
        activityType,
        pageUrl: fields.pageUrl ?? pageUrl(),
        elementId: clip(fields.elementId ?? "", LIMITS.shortText),
        searchQuery: clip(fields.searchQuery ?? "", LIMITS.shortText),
        sessionId,
        userId,
        extraData: fields.extraData,
        occurredAt: fields.at,
      },
    });
  };

  // --- page views -------------------------------------------------------------------------
  let lastUrl: string | undefined;
  const pageView = safe((url?: string) => {
    const u = url === undefined ? pageUrl() : clip(url, LIMITS.url);
    const first = lastUrl === undefined;
    lastUrl = u;
    // The referrer says where the visit came from; later views of the tab come from the app itself.
    activity(ActivityType.PAGE_VIEW, { pageUrl: u, extraData: first && doc.referrer ? { referrer: clip(doc.referrer, LIMITS.url) } : undefined });
  });
  const urlMaybeChanged = safe(() => {
    const u = pageUrl();
    if (u !== lastUrl) pageView(u);
  });

  // --- searches (debounced) ---------------------------------------------------------------
  const debounceMs = options.searchDebounceMs ?? 500;
  let pendingSearch: { query: string; elementId: string; pageUrl: string; at: number } | undefined;
  let searchTimer: number | undefined;
  const sendSearch = safe(() => {
    if (searchTimer !== undefined) win.clearTimeout(searchTimer);
    searchTimer = undefined;
    const s = pendingSearch;
    pendingSearch = undefined;
    if (s === undefined || s.query.trim() === "") return;
    activity(ActivityType.SEARCH, { searchQuery: s.query, elementId: s.elementId, pageUrl: s.pageUrl, at: s.at });
  });
  const search = safe((query: string, elementId: string = "") => {
    pendingSearch = { query: String(query), elementId, pageUrl: pageUrl(), at: Date.now() };
    if (searchTimer !== undefined) win.clearTimeout(searchTimer);
    searchTimer = win.setTimeout(sendSearch, debounceMs);
  });

  // --- errors -----------------------------------------------------------------------------
  const maxErrors = options.maxErrorsPerMinute ?? 30;
  let errorWindowStart = 0;
  let errorsInWindow = 0;
  let errorsSuppressed = 0;
  const error = safe((err: unknown, context: JsonObject = {}) => {
    const t = Date.now();
    if (t - errorWindowStart >= 60_000) {
      errorWindowStart = t;
      errorsInWindow = 0;
    }
    if (++errorsInWindow > maxErrors) {
      errorsSuppressed++;
      return;
    }
    const d = describe(err);
    push({
      error: {
        category: ErrorCategory.FRONTEND,
        severity: Severity.ERROR,
        errorCode: clip(d.name, 128),
        errorMessage: clip(d.message || "(no message)", LIMITS.message),
        stackTrace: clip(d.stack, LIMITS.stack),
        endpoint: pageUrl(),
        context: { sessionId, userAgent: clip(win.navigator?.userAgent ?? "", LIMITS.shortText), ...context },
      },
    });
  });

  // --- page hide: keepalive beacons -------------------------------------------------------
  let beacons = 0;
  const endpoint = baseUrl === undefined ? undefined : `${baseUrl.replace(/\/+$/, "")}/analytics.v1.AnalyticsService/LogEvents`;
  const encoder = new TextEncoder();
  const jsonOf = (event: Event): JsonValue => toJson(EventSchema, event);
  const beacon = safe(() => {
    sendSearch();
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
  });
  const onVisibility = safe(() => {
    if (doc.visibilityState === "hidden") beacon();
  });

  // --- listeners --------------------------------------------------------------------------
  const clickAttr = options.clickAttribute === undefined ? "data-analytics-id" : options.clickAttribute;
  const searchAttr = options.searchAttribute === undefined ? "data-analytics-search" : options.searchAttribute;
  const onClick = safe((ev: MouseEvent) => {
    if (clickAttr === false) return;
    const target = ev.target as { closest?: (s: string) => Element | null } | null;
    const marked = typeof target?.closest === "function" ? target.closest(`[${clickAttr}]`) : null;
    const id = marked?.getAttribute(clickAttr);
    if (id) activity(ActivityType.CLICK, { elementId: id });
  });
  const onInput = safe((ev: globalThis.Event) => {
    if (searchAttr === false) return;
    const target = ev.target as (Element & { value?: unknown }) | null;
    if (!target || typeof target.getAttribute !== "function" || !target.hasAttribute(searchAttr)) return;
    search(typeof target.value === "string" ? target.value : "", target.getAttribute(searchAttr) ?? "");
  });
  const onError = safe((ev: ErrorEvent) => {
    error(ev.error ?? ev.message, { source: "window.error", filename: ev.filename ?? "", line: ev.lineno ?? 0, column: ev.colno ?? 0 });
  });
  const onRejection = safe((ev: PromiseRejectionEvent) => {
    error(ev.reason, { source: "unhandledrejection" });
  });

  const history = win.history;
  const originalPush = history.pushState;
  const originalReplace = history.replaceState;
  let active = true;
  const patchedPush: History["pushState"] = function (this: History, ...args) {
    const result = originalPush.apply(this, args);
    if (active) urlMaybeChanged();
    return result;
  };
  const patchedReplace: History["replaceState"] = function (this: History, ...args) {
    const result = originalReplace.apply(this, args);
    if (active) urlMaybeChanged();
    return result;
  };

  const trackPages = options.pageViews !== false;
  try {
    if (trackPages) {
      history.pushState = patchedPush;
      history.replaceState = patchedReplace;
      win.addEventListener("popstate", urlMaybeChanged);
      win.addEventListener("hashchange", urlMaybeChanged);
    }
    if (clickAttr !== false) doc.addEventListener("click", onClick, { capture: true, passive: true });
    if (searchAttr !== false) doc.addEventListener("input", onInput, { capture: true, passive: true });
    if (options.captureErrors !== false) {
      win.addEventListener("error", onError);
      win.addEventListener("unhandledrejection", onRejection);
    }
    doc.addEventListener("visibilitychange", onVisibility);
    win.addEventListener("pagehide", beacon);
    if (trackPages) pageView();
  } catch (err) {
    report(err);
  }

  return {
    pageView: (url) => pageView(url),
    click: safe((elementId: string, extraData?: JsonObject) => activity(ActivityType.CLICK, { elementId, extraData })),
    search: (query, elementId) => search(query, elementId),
    interaction: safe((elementId: string, extraData?: JsonObject) => activity(ActivityType.INTERACTION, { elementId, extraData })),
    error: (err, context) => error(err, context),
    flush: async () => {
      try {
        sendSearch();
        await queue.flush();
        return true;
      } catch (err) {
        report(err);
        return false;
      }
    },
    stop: safe(() => {
      if (!active) return;
      active = false;
      // Another script may have wrapped history after us: then our wrappers stay, inert.
      if (history.pushState === patchedPush) history.pushState = originalPush;
      if (history.replaceState === patchedReplace) history.replaceState = originalReplace;
      win.removeEventListener("popstate", urlMaybeChanged);
      win.removeEventListener("hashchange", urlMaybeChanged);
      doc.removeEventListener("click", onClick, { capture: true });
      doc.removeEventListener("input", onInput, { capture: true });
      win.removeEventListener("error", onError);
      win.removeEventListener("unhandledrejection", onRejection);
      doc.removeEventListener("visibilitychange", onVisibility);
      win.removeEventListener("pagehide", beacon);
      beacon();
      // Lets a send already running finish; everything else went into the beacon.
      void queue.close({ timeoutMs: 5000 }).catch(report);
    }),
    stats: () => ({ ...queue.stats(), errorsSuppressed, beacons }),
  };
}
