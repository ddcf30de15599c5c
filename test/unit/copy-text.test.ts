import { describe, expect, it } from "vitest";
import { copyText, copyTextValue, CopyTextEncoder } from "../../src/wire/copy-text.js";
import { seededRandom } from "../support/seeded-random.js";

describe("COPY text", () => {
  it("writes null as \\N, dates as UTC ISO-8601, objects as JSON, and escapes the format's own characters", () => {
    expect(copyTextValue(null)).toBe("\\N");
    expect(copyTextValue(undefined)).toBe("\\N");
    expect(copyTextValue(new Date(Date.UTC(2026, 0, 2, 3, 4, 5, 6)))).toBe("2026-01-02T03:04:05.006Z");
    expect(copyTextValue({ a: "x\ty" })).toBe('{"a":"x\\\\ty"}');
    expect(copyTextValue(1.5)).toBe("1.5");
    expect(copyTextValue(true)).toBe("true");
    expect(copyTextValue("\\N")).toBe("\\\\N"); // the text "\N", not null
    expect(copyTextValue("a\tb\nc\rd\\e")).toBe("a\\tb\\nc\\rd\\\\e");
  });

  it("escapes each special character when it is the only one in the value", () => {
    expect(["a\\b", "a\tb", "a\nb", "a\rb", "plain"].map(copyTextValue)).toEqual(["a\\\\b", "a\\tb", "a\\nb", "a\\rb", "plain"]);
  });

  it("escapes every value of a row, not only the first (no regex state between calls)", () => {
    expect(copyText([["a\tb", "c\td", null], ["x", "y\n", 3]]).toString()).toBe("a\\tb\tc\\td\t\\N\nx\ty\\n\t3\n");
  });

  it("encodes rows exactly as the value-by-value text, as UTF-8, growing past its first buffer", () => {
    const random = seededRandom(7);
    const rows: unknown[][] = Array.from({ length: 2_000 }, (_, i) => [
      `device-${i}-é✓😀`,
      new Date(1_700_000_000_000 + Math.floor(random() * 1e9)),
      { cpu: random() * 100, note: i % 7 === 0 ? "tab\there" : "ok" },
      i % 5 === 0 ? null : i * 0.25,
      i % 3 === 0,
    ]);
    const expected = rows.map((r) => r.map(copyTextValue).join("\t") + "\n").join("");
    const encoder = new CopyTextEncoder(64); // far too small: must grow many times
    for (const r of rows) encoder.row(r);
    expect(encoder.finish().toString("utf8")).toBe(expected);
    expect(copyText(rows).toString("utf8")).toBe(expected);
  });

  it("formats every timestamp exactly as toISOString: before 1970, around minute and year edges, beyond year 9999", () => {
    const random = seededRandom(11);
    const instants = [
      0, -1, -59_999, -60_000, -60_001, 59_999, 60_000, 999, 1_000, Date.UTC(1969, 11, 31, 23, 59, 59, 999),
      Date.UTC(2000, 1, 29, 12, 0, 0, 0), Date.UTC(2026, 11, 31, 23, 59, 59, 999), Date.UTC(10_000, 0, 1), Date.UTC(-1, 0, 1, 0, 0, 1, 5),
      ...Array.from({ length: 5_000 }, () => Math.floor((random() - 0.3) * 4e12)),
    ];
    const encoder = new CopyTextEncoder();
    for (const ms of instants) encoder.row([new Date(ms)]);
    expect(encoder.finish().toString().split("\n").slice(0, -1)).toEqual(instants.map((ms) => new Date(ms).toISOString()));
  });

  it("refuses an invalid date as toISOString does", () => {
    expect(() => copyText([[new Date(Number.NaN)]])).toThrow(RangeError);
  });
});
