/**
 * `@fleet/analytics-sdk/web`: the Connect-Web transport (cookie or bearer auth) and the browser
 * tracker. No Node.js modules: safe for any browser bundle.
 *
 * @packageDocumentation
 */
export { createWebTransport, type WebTransportOptions } from "./transport.js";
export { createBrowserTracker, type BrowserTracker, type BrowserTrackerOptions, type BrowserTrackerStats } from "./browser-tracker.js";
