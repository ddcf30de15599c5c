/**
 * The compiled decoder's (`message-decoder.ts`) readers of scalar fields, strings among them,
 * and the string tables a decoder keeps: the intern table that spares a UTF-8 decode for short
 * strings that repeat, and the JSON literals of short strings for the Struct-to-text writer.
 *
 * Why together: the tables exist for the string readers, and one compiled decoder owns one set
 * of them ({@link newStringTables}); keeping tables and readers in one module keeps that rule in
 * one place (docs/BENCHMARKS.md#measured-choices-in-the-code).
 */
import { ScalarType } from "@bufbuild/protobuf";
import type { BinaryReader } from "@bufbuild/protobuf/wire";
import { isUtf8 } from "node:buffer";
import { WireFormatError, type Input } from "./decoder-input.js";

/** Strings a decoder has seen lately ({@link readString}, {@link jsonString}). */
export interface StringTables {
  /** Short ASCII strings by a hash of their bytes ({@link INTERNED_SLOTS}). */
  readonly interned: (string | undefined)[];
  /** `JSON.stringify` of short strings ({@link JSON_STRINGS_MAX}). */
  readonly json: Map<string, string>;
}

/** Longest string kept in the intern table. */
const INTERNED_MAX_BYTES = 32;
/**
 * Slots in the intern table (a power of two). The table holds short ASCII strings decoded
 * lately, by a hash of their bytes: states, kinds, names and keys repeat from event to event, and
 * a hit costs a hash and a compare instead of a native UTF-8 decode, a new string, and the
 * garbage of it. A collision replaces the slot's entry. Only the strings are kept (an ASCII string
 * is compared with bytes a character a byte): a copy of the bytes beside each, made on every miss,
 * cost the decoder a large share of its instructions with more distinct strings than slots
 * (docs/BENCHMARKS.md#measured-choices-in-the-code). Strings with other characters are decoded
 * every time.
 */
const INTERNED_SLOTS = 4096;
/** Most JSON string literals kept by {@link jsonString}; the cache starts over when full. */
const JSON_STRINGS_MAX = 4096;

/** A decoder's own, empty string tables. */
export const newStringTables = (): StringTables => ({ interned: new Array(INTERNED_SLOTS).fill(undefined), json: new Map() });

/** For decoding that keeps no strings: an empty intern table turns interning off. */
export const NO_TABLES: StringTables = { interned: Object.freeze([]) as unknown as (string | undefined)[], json: new Map() };

/** The reader of one scalar or enum value of the given type (64-bit integers as `bigint`, or as text). */
export function scalarReader(scalar: ScalarType, longAsString: boolean): (input: Input) => unknown {
  const long = (read: (r: BinaryReader) => bigint | string) => (longAsString ? (i: Input) => String(read(i.reader)) : (i: Input) => read(i.reader));
  switch (scalar) {
    case ScalarType.STRING:
      return readString;
    case ScalarType.BYTES:
      return (i) => i.reader.bytes();
    case ScalarType.BOOL:
      return (i) => i.reader.bool();
    case ScalarType.DOUBLE:
      return (i) => i.reader.double();
    case ScalarType.FLOAT:
      return (i) => i.reader.float();
    case ScalarType.INT32:
      return (i) => i.reader.int32();
    case ScalarType.UINT32:
      return (i) => i.reader.uint32();
    case ScalarType.SINT32:
      return (i) => i.reader.sint32();
    case ScalarType.FIXED32:
      return (i) => i.reader.fixed32();
    case ScalarType.SFIXED32:
      return (i) => i.reader.sfixed32();
    case ScalarType.INT64:
      return long((r) => r.int64());
    case ScalarType.UINT64:
      return long((r) => r.uint64());
    case ScalarType.SINT64:
      return long((r) => r.sint64());
    case ScalarType.FIXED64:
      return long((r) => r.fixed64());
    case ScalarType.SFIXED64:
      return long((r) => r.sfixed64());
  }
}

/**
 * A length-delimited UTF-8 string. Node's native decoder replaces invalid sequences with U+FFFD;
 * only a result holding one needs the strict check (the sender may have meant a real U+FFFD).
 */
export function readString(input: Input): string {
  const { reader } = input;
  const length = reader.uint32();
  const start = reader.pos;
  const end = start + length;
  if (end > reader.len) throw new WireFormatError(`string of ${length} bytes runs past the end of the input`);
  reader.pos = end;
  const bytes = input.text;
  let slot = -1;
  if (length <= INTERNED_MAX_BYTES && input.strings.interned.length > 0) {
    // FNV-1a over the bytes, stopping at the first non-ASCII byte (such strings are not kept);
    // a hit is checked character for character against the bytes (ASCII: one byte a character).
    let h = 0x811c9dc5;
    let ascii = true;
    for (let i = start; i < end; i++) {
      const b = bytes[i]!;
      if (b >= 0x80) {
        ascii = false;
        break;
      }
      h = Math.imul(h ^ b, 0x01000193);
    }
    if (ascii) {
      slot = (h ^ (h >>> 16)) & (INTERNED_SLOTS - 1);
      const known = input.strings.interned[slot];
      if (known !== undefined && known.length === length) {
        let i = 0;
        while (i < length && known.charCodeAt(i) === bytes[start + i]) i++;
        if (i === length) return known;
      }
    }
  }
  let text = bytes.utf8Slice(start, end);
  if (text.includes("\uFFFD") && !isUtf8(bytes.subarray(start, end))) throw new WireFormatError("invalid UTF-8 in a string field");
  // protobuf-es decodes with a default TextDecoder, which drops one leading byte order mark.
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  if (slot >= 0) input.strings.interned[slot] = text;
  return text;
}

/**
 * `JSON.stringify(s)`, kept for short strings: keys and enum-like values repeat from payload to
 * payload, and a lookup of a string the intern table gave before (its hash already computed)
 * costs a fraction of the call into the JSON serializer (docs/BENCHMARKS.md#measured-choices-in-the-code).
 */
export function jsonString(input: Input, s: string): string {
  if (s.length > INTERNED_MAX_BYTES) return JSON.stringify(s);
  const strings = input.strings.json;
  let literal = strings.get(s);
  if (literal === undefined) {
    if (strings.size >= JSON_STRINGS_MAX) strings.clear();
    strings.set(s, (literal = JSON.stringify(s)));
  }
  return literal;
}
