/**
 * A flush's INSERT statements each carry a bounded amount of parameter text: the embedded
 * database runs PostgreSQL on the server's thread, so one statement holding a whole flush of
 * hostile rows (4 MiB of jsonb) blocked every other call for ~300 ms while it was parsed.
 */
import { describe, expect, it } from "vitest";
import { chunkByChars, insertStatements, MAX_STATEMENT_CHARS } from "../../src/storage/insert-sql.js";
import type { TableSpec } from "../../src/storage/table-specs.js";

const spec: TableSpec = {
  table: "user_activities",
  columns: [
    { name: "id", type: "uuid", json: false, fallback: null },
    { name: "extra_data", type: "jsonb", json: true, fallback: null },
  ],
  idempotency: "event_id",
  key: ["id"],
} as TableSpec;

/** Parameter characters of a statement's values (arrays for unnest). */
const chars = (params: unknown[]): number =>
  params.flat().reduce<number>((n, v) => n + (typeof v === "string" ? v.length : 8), 0);

describe("insertStatements: statement size", () => {
  // 150 rows of ~26k characters: a Struct of 11,000 backslashes, as JSON (each written twice).
  const big = JSON.stringify({ a: "\\".repeat(13_000) });
  const rows = Array.from({ length: 150 }, (_, i) => [`00000000-0000-7000-8000-${String(i).padStart(12, "0")}`, big]);

  for (const strategy of ["unnest", "multi-row"] as const) {
    it(`${strategy}: chunks a flush of large rows under MAX_STATEMENT_CHARS, every row once and in order`, () => {
      const stmts = insertStatements(spec, rows, strategy);
      expect(stmts.length).toBeGreaterThan(1);
      for (const s of stmts) expect(chars(s.params)).toBeLessThanOrEqual(MAX_STATEMENT_CHARS);
      const ids = stmts.flatMap((s) => (strategy === "unnest" ? (s.params[0] as string[]) : s.params.filter((_, i) => i % 2 === 0)));
      expect(ids).toEqual(rows.map((r) => r[0]));
    });

    it(`${strategy}: ordinary rows still go in one statement`, () => {
      const small = Array.from({ length: 4000 }, (_, i) => [`id-${i}`, '{"k":"v","n":1}']);
      expect(insertStatements(spec, small, strategy)).toHaveLength(strategy === "unnest" ? 1 : 4);
    });
  }

  it("chunkByChars puts a row larger than the budget alone, and loses none", () => {
    const huge = ["x".repeat(MAX_STATEMENT_CHARS * 2)];
    const chunks = chunkByChars([["a"], huge, ["b"], ["c"]]);
    expect(chunks).toEqual([[["a"]], [huge], [["b"], ["c"]]]);
    expect(chunkByChars([])).toEqual([]);
  });
});
