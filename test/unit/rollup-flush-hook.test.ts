/**
 * The rollup flush hook names exactly the tables `applyRollups` writes rollups for: a table it
 * left out would have its flushes committed without the rollup upsert (the writer commits a COPY
 * into a table no hook names as one statement, without running hooks).
 */
import { describe, expect, it } from "vitest";
import { applyRollups, createRollupFlushHook } from "../../src/rollups/rollup-flush-hook.js";
import type { TableName } from "../../src/storage/table-specs.js";

/** Every raw table (`TableName`), written out: a new one fails the type check until listed. */
const TABLES = {
  api_request_logs: true,
  user_activities: true,
  error_logs: true,
  device_state_history: true,
  job_outcomes: true,
  device_metrics: true,
} satisfies Record<TableName, true>;

/** A row with every column any rollup reads. */
const row = {
  occurred_at: new Date(Date.UTC(2026, 10, 28, 12)),
  endpoint: "/analytics.v1.AnalyticsService/LogEvents",
  status_code: 0,
  response_time_ms: 1.5,
  category: "device",
  severity: "error",
  job_type: "sync",
  status: "completed",
  duration_ms: 10,
};

describe("createRollupFlushHook", () => {
  it.each(Object.keys(TABLES) as TableName[])("names %s exactly when applyRollups writes for it", async (table) => {
    const statements: string[] = [];
    await applyRollups({ query: async (sql: string) => (statements.push(sql), []) } as never, table, [row]);
    expect(createRollupFlushHook().tables.has(table)).toBe(statements.length > 0);
  });
});

describe("the flush hook's statements", () => {
  it("are all prepared, each name always with one text", async () => {
    const texts = new Map<string, Set<string>>();
    let unnamed = 0;
    const ctx = {
      query: async (sql: string, _params?: unknown[], options?: { name?: string }) => {
        if (!options?.name) unnamed++;
        else texts.set(options.name, (texts.get(options.name) ?? new Set()).add(sql));
        return [];
      },
    };
    for (let flush = 0; flush < 2; flush++) {
      for (const table of Object.keys(TABLES) as TableName[]) await applyRollups(ctx, table, [row, { ...row, occurred_at: new Date(Date.UTC(2026, 10, 29)) }]);
    }
    expect(unnamed).toBe(0);
    expect(texts.size).toBe(6); // three API levels, error occurrences, error and job rollups
    for (const [name, sqls] of texts) expect([name, sqls.size]).toEqual([name, 1]);
  });
});
