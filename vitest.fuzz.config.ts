import { defineConfig } from "vitest/config";

/**
 * `npm run fuzz`: the fuzz suite's long run, 10,000 cases per RPC and encoding (FUZZ_RUNS and
 * FUZZ_SEED in the environment override the run's size and seed). `npm test` runs the same file
 * with a few hundred cases per RPC.
 */
export default defineConfig({
  test: {
    include: ["test/fuzz/**/*.test.ts"],
    env: { FUZZ_RUNS: process.env.FUZZ_RUNS ?? "10000", FUZZ_CONCURRENCY: process.env.FUZZ_CONCURRENCY ?? "4" },
    // Each RPC and encoding's run sets its own limit (FUZZ_PROPERTY_LIMIT_S); this is the outer bound.
    testTimeout: 4 * 3600_000,
    hookTimeout: 300_000,
    pool: "forks",
    maxWorkers: 1,
  },
});
