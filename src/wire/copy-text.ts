/**
 * Rows in PostgreSQL's COPY text format, encoded straight into a `Buffer`: the bytes the COPY
 * stream sends. Pure.
 *
 * This is the hot end of every stored row on a real server (a device stream stores ~100k rows/s),
 * so it avoids what a string-building encoder pays per row: no line strings and no
 * `Buffer.from` of a flattened megabyte per flush, separators written as bytes, and timestamps
 * formatted from a per-minute prefix instead of `Date.prototype.toISOString` (a new string per
 * row): several times less CPU per `device_metrics` row (docs/BENCHMARKS.md#measured-choices-in-the-code).
 *
 * @module
 */
import { nativeBuffer, type NativeBuffer } from "./native-buffer.js";

/** Characters COPY's text format gives a meaning to, escaped. */
const COPY_SPECIAL = /[\\\t\n\r]/g;
const COPY_ESCAPES: Record<string, string> = { "\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r" };

/**
 * Whether `s` holds a character COPY gives a meaning to. Four `indexOf` scans are faster than
 * one regex test on the ~200-character JSON of a metrics row (docs/BENCHMARKS.md#measured-choices-in-the-code), and nearly every value
 * holds none.
 */
function hasCopySpecial(s: string): boolean {
  return s.indexOf("\\") >= 0 || s.indexOf("\n") >= 0 || s.indexOf("\t") >= 0 || s.indexOf("\r") >= 0;
}

const TAB = 0x09;
const NEWLINE = 0x0a;
const ZERO = 0x30;

/** A string with COPY's special characters escaped. */
function escaped(s: string): string {
  return hasCopySpecial(s) ? s.replace(COPY_SPECIAL, (c) => COPY_ESCAPES[c]!) : s;
}

/**
 * One value in COPY's text format: `\N` for null, `Date` as ISO-8601 (UTC), objects as JSON,
 * everything else as its string; backslash, tab, newline and carriage return escaped.
 */
export function copyTextValue(v: unknown): string {
  if (v === null || v === undefined) return "\\N";
  // Numbers, booleans and ISO dates never hold a special character: skip the scan (hot path).
  if (typeof v === "number" || typeof v === "boolean" || typeof v === "bigint") return String(v);
  if (v instanceof Date) return v.toISOString();
  return escaped(typeof v === "string" ? v : JSON.stringify(v));
}

/**
 * Appends COPY text to a growing buffer. `finish()` returns the bytes written so far. One encoder
 * per COPY: it keeps the minute prefix of the last timestamp (rows of a flush are close in time).
 */
export class CopyTextEncoder {
  #buf: NativeBuffer;
  #pos = 0;
  #minute = Number.NaN;
  #minutePrefix = "";

  constructor(initialBytes = 64 * 1024) {
    this.#buf = nativeBuffer(Buffer.allocUnsafe(Math.max(64, initialBytes)));
  }

  /** Appends one row (values in column order) as a line. */
  row(values: readonly unknown[]): void {
    for (let c = 0; c < values.length; c++) {
      if (c > 0) this.#byte(TAB);
      this.value(values[c]);
    }
    this.#byte(NEWLINE);
  }

  /** Appends one value (see {@link copyTextValue}), without a separator. */
  value(v: unknown): void {
    if (v instanceof Date) this.#timestamp(v.getTime(), v);
    else if (typeof v === "string") this.#text(escaped(v));
    else this.#text(copyTextValue(v));
  }

  /** Bytes appended so far. */
  get length(): number {
    return this.#pos;
  }

  /** Makes room for `bytes` more bytes at once (one allocation instead of doubling repeatedly). */
  reserve(bytes: number): void {
    this.#room(bytes);
  }

  /** The bytes appended so far (a view of the encoder's buffer: use it before appending more). */
  finish(): Buffer {
    return this.#buf.subarray(0, this.#pos);
  }

  #room(bytes: number): void {
    if (this.#pos + bytes <= this.#buf.length) return;
    const grown = nativeBuffer(Buffer.allocUnsafe(Math.max(this.#buf.length * 2, this.#pos + bytes)));
    this.#buf.copy(grown, 0, 0, this.#pos);
    this.#buf = grown;
  }

  #byte(b: number): void {
    this.#room(1);
    this.#buf[this.#pos++] = b;
  }

  #text(s: string): void {
    // UTF-8 takes at most 3 bytes per UTF-16 code unit.
    this.#room(s.length * 3);
    this.#pos += this.#buf.utf8Write(s, this.#pos, this.#buf.length - this.#pos);
  }

  /** `YYYY-MM-DDTHH:MM:SS.mmmZ`, exactly as `toISOString`, from a cached minute prefix. */
  #timestamp(ms: number, date: Date): void {
    if (!Number.isFinite(ms)) {
      this.#text(date.toISOString()); // throws RangeError, as toISOString does for an invalid date
      return;
    }
    const minute = Math.floor(ms / 60_000);
    if (minute !== this.#minute) {
      const iso = new Date(minute * 60_000).toISOString();
      this.#minute = minute;
      this.#minutePrefix = iso.slice(0, iso.length - "SS.mmmZ".length);
    }
    this.#text(this.#minutePrefix);
    this.#room(7);
    const inMinute = ms - minute * 60_000; // 0..59_999, also before 1970
    const seconds = Math.floor(inMinute / 1000);
    const millis = inMinute - seconds * 1000;
    const buf = this.#buf;
    let p = this.#pos;
    buf[p++] = ZERO + Math.floor(seconds / 10);
    buf[p++] = ZERO + (seconds % 10);
    buf[p++] = 0x2e; // .
    buf[p++] = ZERO + Math.floor(millis / 100);
    buf[p++] = ZERO + (Math.floor(millis / 10) % 10);
    buf[p++] = ZERO + (millis % 10);
    buf[p++] = 0x5a; // Z
    this.#pos = p;
  }
}

/** Rows (values in column order) as COPY text: one line per row, tab-separated. */
export function copyText(rows: readonly (readonly unknown[])[]): Buffer {
  const encoder = new CopyTextEncoder(1024);
  for (let i = 0; i < rows.length; i++) {
    encoder.row(rows[i]!);
    // Rows of one table are alike: size the buffer for all of them from the first few.
    if (i === 7) encoder.reserve(Math.ceil((encoder.length / 8) * 1.25 * (rows.length - 8)));
  }
  return encoder.finish();
}
