/**
 * The browser tracker: page views (single-page-app navigation included), clicks on marked
 * elements, debounced searches, and uncaught errors, queued and sent in `LogEvents` batches;
 * on page hide the queue goes out with `fetch(..., { keepalive: true })`, which outlives the page.
 * It never throws into the host page and never rejects a promise it hands out.
 *
 * This module builds the events; beside it: the public types (`tracker-types.ts`), the page hooks
 * (`dom-capture.ts`) and the page-hide flush (`page-hide-beacon.ts`).
 *
 * @module
 */
import type { JsonObject } from "@bufbuild/protobuf";
import { createAnalyticsClient, toEvent, type EventInput } from "../analytics-client.js";
import { newEventId } from "../event-id.js";
import { EventQueue } from "../event-queue.js";
import { ActivityType, ErrorCategory, Severity } from "../gen/analytics/v1/common_pb.js";
import { domCapture } from "./dom-capture.js";
import { pageHideBeacon } from "./page-hide-beacon.js";
import { INERT_TRACKER, type BrowserTracker, type BrowserTrackerOptions } from "./tracker-types.js";
import { createWebTransport } from "./transport.js";

export type { BrowserTracker, BrowserTrackerOptions, BrowserTrackerStats } from "./tracker-types.js";

const SESSION_KEY = "fleet-analytics-session";
const LIMITS = { url: 2048, shortText: 256, message: 4096, stack: 32 * 1024 } as const;

const clip = (s: string, n: number): string => (s.length > n ? s.slice(0, n) : s);

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
  if (win === undefined) return INERT_TRACKER;
  if (options.baseUrl === undefined && options.client === undefined) {
    report(new TypeError("createBrowserTracker needs baseUrl or client: tracking is off"));
    return INERT_TRACKER;
  }
  try {
    return startTracker(options, win, report);
  } catch (err) {
    // Bad options (e.g. maxBatch over 500) turn tracking off; they never break the page.
    report(err);
    return INERT_TRACKER;
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
  const beacons = pageHideBeacon({ win, baseUrl, queue, token: () => lastToken, credentials: options.credentials, report });
  const beacon = safe(() => {
    sendSearch();
    beacons.send();
  });

  // --- page hooks -------------------------------------------------------------------------
  const dom = domCapture(
    win,
    options,
    {
      urlMaybeChanged,
      click: (elementId) => activity(ActivityType.CLICK, { elementId }),
      search,
      error,
      pageHidden: beacon,
    },
    safe,
  );
  try {
    dom.start();
    if (options.pageViews !== false) pageView();
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
      if (!dom.stop()) return;
      beacon();
      // Lets a send already running finish; everything else went into the beacon.
      void queue.close({ timeoutMs: 5000 }).catch(report);
    }),
    stats: () => ({ ...queue.stats(), errorsSuppressed, beacons: beacons.count() }),
  };
}
