/**
 * Where Debian's Chromium is, and whether browser tests run: with `CI=true` they always run (and
 * fail without Chromium); elsewhere, without Chromium, they are skipped with one line saying how to
 * run them, so `npm test` passes on a fresh clone.
 */
import { existsSync } from "node:fs";

/** The Chromium binary browser tests launch (`CHROMIUM_PATH`, else Debian's). */
export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";

/** The flags every browser test launches Chromium with (headless, no sandbox, no network of its own). */
export const CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"];

/** How to get Chromium, for skip lines and errors. */
const HOW = `install Debian's Chromium (\`apt-get install -y chromium\`) or set CHROMIUM_PATH`;

/**
 * Whether the browser tests of `suite` run here. Prints the skip line when they do not; throws
 * under `CI=true` when Chromium is missing (CI must run them).
 */
export function browserTestsRun(suite: string): boolean {
  if (existsSync(CHROMIUM_PATH)) return true;
  if (process.env.CI === "true") throw new Error(`Chromium not found at ${CHROMIUM_PATH}: ${HOW}. Browser tests are required with CI=true.`);
  console.log(`skipped: ${suite} (no Chromium at ${CHROMIUM_PATH}; to run: ${HOW}, or run with CI=true to require it)`);
  return false;
}
