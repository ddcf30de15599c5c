/**
 * Binary COPY against a real PostgreSQL (COPY hangs the embedded database's socket, so this file
 * needs DATABASE_URL): for every table the writer copies into, the same rows stored through text
 * COPY and through binary COPY read back identically, and a batch binary cannot encode still goes
 * through `copyRows` as text.
 */
import { finished } from "node:stream/promises";
import pg from "pg";
import { from as copyFrom } from "pg-copy-streams";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openDatabase, type Database } from "../../src/db/database.js";
import { binaryCopyWriters, copyBinary } from "../../src/wire/copy-binary.js";
import { copyRows } from "../../src/storage/copy-rows.js";
import { copyText } from "../../src/wire/copy-text.js";
import type { SqlClient } from "../../src/db/sql-runner.js";
import { copyIn } from "../../src/storage/insert-sql.js";
import { tableSpecs, type ColumnSpec, type TableName, type TableSpec } from "../../src/storage/table-specs.js";
import { silentLogger } from "../../src/util/logger.js";
import { seededRandom } from "../support/seeded-random.js";
import { createTestDatabase, needsDatabaseUrl, type TestDatabase } from "../support/test-database.js";

/** Every table the writer copies into; the first test checks this is all of `tableSpecs`. */
const TABLES: readonly TableName[] = ["api_request_logs", "user_activities", "error_logs", "device_state_history", "job_outcomes", "device_metrics"];
const ROWS_PER_TABLE = 300;

const q = (name: string) => `"${name.replace(/"/g, '""')}"`;

describe.runIf(needsDatabaseUrl("binary COPY on PostgreSQL", "the embedded PGlite hangs on COPY over its socket"))("binary COPY on PostgreSQL", () => {
  let testDb: TestDatabase;
  let db: Database;
  let client: pg.Client;
  let specs: Record<TableName, TableSpec>;
  /** Nullable columns by table, from the database itself. */
  const nullable = new Map<string, Set<string>>();

  beforeAll(async () => {
    testDb = await createTestDatabase();
    db = await openDatabase(testDb.config, silentLogger); // applies the migrations
    specs = tableSpecs(db.orm);
    client = new pg.Client({ connectionString: testDb.config.databaseUrl });
    await client.connect();
    await client.query("set timezone = 'UTC'"); // timestamptz::text below in UTC
    const { rows } = await client.query<{ table_name: string; column_name: string }>(
      `select table_name, column_name from information_schema.columns where table_schema = current_schema() and is_nullable = 'YES'`,
    );
    for (const r of rows) {
      if (!nullable.has(r.table_name)) nullable.set(r.table_name, new Set());
      nullable.get(r.table_name)!.add(r.column_name);
    }
  });

  afterAll(async () => {
    await client?.end();
    await db?.close();
    await testDb?.drop();
  });

  /** Runs one COPY ... FROM STDIN with `data` on the raw client. */
  async function copy(statement: string, data: Buffer): Promise<void> {
    const stream = client.query(copyFrom(statement));
    stream.end(data);
    await finished(stream);
  }

  /** Empties the table (and restarts identities, so `api_request_logs` ids match between loads). */
  const truncate = (spec: TableSpec) => client.query(`truncate table ${q(spec.table)} restart identity`);

  /** Every stored row, each column cast to text in SQL, ordered by the table's key (else its identity). */
  async function readBack(spec: TableSpec): Promise<(string | null)[][]> {
    const order = spec.key.length > 0 ? spec.key.map(q).join(", ") : `"id"`;
    const { rows } = await client.query<(string | null)[]>({
      text: `select ${spec.columns.map((c) => `${q(c.name)}::text`).join(", ")} from ${q(spec.table)} order by ${order}`,
      rowMode: "array",
    });
    return rows;
  }

  /** A client for `copyRows` that records the statements it sends (to see text or binary). */
  function recording(statements: string[]): SqlClient {
    return {
      query: ((query: { text: string }) => {
        statements.push(query.text);
        return client.query(query as never);
      }) as never,
    };
  }

  /** `copyRows` in a transaction; returns the statements it sent. */
  async function copyRowsCommitted(spec: TableSpec, rows: readonly (readonly unknown[])[], binary = true): Promise<string[]> {
    const statements: string[] = [];
    await client.query("begin");
    try {
      await copyRows(recording(statements), spec, rows, binary);
      await client.query("commit");
    } catch (err) {
      await client.query("rollback");
      throw err;
    }
    return statements;
  }

  it("covers every table of tableSpecs, and each has binary writers for all its columns", () => {
    expect(Object.keys(specs).sort()).toEqual([...TABLES].sort());
    for (const spec of Object.values(specs)) {
      // A column type without a binary writer fails here: add its writer (or accept text COPY for that table).
      expect(binaryCopyWriters(spec.columns), `${spec.table}: ${spec.columns.map((c) => c.type).join(", ")}`).toBeDefined();
    }
  });

  it.each(TABLES)("stores the same %s rows through binary COPY as through text COPY", async (table) => {
    const spec = specs[table];
    const writers = binaryCopyWriters(spec.columns);
    expect(writers).toBeDefined();
    const rows = randomRows(spec, nullable.get(table) ?? new Set(), ROWS_PER_TABLE, seededRandom(TABLES.indexOf(table) + 101));

    await truncate(spec);
    await copy(copyIn(spec), copyText(rows));
    const asText = await readBack(spec);
    expect(asText).toHaveLength(rows.length);

    // What the text reading must be, where the SQL text of a value is easy to predict exactly.
    const keyOrder = spec.key.length > 0 ? sortedLike(asText, rows, spec) : rows;
    for (let r = 0; r < rows.length; r++) {
      spec.columns.forEach((col, c) => {
        const expected = expectedText(col, keyOrder[r]![c]);
        if (expected !== undefined) expect(asText[r]![c], `${table}.${col.name} row ${r}`).toBe(expected);
      });
    }

    await truncate(spec);
    await copy(`${copyIn(spec)} with (format binary)`, copyBinary(writers!, rows));
    const asBinary = await readBack(spec);
    expect(asBinary).toEqual(asText);

    // And the production path: copyRows picks binary for these rows and stores the same.
    await truncate(spec);
    const statements = await copyRowsCommitted(spec, rows);
    expect(statements).toEqual([`${copyIn(spec)} with (format binary)`]);
    expect(await readBack(spec)).toEqual(asText);

    // With the fast path off (ANALYTICS_WIRE_FAST_PATH=false): text COPY, the same rows.
    await truncate(spec);
    expect(await copyRowsCommitted(spec, rows, false)).toEqual([copyIn(spec)]);
    expect(await readBack(spec)).toEqual(asText);
  });

  it("sends a batch with a text timestamp as text COPY, and PostgreSQL stores every value as before", async () => {
    const spec = specs.device_state_history;
    const rows = [
      rowOf(spec, { id: "0190A4B2-C3D4-7E8F-9A0B-000000000001", occurred_at: new Date(Date.UTC(2026, 0, 1, 0, 0, 0, 5)), device_id: "tab\there \\N", reason: "a\\b\nc\rd" }),
      rowOf(spec, { id: "0190a4b2-c3d4-7e8f-9a0b-000000000002", occurred_at: "2026-01-01 00:00:00+00", reason: null, extra_data: '{"é":"😀\\n","t":"\\t"}' }),
      rowOf(spec, { id: "0190a4b2-c3d4-7e8f-9a0b-000000000003", occurred_at: new Date(Date.UTC(1969, 11, 31, 23, 59, 59, 999)), device_id: "\\N", reason: null }),
    ];
    expect(() => copyBinary(binaryCopyWriters(spec.columns)!, rows)).toThrow();

    await truncate(spec);
    const statements = await copyRowsCommitted(spec, rows);
    expect(statements).toEqual([copyIn(spec)]); // text: no "with (format binary)"
    const { rows: stored } = await client.query<Record<string, string | null>>(
      `select id::text, occurred_at::text, device_id, reason, extra_data::text from device_state_history order by id`,
    );
    expect(stored).toEqual([
      { id: "0190a4b2-c3d4-7e8f-9a0b-000000000001", occurred_at: "2026-01-01 00:00:00.005+00", device_id: "tab\there \\N", reason: "a\\b\nc\rd", extra_data: '{"n": 1}' },
      { id: "0190a4b2-c3d4-7e8f-9a0b-000000000002", occurred_at: "2026-01-01 00:00:00+00", device_id: "device-1", reason: null, extra_data: '{"t": "\\t", "é": "😀\\n"}' },
      { id: "0190a4b2-c3d4-7e8f-9a0b-000000000003", occurred_at: "1969-12-31 23:59:59.999+00", device_id: "\\N", reason: null, extra_data: '{"n": 1}' },
    ]);
  });

  it("sends dates binary cannot hold to the microsecond (beyond ±285 years of 2000) as text, stored exactly", async () => {
    const spec = specs.device_metrics;
    const dates = [new Date(Date.UTC(2300, 5, 1, 12, 0, 0, 250)), new Date(Date.UTC(1650, 0, 1, 0, 0, 0, 1)), new Date(Date.UTC(2026, 0, 1))];
    const rows = dates.map((d, i) => rowOf(spec, { device_id: `far-${i}`, occurred_at: d }));
    await truncate(spec);
    expect(await copyRowsCommitted(spec, rows)).toEqual([copyIn(spec)]);
    const { rows: stored } = await client.query<{ occurred_at: string }>(`select occurred_at::text from device_metrics order by device_id`);
    expect(stored.map((r) => r.occurred_at)).toEqual(["2300-06-01 12:00:00.25+00", "1650-01-01 00:00:00.001+00", "2026-01-01 00:00:00+00"]);
  });

  it("refuses a row with a value missing, as text COPY always did (binary would store a null)", async () => {
    const spec = specs.device_state_history;
    const full = rowOf(spec, { id: "0190a4b2-c3d4-7e8f-9a0b-0000000000aa" });
    expect(spec.columns.at(-1)!.name).toBe("extra_data"); // a nullable column: a padded null would be accepted
    const short = rowOf(spec, { id: "0190a4b2-c3d4-7e8f-9a0b-0000000000bb" }).slice(0, -1);
    await truncate(spec);
    await expect(copyRowsCommitted(spec, [full, short])).rejects.toThrow(/missing data/);
    expect(await readBack(spec)).toEqual([]);
  });

  it("stores -0 in a double precision column as 0, as text COPY does", async () => {
    const spec = specs.api_request_logs;
    const rows = [rowOf(spec, { response_time_ms: -0 }), rowOf(spec, { response_time_ms: 0.5 })];
    await truncate(spec);
    expect(await copyRowsCommitted(spec, rows)).toEqual([`${copyIn(spec)} with (format binary)`]);
    const { rows: stored } = await client.query<{ t: string }>(`select response_time_ms::text as t from api_request_logs order by id`);
    expect(stored.map((r) => r.t)).toEqual(["0", "0.5"]);
  });
});

/** A row of `spec` (values in column order) from a few named values; the rest are plain valid values. */
function rowOf(spec: TableSpec, values: Record<string, unknown>): unknown[] {
  return spec.columns.map((col) => {
    if (col.name in values) return values[col.name];
    if (col.fallback !== null) return col.fallback;
    switch (baseType(col.type)) {
      case "uuid":
        return col.name === "event_id" ? null : "0190a4b2-c3d4-7e8f-9a0b-0000000000ff";
      case "timestamptz":
        return new Date(Date.UTC(2026, 0, 1));
      case "jsonb":
        return '{"n":1}';
      case "text":
        return col.name === "device_id" ? "device-1" : "x";
      case "smallint":
      case "int":
        return 0;
      case "double precision":
        return 1.5;
      case "boolean":
        return false;
      default:
        throw new Error(`no value for ${col.type}`);
    }
  });
}

const baseType = (type: string) => type.toLowerCase().replace(/\s*\(\d+(,\s*\d+)?\)$/, "");

/** `rows` in the order PostgreSQL returned them (`readBack` orders by the key), matched on the key's text. */
function sortedLike(read: (string | null)[][], rows: readonly (readonly unknown[])[], spec: TableSpec): (readonly unknown[])[] {
  const keyIdx = spec.key.map((k) => spec.columns.findIndex((c) => c.name === k));
  const keyOf = (values: readonly unknown[], text: boolean) =>
    keyIdx.map((i) => (text ? values[i] : expectedText(spec.columns[i]!, values[i]))).join("\u0001");
  const byKey = new Map(rows.map((r) => [keyOf(r, false), r]));
  return read.map((r) => {
    const row = byKey.get(keyOf(r, true));
    if (!row) throw new Error(`a stored row matches no row sent: ${keyOf(r, true)}`);
    return row;
  });
}

/** PostgreSQL's `value::text` for the types whose text is easy to predict; undefined for the others (double, jsonb). */
function expectedText(col: ColumnSpec, v: unknown): string | null | undefined {
  if (v === null || v === undefined) return null;
  switch (baseType(col.type)) {
    case "text":
      return v as string;
    case "uuid":
      return (v as string).toLowerCase();
    case "smallint":
    case "int":
      return String(v);
    case "boolean":
      return v ? "true" : "false";
    case "timestamptz": {
      // 2026-01-02 03:04:05.006+00, trailing zeros of the fraction dropped (TimeZone is UTC).
      const iso = (v as Date).toISOString();
      const fraction = iso.slice(20, 23).replace(/0+$/, "");
      return `${iso.slice(0, 10)} ${iso.slice(11, 19)}${fraction ? `.${fraction}` : ""}+00`;
    }
    default:
      return undefined;
  }
}

/** Pieces of text that COPY's text format, UTF-8 and SQL give a meaning to (no NUL: PostgreSQL refuses it either way). */
const TEXT_PIECES = ["\t", "\n", "\r", "\\", "\\N", "\\.", "\\t", "é", "😀", "日本語", "\u00a0", "\u2028", '"', "'", ",", " ", "a", "NULL", "{", "}", "[", "x"];
const WHOLE_TEXTS = ["", "\\N", "\\.", "\\", "\t", "\n", "\r\n", " ", "null", "😀", "\uffff", "a".repeat(3000)];

/** `count` rows of random values of each column's JavaScript type (nulls where the column allows them). */
function randomRows(spec: TableSpec, nullableColumns: ReadonlySet<string>, count: number, random: () => number): unknown[][] {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;
  const text = (): string =>
    random() < 0.15 ? pick(WHOLE_TEXTS) : Array.from({ length: Math.floor(random() * 40) }, () => pick(TEXT_PIECES)).join("");
  const int = (min: number, max: number, bounds: number[]) => (random() < 0.3 ? pick(bounds) : min + Math.floor(random() * (max - min + 1)));
  const DATES = [
    Date.UTC(1970, 0, 1), -1, Date.UTC(1969, 11, 31, 23, 59, 59, 999), Date.UTC(2000, 0, 1), Date.UTC(1999, 11, 31, 23, 59, 59, 999),
    Date.UTC(1900, 1, 28, 23, 59, 59, 1), Date.UTC(1750, 0, 1, 0, 0, 0, 1), Date.UTC(2250, 11, 31, 23, 59, 59, 999), Date.UTC(2026, 5, 15, 12, 30, 0, 120),
  ];
  const date = () => new Date(random() < 0.2 ? pick(DATES) : Date.UTC(1750, 0, 1) + Math.floor(random() * (Date.UTC(2250, 0, 1) - Date.UTC(1750, 0, 1))));
  const DOUBLES = [
    Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, 0, -0, Number.MIN_VALUE, -Number.MIN_VALUE, Number.MAX_VALUE,
    -Number.MAX_VALUE, 0.1, 1 / 3, 1e-300, 123_456_789.125, Number.MAX_SAFE_INTEGER, 2 ** 53 + 2, 1e21, 1e-7,
  ];
  const double = () => (random() < 0.3 ? pick(DOUBLES) : (random() - 0.5) * 10 ** Math.floor(random() * 40 - 20));
  const jsonValue = (depth: number): unknown => {
    const r = random();
    if (depth > 2 || r < 0.3) return pick<unknown>([text(), int(-1e9, 1e9, [0]), random() * 1e6, 1e300, -1.5e-300, true, false, null, "é😀\\\"\n\t\u0001"]);
    if (r < 0.6) return Array.from({ length: Math.floor(random() * 4) }, () => jsonValue(depth + 1));
    return Object.fromEntries(Array.from({ length: Math.floor(random() * 5) }, () => [text(), jsonValue(depth + 1)]));
  };
  const JSON_TEXTS = ['{"a":1,"a":2}', '  { "spaced" :\n\t[ 1 , 2.50 ] }  ', '"top-level string"', "123.4500", "null", "[]", "{}", '{"u":"\\u00e9\\ud83d\\ude00\\n\\t\\\\\\""}', '{"big":12345678901234567890123}'];
  const json = () => (random() < 0.15 ? pick(JSON_TEXTS) : JSON.stringify(jsonValue(0), null, random() < 0.2 ? 2 : undefined));
  const uuid = (i: number) => {
    const hex = Array.from({ length: 20 }, () => "0123456789abcdef"[Math.floor(random() * 16)]).join("") + i.toString(16).padStart(12, "0");
    const s = `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
    return random() < 0.3 ? s.toUpperCase() : s;
  };

  return Array.from({ length: count }, (_, i) =>
    spec.columns.map((col) => {
      if (nullableColumns.has(col.name) && random() < 0.15) return null;
      switch (baseType(col.type)) {
        case "text":
          return spec.key.includes(col.name) ? `${text()}#${i}` : text(); // keys unique
        case "uuid":
          return uuid(i); // unique: `id` is the key, `event_id` has a unique index
        case "timestamptz":
          return date();
        case "jsonb":
          return json();
        case "smallint":
          return int(-32_768, 32_767, [-32_768, 32_767, 0, -1]);
        case "int":
          return int(-2_147_483_648, 2_147_483_647, [-2_147_483_648, 2_147_483_647, 0, -1]);
        case "double precision":
          return double(); // PostgreSQL's double precision takes NaN and ±Infinity
        case "boolean":
          return random() < 0.5;
        default:
          throw new Error(`no random values for ${spec.table}.${col.name} of type ${col.type}: add them here`);
      }
    }),
  );
}
