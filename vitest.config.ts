import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts", "sdk/test/**/*.test.ts"],
    // The fuzz suite runs after the rest, alone on the machine (`npm test` runs it with
    // vitest.fuzz.config.ts): it measures health-check latency, which another test file's load
    // beside it would distort.
    exclude: ["test/fuzz/hostile-rpcs.test.ts", "**/node_modules/**"],
    // End-to-end tests start real servers and databases; give them room on a shared 2-core box.
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Test files run in separate forks; each one makes its own database or schema.
    pool: "forks",
    maxWorkers: 2,
  },
});
