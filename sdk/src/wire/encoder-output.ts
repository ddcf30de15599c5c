/**
 * The compiled encoder's output: one growing buffer with protobuf's primitive writes (tags,
 * varints, doubles, strings, raw bytes) and in-place length-delimited payloads, whose length is
 * filled in when the payload ends. Its own module so the plan compiler (`message-encoder.ts`) and
 * the value writers (`scalar-writer.ts`, `struct-writer.ts`) share one buffer type; writing into
 * it instead of through protobuf-es's `BinaryWriter` is a measured choice
 * (docs/BENCHMARKS.md#measured-choices-in-the-code).
 */
import type { WireType } from "@bufbuild/protobuf/wire";

/** Largest value of a uint32 field (also the longest varint {@link Output.varint} writes). */
export const UINT32_MAX = 0xffff_ffff;

/** The bytes of a varint of `n` (0 ≤ n < 2^32). */
const varintSize = (n: number): number => (n < 0x80 ? 1 : n < 0x4000 ? 2 : n < 0x20_0000 ? 3 : n < 0x1000_0000 ? 4 : 5);

const utf8 = new TextEncoder();

/** Bytes an encoder's buffer starts with, and keeps between messages at most. */
export const KEPT_BUFFER_BYTES = 64 * 1024;

/** A growing buffer with protobuf's primitive writes. */
export class Output {
  buf = new Uint8Array(KEPT_BUFFER_BYTES);
  view = new DataView(this.buf.buffer);
  pos = 0;

  /** Back to the starting size (between messages). */
  shrink(): void {
    this.buf = new Uint8Array(KEPT_BUFFER_BYTES);
    this.view = new DataView(this.buf.buffer);
    this.pos = 0;
  }

  /** A field's tag: its number and wire type, as a varint. */
  tag(no: number, wireType: WireType): this {
    this.varint(((no << 3) | wireType) >>> 0);
    return this;
  }

  /** One byte (a bool, or a varint known to be under 0x80). */
  byte(b: number): void {
    this.room(1);
    this.buf[this.pos++] = b;
  }

  /** An unsigned 32-bit varint. */
  varint(n: number): void {
    this.room(5);
    const buf = this.buf;
    while (n > 0x7f) {
      buf[this.pos++] = (n & 0x7f) | 0x80;
      n = n >>> 7;
    }
    buf[this.pos++] = n;
  }

  /** A varint of a non-negative integer up to 2^53 - 1. */
  varint53(n: number): void {
    if (n <= UINT32_MAX) return this.varint(n);
    this.room(8);
    while (n > 0x7f) {
      this.buf[this.pos++] = (n % 0x80) | 0x80;
      n = Math.floor(n / 0x80);
    }
    this.buf[this.pos++] = n;
  }

  /** An int32: a negative value as ten bytes, sign-extended to 64 bits (as protobuf requires). */
  int32(n: number): void {
    if (n >= 0) return this.varint(n);
    this.room(10);
    for (let i = 0; i < 9; i++, n >>= 7) this.buf[this.pos++] = (n & 0x7f) | 0x80;
    this.buf[this.pos++] = 0x01;
  }

  /** A little-endian 64-bit float. */
  double(n: number): void {
    this.room(8);
    this.view.setFloat64(this.pos, n, true);
    this.pos += 8;
  }

  /** Bytes as they are (already encoded). */
  raw(bytes: Uint8Array): void {
    this.room(bytes.byteLength);
    this.buf.set(bytes, this.pos);
    this.pos += bytes.byteLength;
  }

  /**
   * A length-delimited UTF-8 string (lone surrogates as U+FFFD, as `TextEncoder`). Short ASCII
   * strings, most of an event's, are copied by a loop: cheaper than a call into the encoder.
   */
  string(s: string): void {
    const start = this.begin();
    this.room(s.length * 3);
    const buf = this.buf;
    let i = 0;
    if (s.length <= 64) {
      for (; i < s.length; i++) {
        const c = s.charCodeAt(i);
        if (c >= 0x80) break;
        buf[start + i] = c;
      }
    }
    this.pos = i === s.length ? start + i : start + utf8.encodeInto(s, buf.subarray(start)).written;
    this.end(start);
  }

  /**
   * Starts a length-delimited payload: one byte is kept for its length, which {@link end} fills
   * in (moving the payload when the length needs more bytes). Returns where the payload starts.
   */
  begin(): number {
    this.room(1);
    this.pos += 1;
    return this.pos;
  }

  /** Ends the payload begun at `start`: writes its length before it. */
  end(start: number): void {
    const length = this.pos - start;
    const extra = varintSize(length) - 1;
    if (extra > 0) {
      this.room(extra);
      this.buf.copyWithin(start + extra, start, this.pos);
      this.pos += extra;
    }
    let at = start - 1;
    let n = length;
    while (n > 0x7f) {
      this.buf[at++] = (n & 0x7f) | 0x80;
      n >>>= 7;
    }
    this.buf[at] = n;
  }

  /** Grows the buffer (doubling, at least) so that `bytes` more fit. */
  room(bytes: number): void {
    if (this.pos + bytes <= this.buf.length) return;
    const grown = new Uint8Array(Math.max(this.buf.length * 2, this.pos + bytes));
    grown.set(this.buf.subarray(0, this.pos));
    this.buf = grown;
    this.view = new DataView(grown.buffer);
  }
}
