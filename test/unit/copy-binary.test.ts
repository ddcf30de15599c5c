import { describe, expect, it } from "vitest";
import { BinaryCopyEncoder, binaryCopyWriters, copyBinary, UnsupportedCopyValue } from "../../src/wire/copy-binary.js";
import { seededRandom } from "../support/seeded-random.js";

/** Signature `PGCOPY\n\377\r\n\0`, flags 0 (no OIDs), header extension length 0. */
const HEADER_HEX = "5047434f50590aff0d0a00" + "00000000" + "00000000";
/** The file trailer: a field count of -1. */
const TRAILER_HEX = "ffff";
const NULL_FIELD_HEX = "ffffffff";

const int16Hex = (n: number) => {
  const b = Buffer.alloc(2);
  b.writeInt16BE(n);
  return b.toString("hex");
};
const int32Hex = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n);
  return b.toString("hex");
};
/** One field: its int32 length, then its bytes. */
const fieldHex = (payloadHex: string) => int32Hex(payloadHex.length / 2) + payloadHex;
/** One row: its int16 field count, then its fields. */
const rowHex = (...fields: string[]) => int16Hex(fields.length) + fields.join("");
const dataHex = (...rows: string[]) => HEADER_HEX + rows.join("") + TRAILER_HEX;
const utf8Hex = (s: string) => Buffer.from(s, "utf8").toString("hex");

/** Writers for columns of `types`, which must all have one. */
function writersOf(...types: string[]) {
  const writers = binaryCopyWriters(types.map((type) => ({ type })));
  if (!writers) throw new Error(`no binary writers for ${types.join(", ")}`);
  return writers;
}

/** The binary COPY data of one row holding `value` in a column of `type`, as hex. */
const oneValueHex = (type: string, value: unknown) => copyBinary(writersOf(type), [[value]]).toString("hex");

/** `microseconds` since 2000-01-01 UTC as an int64, as hex (computed with BigInt, independently of the encoder). */
const int64Hex = (n: bigint) => {
  const b = Buffer.alloc(8);
  b.writeBigInt64BE(n);
  return b.toString("hex");
};
const PG_EPOCH_MS = Date.UTC(2000, 0, 1);
const timestampHex = (ms: number) => int64Hex(BigInt(ms - PG_EPOCH_MS) * 1000n);

/** A minimal reader of PostgreSQL's binary COPY format: every row's fields (null for SQL NULL). */
function decodeBinaryCopy(data: Buffer): (Buffer | null)[][] {
  expect(data.subarray(0, 19).toString("hex")).toBe(HEADER_HEX);
  const rows: (Buffer | null)[][] = [];
  let p = 19;
  for (;;) {
    const count = data.readInt16BE(p);
    p += 2;
    if (count === -1) break;
    const fields: (Buffer | null)[] = [];
    for (let f = 0; f < count; f++) {
      const length = data.readInt32BE(p);
      p += 4;
      if (length === -1) {
        fields.push(null);
        continue;
      }
      expect(length).toBeGreaterThanOrEqual(0);
      fields.push(data.subarray(p, p + length));
      p += length;
    }
    rows.push(fields);
  }
  expect(p).toBe(data.length); // nothing after the trailer
  return rows;
}

describe("COPY binary", () => {
  describe("framing", () => {
    it("writes the signature, zero flags and an empty header extension, then the int16 -1 trailer", () => {
      expect(copyBinary(writersOf("text"), []).toString("hex")).toBe(HEADER_HEX + TRAILER_HEX);
      expect(HEADER_HEX.length / 2).toBe(19);
      const encoder = new BinaryCopyEncoder(1); // smaller than the header itself
      expect(encoder.finish().toString("hex")).toBe(HEADER_HEX + TRAILER_HEX);
    });

    it("starts each row with its int16 field count and writes null and undefined as length -1", () => {
      expect(copyBinary(writersOf("text", "int", "uuid"), [[null, undefined, null]]).toString("hex")).toBe(
        dataHex(rowHex(NULL_FIELD_HEX, NULL_FIELD_HEX, NULL_FIELD_HEX)),
      );
      expect(copyBinary(writersOf("text", "boolean"), [["a", true], [null, false]]).toString("hex")).toBe(
        dataHex(rowHex(fieldHex("61"), fieldHex("01")), rowHex(NULL_FIELD_HEX, fieldHex("00"))),
      );
    });

    it("refuses a row with missing or extra values instead of padding or dropping them (text COPY rejects both)", () => {
      const writers = writersOf("text", "int");
      expect(() => copyBinary(writers, [["a"]])).toThrow(UnsupportedCopyValue);
      expect(() => copyBinary(writers, [["a", 1, 2]])).toThrow(UnsupportedCopyValue);
      expect(() => copyBinary(writers, [["a", 1], []])).toThrow(UnsupportedCopyValue);
    });
  });

  describe("values", () => {
    it("writes text as raw UTF-8 (no COPY escapes), the empty string as length 0", () => {
      for (const s of ["plain", "é✓ 😀 日本", "tab\there\nnew\\line \\N \r", "\"quotes\" 'too'"]) {
        expect(oneValueHex("text", s)).toBe(dataHex(rowHex(fieldHex(utf8Hex(s)))));
      }
      expect(oneValueHex("text", "")).toBe(dataHex(rowHex("00000000")));
      expect(oneValueHex("text", "😀")).toBe(dataHex(rowHex("00000004" + "f09f9880"))); // 4 bytes, 2 UTF-16 units
      expect(oneValueHex("text", "é")).toBe(dataHex(rowHex("00000002" + "c3a9")));
      // Short ASCII strings are copied by a loop, others by the native encoder: the same bytes
      // either way, at the length boundary, with a non-ASCII character last, DEL, a lone surrogate.
      for (const n of [63, 64, 65, 200]) {
        for (const s of ["a".repeat(n), "a".repeat(n - 1) + "é", "\x7f".repeat(n), "a".repeat(n - 1) + "\ud800"]) {
          expect(oneValueHex("text", s), `${n}: ${JSON.stringify(s.slice(-2))}`).toBe(dataHex(rowHex(fieldHex(utf8Hex(s)))));
          expect(oneValueHex("jsonb", s)).toBe(dataHex(rowHex(fieldHex("01" + utf8Hex(s)))));
        }
      }
    });

    it("writes varchar, character varying and json as their text", () => {
      const s = "x\t😀é";
      for (const type of ["varchar", "varchar(64)", "character varying", "character varying(8)", "json", "TEXT"]) {
        expect(oneValueHex(type, s), type).toBe(dataHex(rowHex(fieldHex(utf8Hex(s)))));
      }
    });

    it("writes jsonb as version byte 1 then the JSON text", () => {
      const json = '{"a":"é😀\\n\\"q\\"","n":[1,2.5,null]}';
      expect(oneValueHex("jsonb", json)).toBe(dataHex(rowHex(fieldHex("01" + utf8Hex(json)))));
      expect(oneValueHex("jsonb", "{}")).toBe(dataHex(rowHex("00000003" + "01" + "7b7d")));
      expect(oneValueHex("jsonb", "")).toBe(dataHex(rowHex("00000001" + "01")));
    });

    it("writes a UUID in either case as its 16 bytes", () => {
      const bytes = "0190a4b2c3d47e8f9a0bcdef01234567";
      expect(oneValueHex("uuid", "0190a4b2-c3d4-7e8f-9a0b-cdef01234567")).toBe(dataHex(rowHex(fieldHex(bytes))));
      expect(oneValueHex("uuid", "0190A4B2-C3D4-7E8F-9A0B-CDEF01234567")).toBe(dataHex(rowHex(fieldHex(bytes))));
      expect(oneValueHex("uuid", "0190a4B2-c3D4-7e8F-9a0B-cDeF01234567")).toBe(dataHex(rowHex(fieldHex(bytes))));
      expect(oneValueHex("uuid", "00000000-0000-0000-0000-000000000000")).toBe(dataHex(rowHex(fieldHex("00".repeat(16)))));
      expect(oneValueHex("uuid", "ffffffff-ffff-ffff-ffff-ffffffffffff")).toBe(dataHex(rowHex(fieldHex("ff".repeat(16)))));
    });

    it("writes timestamptz as int64 microseconds since 2000-01-01 UTC, also before 2000 and before 1970", () => {
      const ts = (ms: number) => oneValueHex("timestamptz", new Date(ms));
      // Literal values, worked out by hand.
      expect(ts(PG_EPOCH_MS)).toBe(dataHex(rowHex(fieldHex("0000000000000000"))));
      expect(ts(PG_EPOCH_MS + 1)).toBe(dataHex(rowHex(fieldHex("00000000000003e8")))); // +1 ms = 1000 µs
      expect(ts(PG_EPOCH_MS - 1)).toBe(dataHex(rowHex(fieldHex("fffffffffffffc18")))); // -1000 µs
      expect(ts(0)).toBe(dataHex(rowHex(fieldHex("fffca2fec4c82000")))); // 1970-01-01: -946684800000000 µs
      expect(ts(-1)).toBe(dataHex(rowHex(fieldHex("fffca2fec4c81c18"))));
      expect(ts(Date.UTC(2026, 0, 1, 0, 0, 0, 6))).toBe(dataHex(rowHex(fieldHex("0002ea470ae87770")))); // 820540800006000 µs
      // Around the 32-bit split of the int64 and across a wide range, against a BigInt computation.
      const random = seededRandom(3);
      const instants = [
        PG_EPOCH_MS + 4_294_967, PG_EPOCH_MS + 4_294_968, PG_EPOCH_MS - 4_294_967, PG_EPOCH_MS - 4_294_968,
        Date.UTC(1969, 11, 31, 23, 59, 59, 999), Date.UTC(1999, 11, 31, 23, 59, 59, 999), Date.UTC(1900, 1, 28, 12, 0, 0, 1),
        Date.UTC(1750, 0, 1), Date.UTC(2250, 11, 31, 23, 59, 59, 999),
        ...Array.from({ length: 2_000 }, () => PG_EPOCH_MS + Math.round((random() - 0.5) * 2 * 8e12)),
      ];
      const writers = writersOf("timestamptz(6)");
      const got = decodeBinaryCopy(copyBinary(writers, instants.map((ms) => [new Date(ms)])));
      expect(got.map((r) => r[0]!.toString("hex"))).toEqual(instants.map(timestampHex));
      expect(oneValueHex("timestamp with time zone", new Date(0))).toBe(ts(0));
    });

    it("writes booleans as one byte", () => {
      expect(oneValueHex("boolean", true)).toBe(dataHex(rowHex("00000001" + "01")));
      expect(oneValueHex("boolean", false)).toBe(dataHex(rowHex("00000001" + "00")));
      expect(oneValueHex("bool", true)).toBe(oneValueHex("boolean", true));
    });

    it("writes smallint, int and bigint big-endian at their widths, bounds and negatives included", () => {
      for (const type of ["smallint", "int2"]) {
        expect(oneValueHex(type, 0)).toBe(dataHex(rowHex("00000002" + "0000")));
        expect(oneValueHex(type, -1)).toBe(dataHex(rowHex("00000002" + "ffff")));
        expect(oneValueHex(type, -32_768)).toBe(dataHex(rowHex("00000002" + "8000")));
        expect(oneValueHex(type, 32_767)).toBe(dataHex(rowHex("00000002" + "7fff")));
        expect(oneValueHex(type, -0)).toBe(dataHex(rowHex("00000002" + "0000")));
      }
      for (const type of ["integer", "int", "int4"]) {
        expect(oneValueHex(type, 1)).toBe(dataHex(rowHex("00000004" + "00000001")));
        expect(oneValueHex(type, -2)).toBe(dataHex(rowHex("00000004" + "fffffffe")));
        expect(oneValueHex(type, -2_147_483_648)).toBe(dataHex(rowHex("00000004" + "80000000")));
        expect(oneValueHex(type, 2_147_483_647)).toBe(dataHex(rowHex("00000004" + "7fffffff")));
      }
      for (const type of ["bigint", "int8"]) {
        expect(oneValueHex(type, 1)).toBe(dataHex(rowHex("00000008" + "0000000000000001")));
        expect(oneValueHex(type, -1)).toBe(dataHex(rowHex("00000008" + "ffffffffffffffff")));
        expect(oneValueHex(type, Number.MAX_SAFE_INTEGER)).toBe(dataHex(rowHex("00000008" + "001fffffffffffff")));
        expect(oneValueHex(type, Number.MIN_SAFE_INTEGER)).toBe(dataHex(rowHex("00000008" + "ffe0000000000001")));
        expect(oneValueHex(type, 2n ** 63n - 1n)).toBe(dataHex(rowHex("00000008" + "7fffffffffffffff")));
        expect(oneValueHex(type, -(2n ** 63n))).toBe(dataHex(rowHex("00000008" + "8000000000000000")));
        expect(oneValueHex(type, -0)).toBe(dataHex(rowHex("00000008" + "0000000000000000")));
      }
    });

    it("writes double precision as IEEE 754 binary64: NaN, ±Infinity, extremes; -0 as 0 like text COPY", () => {
      for (const type of ["double precision", "double", "float8"]) {
        const d = (v: number) => oneValueHex(type, v);
        expect(d(1.5)).toBe(dataHex(rowHex("00000008" + "3ff8000000000000")));
        expect(d(-2.5)).toBe(dataHex(rowHex("00000008" + "c004000000000000")));
        expect(d(Number.NaN)).toBe(dataHex(rowHex("00000008" + "7ff8000000000000")));
        expect(d(Number.POSITIVE_INFINITY)).toBe(dataHex(rowHex("00000008" + "7ff0000000000000")));
        expect(d(Number.NEGATIVE_INFINITY)).toBe(dataHex(rowHex("00000008" + "fff0000000000000")));
        expect(d(Number.MIN_VALUE)).toBe(dataHex(rowHex("00000008" + "0000000000000001")));
        expect(d(Number.MAX_VALUE)).toBe(dataHex(rowHex("00000008" + "7fefffffffffffff")));
        // Text COPY sends String(-0) = "0": PostgreSQL stored 0, so binary must too.
        expect(d(-0)).toBe(dataHex(rowHex("00000008" + "0000000000000000")));
        expect(d(0)).toBe(dataHex(rowHex("00000008" + "0000000000000000")));
      }
    });

    it("writes real as IEEE 754 binary32 when float4 holds the value exactly; -0 as 0", () => {
      for (const type of ["real", "float4"]) {
        const r = (v: number) => oneValueHex(type, v);
        expect(r(1.5)).toBe(dataHex(rowHex("00000004" + "3fc00000")));
        expect(r(-2.5)).toBe(dataHex(rowHex("00000004" + "c0200000")));
        expect(r(Number.NaN)).toBe(dataHex(rowHex("00000004" + "7fc00000")));
        expect(r(Number.POSITIVE_INFINITY)).toBe(dataHex(rowHex("00000004" + "7f800000")));
        expect(r(Number.NEGATIVE_INFINITY)).toBe(dataHex(rowHex("00000004" + "ff800000")));
        expect(r(2 ** -149)).toBe(dataHex(rowHex("00000004" + "00000001"))); // smallest subnormal
        expect(r(Math.fround(3.4028235e38))).toBe(dataHex(rowHex("00000004" + "7f7fffff"))); // FLT_MAX
        expect(r(Math.fround(0.1))).toBe(dataHex(rowHex("00000004" + "3dcccccd")));
        expect(r(-0)).toBe(dataHex(rowHex("00000004" + "00000000")));
      }
    });
  });

  describe("column types", () => {
    it("has no writer for a type it does not know, so the table goes as text", () => {
      for (const type of ["numeric", "numeric(10,2)", "interval", "bytea", "timestamp", "date", "inet", "text[]", "uuid[]", "money", ""]) {
        expect(binaryCopyWriters([{ type }]), type).toBeUndefined();
        expect(binaryCopyWriters([{ type: "text" }, { type }, { type: "int" }]), type).toBeUndefined();
      }
    });

    it("knows every spelling with a length or precision, and any case", () => {
      for (const type of ["varchar(64)", "character varying(255)", "timestamptz(6)", "timestamptz(3)", "VARCHAR(10)", "Double Precision", "UUID"]) {
        expect(binaryCopyWriters([{ type }]), type).toHaveLength(1);
      }
      expect(binaryCopyWriters([])).toEqual([]);
    });
  });

  describe("values without a binary form here", () => {
    /** Asserts `value` in a `type` column throws UnsupportedCopyValue, also as the last value of a longer batch. */
    function refuses(type: string, value: unknown, good: unknown): void {
      const writers = writersOf(type);
      let thrown: unknown;
      try {
        copyBinary(writers, [[good], [good], [value]]);
      } catch (err) {
        thrown = err;
      }
      expect(thrown, `${type}: ${String(value)}`).toBeInstanceOf(UnsupportedCopyValue);
      expect((thrown as Error).name).toBe("UnsupportedCopyValue");
      expect(thrown).toBeInstanceOf(Error);
      expect(() => copyBinary(writers, [[good]]), `${type}: ${String(good)}`).not.toThrow();
    }

    it("refuses a JavaScript type the column does not take", () => {
      refuses("text", 1, "a");
      refuses("text", true, "a");
      refuses("text", { a: 1 }, "a");
      refuses("text", new Date(0), "a");
      refuses("varchar(8)", 12n, "a");
      refuses("json", { a: 1 }, "{}");
      refuses("jsonb", { a: 1 }, "{}");
      refuses("jsonb", [1], "{}");
      refuses("boolean", 1, true);
      refuses("boolean", "true", true);
      refuses("int", "5", 5);
      refuses("smallint", true, 5);
      refuses("bigint", "5", 5);
      refuses("double precision", "1.5", 1.5);
      refuses("double precision", 1n, 1.5);
      refuses("real", "1.5", 1.5);
      refuses("uuid", 5, "0190a4b2-c3d4-7e8f-9a0b-cdef01234567");
    });

    it("refuses UUID text that is not canonical (braces, no hyphens, misplaced hyphen, non-hex)", () => {
      const good = "0190a4b2-c3d4-7e8f-9a0b-cdef01234567";
      for (const bad of [
        "{0190a4b2-c3d4-7e8f-9a0b-cdef01234567}",
        "0190a4b2c3d47e8f9a0bcdef01234567",
        "0190a4b2-c3d47-e8f-9a0b-cdef01234567",
        "0190a4b2-c3d4-7e8f-9a0b-cdef0123456g",
        "0190a4b2-c3d4-7e8f-9a0b-cdef0123456",
        "0190a4b2-c3d4-7e8f-9a0b-cdef012345678",
        " 0190a4b2-c3d4-7e8f-9a0b-cdef0123456",
        "0190a4b2-c3d4-7e8f-9a0b-cdef0123456é",
        "0190a4b2_c3d4_7e8f_9a0b_cdef01234567",
        "",
      ]) {
        refuses("uuid", bad, good);
      }
    });

    it("refuses integers out of range or not integers", () => {
      for (const bad of [32_768, -32_769, 1.5, Number.NaN, Number.POSITIVE_INFINITY, 2n]) refuses("smallint", bad, 1);
      for (const bad of [2 ** 31, -(2 ** 31) - 1, 0.5, Number.NaN, Number.NEGATIVE_INFINITY, 2n]) refuses("int", bad, 1);
      for (const bad of [2 ** 53, -(2 ** 53), 1.5, Number.NaN, Number.POSITIVE_INFINITY, 2n ** 63n, -(2n ** 63n) - 1n]) refuses("bigint", bad, 1);
    });

    it("refuses what is not a valid Date for timestamptz: text timestamps, invalid dates, dates too far for exact microseconds", () => {
      const good = new Date(0);
      refuses("timestamptz", "2026-01-01 00:00:00+00", good);
      refuses("timestamptz", "2026-01-01T00:00:00.000Z", good);
      refuses("timestamptz", Date.UTC(2026, 0, 1), good);
      refuses("timestamptz", new Date(Number.NaN), good);
      refuses("timestamptz", new Date(Date.UTC(2300, 0, 1)), good);
      refuses("timestamptz", new Date(Date.UTC(1700, 0, 1)), good);
      refuses("timestamptz", new Date(8.64e15), good);
    });

    it("refuses real values float4 cannot hold exactly (PostgreSQL rounds their decimal text itself, or rejects them)", () => {
      refuses("real", 0.1, 0.5);
      refuses("real", 1 + 2 ** -24, 0.5); // text COPY stores 1.0000001, float rounding would give 1
      refuses("real", 1e39, 0.5); // out of range for real as text; binary would store Infinity
      refuses("real", 1e-50, 0.5); // out of range for real as text; binary would store 0
      refuses("real", Number.MAX_VALUE, 0.5);
    });
  });

  it("grows its buffer many times and every row decodes back to its values", () => {
    const random = seededRandom(17);
    const pieces = ["é", "😀", "\t", "\n", "\\", "\\N", "日本語", "\"", "'", "a", "bc", " "];
    const text = (n: number) => Array.from({ length: n }, () => pieces[Math.floor(random() * pieces.length)]).join("");
    const rows: unknown[][] = Array.from({ length: 3_000 }, (_, i) => [
      i % 11 === 0 ? null : text(Math.floor(random() * 400)),
      i,
      i % 7 === 0 ? null : new Date(PG_EPOCH_MS + Math.round((random() - 0.6) * 4e12)),
      JSON.stringify({ i, note: text(20), nested: { list: [random(), "é😀"] } }),
      `0190a4b2-c3d4-7e8f-9a0b-${i.toString(16).padStart(12, "0")}`,
      random() < 0.5,
      (random() - 0.5) * 1e6,
      i % 13 === 0 ? "" : text(3),
    ]);
    const types = ["text", "int", "timestamptz", "jsonb", "uuid", "boolean", "double precision", "varchar(16)"];
    const writers = writersOf(...types);
    const encoder = new BinaryCopyEncoder(64); // far too small: must grow many times
    for (const r of rows) encoder.row(writers, r);
    const data = encoder.finish();
    expect(data.length).toBeGreaterThan(1_000_000);
    expect(copyBinary(writers, rows).equals(data)).toBe(true);

    const decoded = decodeBinaryCopy(data);
    expect(decoded).toHaveLength(rows.length);
    const back = decoded.map((fields) => {
      expect(fields).toHaveLength(types.length);
      const [t, n, ts, json, uuid, bool, dbl, short] = fields;
      return [
        t ? t.toString("utf8") : null,
        n!.readInt32BE(0),
        ts ? new Date(Number(ts.readBigInt64BE(0) / 1000n) + PG_EPOCH_MS) : null,
        (expect(json![0]).toBe(1), json!.subarray(1).toString("utf8")),
        uuid!.toString("hex").replace(/^(.{8})(.{4})(.{4})(.{4})/, "$1-$2-$3-$4-"),
        bool!.length === 1 ? bool![0] === 1 : "bad boolean",
        dbl!.readDoubleBE(0),
        short!.toString("utf8"),
      ];
    });
    expect(back).toEqual(rows);
  });
});
