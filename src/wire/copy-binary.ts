/**
 * Rows in PostgreSQL's binary COPY format (`COPY ... FROM STDIN WITH (FORMAT binary)`), encoded
 * straight into a `Buffer`. Pure.
 *
 * Why binary: PostgreSQL parses text COPY value by value (uuid and timestamptz input functions,
 * escapes), and on these machines it shares the CPU with the service. Binary values go in as they
 * are stored, for less server CPU per row than text (docs/BENCHMARKS.md#measured-choices-in-the-code).
 *
 * Each value must be of the JavaScript type its column expects (a `Date` for `timestamptz`, a
 * canonical UUID string, an integer in range...). When one is not, encoding
 * throws {@link UnsupportedCopyValue} and the caller sends the batch as text instead, where
 * PostgreSQL judges the value as it always has: binary never changes what is accepted or how.
 */
import { nativeBuffer, writeUtf8, type NativeBuffer } from "./native-buffer.js";
import { writeUuidBytes } from "../util/uuid-v7.js";

/** A value the binary encoder does not take for its column; send the batch as text instead. */
export class UnsupportedCopyValue extends Error {
  override readonly name = "UnsupportedCopyValue";
}

/** How one column's values are written. */
type ValueWriter = (out: BinaryCopyEncoder, v: unknown) => void;

/** Microseconds between the Unix epoch and PostgreSQL's (2000-01-01). */
const PG_EPOCH_MS = 946_684_800_000;
const SIGNATURE = Buffer.from("PGCOPY\n\xff\r\n\0", "latin1");
const TWO_32 = 2 ** 32;

/**
 * The binary writer of each PostgreSQL column type this encoder knows, by the type's name as the
 * ORM reports it; undefined for any other type (the table is then copied as text).
 */
function valueWriterOf(type: string): ValueWriter | undefined {
  const t = type.toLowerCase().replace(/\s*\(\d+(,\s*\d+)?\)$/, "");
  switch (t) {
    case "text":
    case "varchar":
    case "character varying":
    case "json": // json's binary form is its text
      return (out, v) => {
        if (typeof v !== "string") throw new UnsupportedCopyValue(`${typeof v} for a ${t} column`);
        out.text(v);
      };
    case "jsonb":
      return (out, v) => {
        if (typeof v !== "string") throw new UnsupportedCopyValue(`${typeof v} for a jsonb column`);
        out.jsonb(v);
      };
    case "uuid":
      return (out, v) => out.uuid(v);
    case "timestamptz":
    case "timestamp with time zone":
      return (out, v) => out.timestamptz(v);
    case "boolean":
    case "bool":
      return (out, v) => {
        if (typeof v !== "boolean") throw new UnsupportedCopyValue(`${typeof v} for a boolean column`);
        out.fixed(1).writeUInt8(v ? 1 : 0, out.pos - 1);
      };
    case "smallint":
    case "int2":
      return (out, v) => out.int(v, 2, -0x8000, 0x7fff);
    case "integer":
    case "int":
    case "int4":
      return (out, v) => out.int(v, 4, -0x8000_0000, 0x7fff_ffff);
    case "bigint":
    case "int8":
      return (out, v) => out.int8(v);
    case "double precision":
    case "double":
    case "float8":
      return (out, v) => {
        if (typeof v !== "number") throw new UnsupportedCopyValue(`${typeof v} for a float8 column`);
        // -0 as 0: text COPY sends String(-0) = "0", so PostgreSQL has always stored 0 here.
        out.fixed(8).writeDoubleBE(v === 0 ? 0 : v, out.pos - 8);
      };
    case "real":
    case "float4":
      return (out, v) => {
        if (typeof v !== "number") throw new UnsupportedCopyValue(`${typeof v} for a float4 column`);
        // Only values float4 holds exactly: PostgreSQL rounds the others from their decimal text,
        // which double-to-float rounding does not always match (1 + 2^-24), and rejects those out
        // of float4's range (1e39, 1e-50) that writeFloatBE would store as Infinity or 0.
        if (Math.fround(v) !== v && !Number.isNaN(v)) throw new UnsupportedCopyValue(`${v} is not exact in a float4 column`);
        out.fixed(4).writeFloatBE(v === 0 ? 0 : v, out.pos - 4); // -0 as 0, as text COPY
      };
    default:
      return undefined;
  }
}

/**
 * An encoder for rows of `columns` (values in column order), or undefined when a column's type
 * has no binary writer here.
 */
export function binaryCopyWriters(columns: readonly { readonly type: string }[]): readonly ValueWriter[] | undefined {
  const writers = columns.map((c) => valueWriterOf(c.type));
  return writers.every((w) => w !== undefined) ? (writers as ValueWriter[]) : undefined;
}

/** Appends binary COPY data to a growing buffer: header, rows, trailer. */
export class BinaryCopyEncoder {
  #buf: NativeBuffer;
  /** Bytes written so far. */
  pos = 0;

  constructor(initialBytes = 64 * 1024) {
    this.#buf = nativeBuffer(Buffer.allocUnsafe(Math.max(64, initialBytes)));
    this.#room(19);
    SIGNATURE.copy(this.#buf, 0);
    this.#buf.writeInt32BE(0, 11); // flags: no OIDs
    this.#buf.writeInt32BE(0, 15); // header extension length
    this.pos = 19;
  }

  /** Appends one row (values in the order of `writers`). */
  row(writers: readonly ValueWriter[], values: readonly unknown[]): void {
    // Text COPY rejects a row with missing or extra values; binary would pad with nulls or drop them.
    if (values.length !== writers.length) throw new UnsupportedCopyValue(`a row of ${values.length} values for ${writers.length} columns`);
    this.#room(2);
    this.#buf.writeInt16BE(writers.length, this.pos);
    this.pos += 2;
    for (let c = 0; c < writers.length; c++) {
      const v = values[c];
      if (v === null || v === undefined) {
        this.#room(4);
        this.#buf.writeInt32BE(-1, this.pos);
        this.pos += 4;
      } else {
        writers[c]!(this, v);
      }
    }
  }

  /** The data with its trailer (a view of the encoder's buffer). */
  finish(): Buffer {
    this.#room(2);
    this.#buf.writeInt16BE(-1, this.pos);
    this.pos += 2;
    return this.#buf.subarray(0, this.pos);
  }

  /** Writes a value's length (`bytes`) and makes room for it; returns the buffer to write into at `pos - bytes`. */
  fixed(bytes: number): Buffer {
    this.#room(4 + bytes);
    this.#buf.writeInt32BE(bytes, this.pos);
    this.pos += 4 + bytes;
    return this.#buf;
  }

  /** UTF-8 text, its length written after it is known. */
  text(s: string): void {
    this.#room(4 + s.length * 3); // UTF-8 takes at most 3 bytes per UTF-16 code unit
    const start = this.pos + 4;
    const n = writeUtf8(this.#buf, s, start);
    this.#buf.writeInt32BE(n, this.pos);
    this.pos = start + n;
  }

  /** jsonb: a version byte (1), then the JSON text. */
  jsonb(json: string): void {
    this.#room(5 + json.length * 3);
    const start = this.pos + 5;
    const n = writeUtf8(this.#buf, json, start);
    this.#buf.writeInt32BE(n + 1, this.pos);
    this.#buf[this.pos + 4] = 1;
    this.pos = start + n;
  }

  /** A UUID in canonical text form (8-4-4-4-12 hex digits, either case) as its 16 bytes. */
  uuid(v: unknown): void {
    this.#room(20);
    if (typeof v !== "string" || !writeUuidBytes(v, this.#buf, this.pos + 4)) {
      throw new UnsupportedCopyValue("a uuid column's value is not a canonical UUID string");
    }
    this.#buf.writeInt32BE(16, this.pos);
    this.pos += 20;
  }

  /** A `Date` as microseconds since 2000-01-01 UTC (int64). Text timestamps are left to PostgreSQL. */
  timestamptz(v: unknown): void {
    if (!(v instanceof Date)) throw new UnsupportedCopyValue(`${typeof v} for a timestamptz column`);
    const ms = v.getTime();
    if (!Number.isFinite(ms)) throw new UnsupportedCopyValue("an invalid Date");
    const us = (ms - PG_EPOCH_MS) * 1000;
    if (!Number.isSafeInteger(us)) throw new UnsupportedCopyValue("a Date too far from 2000 for exact microseconds");
    const buf = this.fixed(8);
    const hi = Math.floor(us / TWO_32);
    buf.writeInt32BE(hi, this.pos - 8);
    buf.writeUInt32BE(us - hi * TWO_32, this.pos - 4);
  }

  /** An integer column of `bytes` (2 or 4) within [min, max]. */
  int(v: unknown, bytes: 2 | 4, min: number, max: number): void {
    if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) throw new UnsupportedCopyValue(`${String(v)} for an int${bytes} column`);
    const buf = this.fixed(bytes);
    if (bytes === 2) buf.writeInt16BE(v, this.pos - 2);
    else buf.writeInt32BE(v, this.pos - 4);
  }

  /** A bigint column from a safe integer or a bigint. */
  int8(v: unknown): void {
    let big: bigint;
    if (typeof v === "bigint") big = v;
    else if (typeof v === "number" && Number.isSafeInteger(v)) big = BigInt(v);
    else throw new UnsupportedCopyValue(`${String(v)} for an int8 column`);
    if (big < -(2n ** 63n) || big >= 2n ** 63n) throw new UnsupportedCopyValue(`${String(v)} for an int8 column`);
    this.fixed(8).writeBigInt64BE(big, this.pos - 8);
  }

  #room(bytes: number): void {
    if (this.pos + bytes <= this.#buf.length) return;
    const grown = nativeBuffer(Buffer.allocUnsafe(Math.max(this.#buf.length * 2, this.pos + bytes)));
    this.#buf.copy(grown, 0, 0, this.pos);
    this.#buf = grown;
  }
}

/**
 * `rows` as binary COPY data, sized from the first rows; throws {@link UnsupportedCopyValue} when
 * a value does not fit its column's binary form.
 */
export function copyBinary(writers: readonly ValueWriter[], rows: readonly (readonly unknown[])[]): Buffer {
  const encoder = new BinaryCopyEncoder(Math.min(64 * 1024 * 1024, 64 + rows.length * (2 + writers.length * 24)));
  for (const r of rows) encoder.row(writers, r);
  return encoder.finish();
}
