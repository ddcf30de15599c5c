/**
 * The browser tracker in a real browser: `sdk/web` bundled by esbuild into a test page, served
 * from its own origin (a different port, listed in the server's CORS origins), opened in
 * Debian's Chromium through playwright-core, authenticated by the `access_token` cookie. Checks
 * that page views (pushState, back), a click on a marked element, a debounced search burst and
 * uncaught errors arrive as rows; that the page-hide beacon delivers what was still queued when
 * the page went away; and that with the server stopped the page keeps working.
 *
 * Chromium: `apt-get install -y chromium` (Debian), or set CHROMIUM_PATH. Required with
 * `CI=true`; elsewhere skipped with one line when Chromium is missing (test/support/chromium.ts).
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import { chromium, type Browser, type BrowserContext, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildServer, type AnalyticsServer } from "../../src/server/build-server.js";
import { mintTestToken } from "../../test/support/auth.js";
import { browserTestsRun, CHROMIUM_ARGS, CHROMIUM_PATH } from "../../test/support/chromium.js";
import { createTestDatabase, type TestDatabase } from "../../test/support/test-database.js";

const here = dirname(fileURLToPath(import.meta.url));
const RUN = browserTestsRun("sdk/test/browser-tracker.e2e.test.ts");
const USER = "browser-user";

let db: TestDatabase;
let server: AnalyticsServer;
let pageServer: Server;
let pageOrigin: string;
let bundle: string;
let browser: Browser;
let context: BrowserContext;
/** What the next page load tells the tracker (the page server reads it per request). */
let pageConfig: { baseUrl: string; flushIntervalMs: number; token?: string } = { baseUrl: "", flushIntervalMs: 200 };

async function rows<T = Record<string, unknown>>(sql: string, params: unknown[] = []): Promise<T[]> {
  return server.db.orm.em.fork().getConnection().execute<T[]>(sql, params, "all");
}

const activities = (sessionId: string) =>
  rows<{ activity_type: string; page_url: string; element_id: string | null; search_query: string | null; user_id: string }>(
    `select activity_type, page_url, element_id, search_query, user_id from user_activities where session_id = ? order by occurred_at, activity_type`,
    [sessionId],
  );

function html(): string {
  return `<!doctype html>
<html><head><meta charset="utf-8"><title>tracker test</title>
<script>
  window.__trackerConfig = ${JSON.stringify(pageConfig)};
  window.__hostClicks = 0;
  document.addEventListener("click", () => { window.__hostClicks++; });
</script>
<script type="module" src="/app.js"></script>
</head><body>
  <button id="save" data-analytics-id="save-device"><span id="save-label">Save</span></button>
  <button id="plain">Not tracked</button>
  <input id="q" data-analytics-search="device-search">
  <button id="boom" onclick="throw new TypeError('boom from the page')">Boom</button>
</body></html>`;
}

/** Opens the test page at `path` and waits for the tracker; collects uncaught page errors. */
async function openPage(path: string, inContext: BrowserContext = context): Promise<{ page: Page; pageErrors: string[]; sessionId: string }> {
  const page = await inContext.newPage();
  const pageErrors: string[] = [];
  page.on("pageerror", (err) => pageErrors.push(err.message));
  await page.goto(`${pageOrigin}${path}`);
  await page.waitForFunction(() => window.tracker !== undefined);
  const sessionId = await page.evaluate(() => sessionStorage.getItem("fleet-analytics-session") ?? "");
  expect(sessionId).toMatch(/^[0-9a-f-]{36}$/);
  return { page, pageErrors, sessionId };
}

beforeAll(async () => {
  if (!RUN) return;
  const built = await build({
    entryPoints: [join(here, "fixtures/tracker-page.ts")],
    bundle: true,
    platform: "browser",
    format: "esm",
    target: "chrome120",
    write: false,
    logLevel: "silent",
  });
  bundle = built.outputFiles[0]!.text;

  pageServer = createServer((req, res) => {
    if (req.url === "/app.js") {
      res.writeHead(200, { "content-type": "text/javascript" }).end(bundle);
      return;
    }
    if (req.url === "/favicon.ico") {
      res.writeHead(404).end();
      return;
    }
    // Every other path is the single-page app.
    res.writeHead(200, { "content-type": "text/html; charset=utf-8" }).end(html());
  });
  await new Promise<void>((resolve) => pageServer.listen(0, "127.0.0.1", resolve));
  pageOrigin = `http://127.0.0.1:${(pageServer.address() as AddressInfo).port}`;

  db = await createTestDatabase({ corsOrigins: [pageOrigin] });
  server = await buildServer(db.config);
  await server.listen();
  pageConfig = { baseUrl: server.url(), flushIntervalMs: 200 };

  browser = await chromium.launch({ executablePath: CHROMIUM_PATH, args: CHROMIUM_ARGS });
  context = await browser.newContext();
  // What the app's login would set: the token in an HttpOnly cookie for the analytics host. The
  // page is on another port of the same host, so the cookie is same-site and fetch sends it.
  const token = await mintTestToken(server.config, "user", USER);
  await context.addCookies([{ name: "access_token", value: token, domain: "127.0.0.1", path: "/", httpOnly: true, sameSite: "Lax" }]);
});

afterAll(async () => {
  await browser?.close();
  await server?.close();
  await new Promise<void>((resolve) => (pageServer ? pageServer.close(() => resolve()) : resolve()));
  await db?.drop();
});

describe.runIf(RUN)("browser tracker in Chromium", () => {
  it("records page views (incl. SPA navigation), a click, the last query of a search burst and thrown errors", async () => {
    const { page, pageErrors, sessionId } = await openPage("/home");

    await page.evaluate(() => history.pushState({}, "", "/devices/42"));
    await page.evaluate(() => history.replaceState({ tab: 2 }, "")); // same URL: not a new view
    await page.click("#save-label"); // inside the marked element
    await page.click("#plain"); // not marked: not recorded
    await page.locator("#q").pressSequentially("offline", { delay: 40 }); // one burst (debounce: 500 ms)
    await page.waitForTimeout(900);
    await page.goBack(); // popstate back to /home
    await page.click("#boom");
    await page.evaluate(() => {
      void Promise.reject(new Error("rejected in the page"));
    });

    await expect.poll(async () => (await activities(sessionId)).length, { timeout: 15_000 }).toBe(5);
    const stored = await activities(sessionId);
    expect(stored.map((r) => [r.activity_type, r.page_url, r.element_id ?? "", r.search_query ?? ""])).toEqual([
      ["page_view", "/home", "", ""],
      ["page_view", "/devices/42", "", ""],
      ["click", "/devices/42", "save-device", ""],
      ["search", "/devices/42", "device-search", "offline"],
      ["page_view", "/home", "", ""],
    ]);
    expect(new Set(stored.map((r) => r.user_id))).toEqual(new Set([USER]));

    await expect
      .poll(async () => (await rows(`select 1 from error_logs where context->>'sessionId' = ?`, [sessionId])).length, { timeout: 15_000 })
      .toBe(2);
    const errors = await rows<{ category: string; severity: string; error_code: string; error_message: string; stack_trace: string; endpoint: string; context: Record<string, unknown> }>(
      `select category, severity, error_code, error_message, stack_trace, endpoint, context from error_logs where context->>'sessionId' = ? order by occurred_at`,
      [sessionId],
    );
    expect(errors.map((e) => [e.category, e.severity, e.error_code, e.error_message, e.endpoint, e.context.source])).toEqual([
      ["frontend", "error", "TypeError", "boom from the page", "/home", "window.error"],
      ["frontend", "error", "Error", "rejected in the page", "/home", "unhandledrejection"],
    ]);
    expect(errors[1]!.stack_trace).toContain("rejected in the page");
    // Only the page's own errors were uncaught; the tracker added none.
    expect(pageErrors).toEqual(["boom from the page", "rejected in the page"]);
    await expect.poll(() => page.evaluate(() => window.tracker.stats())).toMatchObject({ queued: 0, sent: 7, rejected: 0, dropped: 0 });
    await page.close();
  });

  it("sends what is still queued with a keepalive beacon when the page goes away", async () => {
    pageConfig = { ...pageConfig, flushIntervalMs: 60_000 }; // nothing leaves on a timer
    const { page, sessionId } = await openPage("/beacon");
    await page.click("#save");
    await page.locator("#q").pressSequentially("left before the debounce", { delay: 10 });
    expect(await page.evaluate(() => window.tracker.stats())).toMatchObject({ queued: 2, sent: 0 });
    await page.goto("about:blank"); // pagehide: the beacon (with the pending search) outlives the page
    await expect.poll(async () => (await activities(sessionId)).length, { timeout: 15_000 }).toBe(3);
    expect((await activities(sessionId)).map((r) => [r.activity_type, r.element_id ?? "", r.search_query ?? ""])).toEqual([
      ["page_view", "", ""],
      ["click", "save-device", ""],
      ["search", "device-search", "left before the debounce"],
    ]);
    await page.close();
    pageConfig = { ...pageConfig, flushIntervalMs: 200 };
  });

  it("authenticates with a bearer token instead of the cookie, beacon included", async () => {
    const bare = await browser.newContext(); // no cookie
    try {
      pageConfig = { ...pageConfig, flushIntervalMs: 60_000, token: await mintTestToken(server.config, "user", "bearer-user") };
      const { page, pageErrors, sessionId } = await openPage("/bearer", bare);
      await page.click("#save");
      await page.goto("about:blank"); // the beacon carries the bearer header (a preflighted keepalive fetch)
      await expect.poll(async () => (await activities(sessionId)).length, { timeout: 15_000 }).toBe(2);
      expect((await activities(sessionId)).map((r) => [r.activity_type, r.user_id])).toEqual([
        ["page_view", "bearer-user"],
        ["click", "bearer-user"],
      ]);
      expect(pageErrors).toEqual([]);
    } finally {
      pageConfig = { baseUrl: pageConfig.baseUrl, flushIntervalMs: 200 };
      await bare.close();
    }
  });

  it("keeps the page working, without uncaught errors, when the server is down", async () => {
    const { page, pageErrors, sessionId } = await openPage("/offline");
    await expect.poll(async () => (await activities(sessionId)).length, { timeout: 15_000 }).toBe(1);
    await server.close();

    await page.evaluate(() => history.pushState({}, "", "/offline/next"));
    for (let i = 0; i < 3; i++) await page.click("#save");
    await page.locator("#q").pressSequentially("nobody home", { delay: 10 });
    await page.click("#boom");
    expect(await page.evaluate(() => window.tracker.flush())).toBe(false);
    await page.waitForTimeout(1000); // a few retry rounds
    await page.click("#plain");

    expect(await page.evaluate(() => window.__hostClicks)).toBe(5);
    expect(await page.evaluate(() => document.getElementById("save")?.textContent)).toBe("Save");
    // The only uncaught error is the page's own; the tracker's failures went to onError.
    expect(pageErrors).toEqual(["boom from the page"]);
    const stats = await page.evaluate(() => window.tracker.stats());
    expect(stats.queued).toBe(6); // the page view, 3 clicks, the search and the error: nothing lost
    expect(stats.failedSends).toBeGreaterThan(0);
    expect(await page.evaluate(() => window.__trackerReports.length)).toBeGreaterThan(0);
    await page.close();
  });
});

declare global {
  interface Window {
    __hostClicks: number;
  }
}
