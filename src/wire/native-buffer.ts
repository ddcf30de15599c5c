/**
 * Buffer's native UTF-8 methods, which `Buffer#write` and `Buffer#toString` call after
 * normalising their arguments: on the hot paths (COPY text, protobuf strings) that normalisation
 * cost more than the copy itself for short values (profiled). Not in Node's typings; present on
 * every Buffer since Node 0.x.
 */
export interface NativeBuffer extends Buffer {
  /** Writes `s` as UTF-8 at `offset`, at most `length` bytes; returns the bytes written. */
  utf8Write(s: string, offset: number, length: number): number;
  /** The UTF-8 text of bytes `start` to `end` (invalid sequences become U+FFFD). */
  utf8Slice(start: number, end: number): string;
  /** The bytes `start` to `end` as one character each. */
  latin1Slice(start: number, end: number): string;
}

/** `buffer` with its native methods typed. */
export const nativeBuffer = (buffer: Buffer): NativeBuffer => buffer as NativeBuffer;

/** Longest string {@link writeUtf8} and {@link utf8Length} try as ASCII before asking native code. */
const SHORT_TEXT = 64;

/**
 * Writes `s` as UTF-8 into `buf` at `at` (room made by the caller); returns the byte count. Short
 * ASCII strings, most values on the hot paths (states, ids, names), are copied by a loop: a call
 * into the native encoder costs more than the copy for them (docs/BENCHMARKS.md#measured-choices-in-the-code).
 */
export function writeUtf8(buf: NativeBuffer, s: string, at: number): number {
  const n = s.length;
  if (n <= SHORT_TEXT) {
    let i = 0;
    for (; i < n; i++) {
      const c = s.charCodeAt(i);
      if (c >= 0x80) break;
      buf[at + i] = c;
    }
    if (i === n) return n;
  }
  return buf.utf8Write(s, at, buf.length - at);
}

/**
 * UTF-8 bytes of `s` (a lone surrogate counts as U+FFFD, 3 bytes, as every encoder here writes
 * it). Short ASCII text, most values on the hot paths, is counted by a loop: cheaper than a
 * native call.
 */
export function utf8Length(s: string): number {
  const n = s.length;
  if (n <= SHORT_TEXT) {
    let i = 0;
    while (i < n && s.charCodeAt(i) < 0x80) i++;
    if (i === n) return n;
  }
  return Buffer.byteLength(s);
}
