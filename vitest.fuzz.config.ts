import { defineConfig } from "vitest/config";

/**
 * The fuzz suite, alone: `npm run fuzz` is the long run, 10,000 cases per RPC and encoding, 4 in
 * flight (FUZZ_RUNS, FUZZ_CONCURRENCY and FUZZ_SEED in the environment override them); `npm test`
 * runs it after the other test files with 100 cases per RPC and encoding, one at a time.
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
