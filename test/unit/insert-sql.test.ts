import { describe, expect, it } from "vitest";
import { conflictClause, copyIn, MAX_BIND_PARAMS, multiRowInserts, unnestInsert } from "../../src/storage/insert-sql.js";
import type { TableSpec } from "../../src/storage/table-specs.js";

const spec = (idempotency: TableSpec["idempotency"], width = 3): TableSpec => ({
  table: "device_state_history",
  columns: Array.from({ length: width }, (_, i) => ({ name: i === 0 ? "id" : `c${i}`, type: i === 0 ? "uuid" : "text", json: false, fallback: null })),
  idempotency,
  key: idempotency === "primary_key" ? ["device_id", "occurred_at"] : ["id"],
});

describe("multiRowInserts", () => {
  it("numbers parameters row by row", () => {
    const [stmt] = multiRowInserts(spec("none", 2), [
      ["a", 1],
      ["b", 2],
    ]);
    expect(stmt!.sql).toBe(`insert into "device_state_history" ("id", "c1") values ($1, $2), ($3, $4)`);
    expect(stmt!.params).toEqual(["a", 1, "b", 2]);
  });

  it("chunks under the bind-parameter limit and the row cap", () => {
    const wide = spec("none", 20);
    const rows = Array.from({ length: 5000 }, () => Array.from({ length: 20 }, () => 0));
    const stmts = multiRowInserts(wide, rows, 10_000);
    expect(stmts.every((s) => s.params.length <= MAX_BIND_PARAMS)).toBe(true);
    expect(stmts.reduce((n, s) => n + s.params.length, 0)).toBe(5000 * 20);
    expect(multiRowInserts(wide, rows, 1000)).toHaveLength(5);
  });
});

describe("unnestInsert", () => {
  it("passes one typed array per column", () => {
    const stmt = unnestInsert(spec("event_id", 2), [
      ["a", "x"],
      ["b", null],
    ]);
    expect(stmt.sql).toBe(
      `insert into "device_state_history" ("id", "c1") select * from unnest($1::uuid[], $2::text[]) on conflict ("event_id") where "event_id" is not null do nothing returning "id"`,
    );
    expect(stmt.params).toEqual([
      ["a", "b"],
      ["x", null],
    ]);
  });
});

describe("conflictClause", () => {
  it("makes each kind of table idempotent in its own way", () => {
    expect(conflictClause(spec("none"))).toBe("");
    expect(conflictClause(spec("event_id"))).toContain(`on conflict ("event_id") where "event_id" is not null do nothing`);
    expect(conflictClause(spec("primary_key"))).toContain(`on conflict ("device_id", "occurred_at") do nothing returning "device_id"`);
  });
});

describe("COPY statement", () => {
  it("names the table's columns in order", () => {
    expect(copyIn(spec("none", 3))).toBe(`copy "device_state_history" ("id", "c1", "c2") from stdin`);
  });
});
