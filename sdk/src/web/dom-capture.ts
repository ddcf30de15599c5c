/**
 * What the browser tracker hooks into the page: `history.pushState`/`replaceState` and
 * `popstate`/`hashchange` (single-page-app navigation), clicks on and typing into marked elements,
 * uncaught errors and rejections, and the page-lifecycle events that trigger the page-hide flush.
 * Apart from the tracker so that everything it installs, and removes again, is in one place.
 *
 * @module
 */
import type { JsonObject } from "@bufbuild/protobuf";
import type { BrowserTrackerOptions } from "./tracker-types.js";

/** Wraps a handler so that what it throws is reported, never thrown into the page. */
export type Guard = <A extends unknown[]>(fn: (...args: A) => void) => (...args: A) => void;

/** What the page's events become; each is called inside a {@link Guard}. */
export interface DomEvents {
  /** The URL may have changed (history call, back/forward, hash). */
  readonly urlMaybeChanged: () => void;
  /** A click inside an element marked with `clickAttribute`, with the mark's value. */
  readonly click: (elementId: string) => void;
  /** Typing into an input marked with `searchAttribute`. */
  readonly search: (query: string, elementId: string) => void;
  /** An uncaught error or unhandled rejection. */
  readonly error: (err: unknown, context: JsonObject) => void;
  /** The page hides (`visibilitychange` to hidden, or `pagehide`): send what is queued now. */
  readonly pageHidden: () => void;
}

/** See {@link domCapture}. */
export interface DomCapture {
  /** Installs every hook. Throws when the page refuses one; those installed before stay until {@link stop}. */
  start(): void;
  /** Removes every hook and restores `history`; returns false when it was already stopped. */
  stop(): boolean;
}

type CaptureOptions = Pick<BrowserTrackerOptions, "pageViews" | "clickAttribute" | "searchAttribute" | "captureErrors">;

/** The page hooks of one tracker on `win`, installed by `start()`. */
export function domCapture(win: Window, options: CaptureOptions, events: DomEvents, safe: Guard): DomCapture {
  const doc = win.document;
  const { urlMaybeChanged, pageHidden } = events;
  const onVisibility = safe(() => {
    if (doc.visibilityState === "hidden") pageHidden();
  });

  const clickAttr = options.clickAttribute === undefined ? "data-analytics-id" : options.clickAttribute;
  const searchAttr = options.searchAttribute === undefined ? "data-analytics-search" : options.searchAttribute;
  const onClick = safe((ev: MouseEvent) => {
    if (clickAttr === false) return;
    const target = ev.target as { closest?: (s: string) => Element | null } | null;
    const marked = typeof target?.closest === "function" ? target.closest(`[${clickAttr}]`) : null;
    const id = marked?.getAttribute(clickAttr);
    if (id) events.click(id);
  });
  const onInput = safe((ev: globalThis.Event) => {
    if (searchAttr === false) return;
    const target = ev.target as (Element & { value?: unknown }) | null;
    if (!target || typeof target.getAttribute !== "function" || !target.hasAttribute(searchAttr)) return;
    events.search(typeof target.value === "string" ? target.value : "", target.getAttribute(searchAttr) ?? "");
  });
  const onError = safe((ev: ErrorEvent) => {
    events.error(ev.error ?? ev.message, { source: "window.error", filename: ev.filename ?? "", line: ev.lineno ?? 0, column: ev.colno ?? 0 });
  });
  const onRejection = safe((ev: PromiseRejectionEvent) => {
    events.error(ev.reason, { source: "unhandledrejection" });
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
  return {
    start() {
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
      win.addEventListener("pagehide", pageHidden);
    },
    stop() {
      if (!active) return false;
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
      win.removeEventListener("pagehide", pageHidden);
      return true;
    },
  };
}
