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
