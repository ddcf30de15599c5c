/**
 * `google.protobuf.Struct`, `Value` and `ListValue` read straight from their bytes into the JSON
 * object, value and array `fromBinary` would give, with protobuf's merge rules (a Struct sent
 * again merges, a list sent again appends); and the checks of a Struct's entries that the JSON
 * text writer (`struct-json-text.ts`) shares.
 *
 * Why not protobuf-es: it builds a `Value` message per value and converts them to JSON after,
 * and merges a Struct field sent many times in quadratic time (docs/HARDENING.md).
 */
import type { JsonObject, JsonValue } from "@bufbuild/protobuf";
import { WireType } from "@bufbuild/protobuf/wire";
import { enterMessage, leaveMessage, newInput, readTag, skipUnknownField, WireFormatError, type Input } from "./decoder-input.js";
import { NO_TABLES, readString } from "./scalar-readers.js";

/** A Struct map entry's key (field 1, string) and value (field 2, Value) tags. */
export const ENTRY_KEY = (1 << 3) | WireType.LengthDelimited;
export const ENTRY_VALUE = (2 << 3) | WireType.LengthDelimited;

/**
 * Reads the next field of a Struct: for a map entry (fields = 1) returns where the entry ends;
 * for any other field skips it and returns -1. The entry's key and value may come in any order,
 * either may be missing (its default), and unknown fields may sit beside them.
 */
export function structEntryEnd(input: Input): number {
  const { reader } = input;
  const tag = readTag(input);
  if (tag >>> 3 !== 1) {
    skipUnknownField(input, tag);
    return -1;
  }
  if ((tag & 7) !== WireType.LengthDelimited) throw new WireFormatError("google.protobuf.Struct.fields: wire type " + (tag & 7));
  const entryEnd = reader.uint32() + reader.pos;
  if (entryEnd > reader.len) throw new WireFormatError("google.protobuf.Struct.fields: entry runs past the end of the input");
  return entryEnd;
}

/** Passes over a map entry's field other than its key and value: refused when it is one of them with the wrong wire type. */
export function skipEntryField(input: Input, tag: number): void {
  if (tag >>> 3 === 1 || tag >>> 3 === 2) throw new WireFormatError(`google.protobuf.Struct.fields: entry field ${tag >>> 3} with wire type ${tag & 7}`);
  skipUnknownField(input, tag);
}

/** Ends a map entry: its last field must end exactly at its length. */
export function leaveStructEntry(input: Input, entryEnd: number): void {
  if (input.reader.pos !== entryEnd) throw new WireFormatError("google.protobuf.Struct.fields: an entry runs past its length");
}

/** Passes over a Value field that is not a kind: refused when it is one (fields 1-6) with the wrong wire type. */
export function skipValueField(input: Input, tag: number): void {
  if (tag >>> 3 >= 1 && tag >>> 3 <= 6) throw new WireFormatError(`google.protobuf.Value: field ${tag >>> 3} with wire type ${tag & 7}`);
  skipUnknownField(input, tag);
}

/** A ListValue's `values` tag (field 1, Value). */
export const LIST_VALUES = (1 << 3) | WireType.LengthDelimited;

/** Passes over a ListValue field other than `values`: refused when it is `values` with the wrong wire type. */
export function skipListField(input: Input, tag: number): void {
  if (tag >>> 3 === 1) throw new WireFormatError(`google.protobuf.ListValue.values: wire type ${tag & 7}`);
  skipUnknownField(input, tag);
}

/** `google.protobuf.Struct` (map<string, Value> fields = 1) straight to a JSON object. */
export function readStruct(input: Input, length: number, into: JsonObject | undefined): JsonObject {
  const { reader } = input;
  const end = enterMessage(input, length, "google.protobuf.Struct");
  const json: JsonObject = into ?? {};
  while (reader.pos < end) {
    const entryEnd = structEntryEnd(input);
    if (entryEnd < 0) continue;
    let key = "";
    let value: JsonValue = null;
    while (reader.pos < entryEnd) {
      const t = readTag(input);
      if (t === ENTRY_KEY) key = readString(input);
      else if (t === ENTRY_VALUE) value = readValue(input, reader.uint32());
      else skipEntryField(input, t);
    }
    leaveStructEntry(input, entryEnd);
    // defineProperty, not assignment: a key "__proto__" is data, not the object's prototype.
    if (key === "__proto__") Object.defineProperty(json, key, { value, enumerable: true, writable: true, configurable: true });
    else json[key] = value;
  }
  leaveMessage(input, end, "google.protobuf.Struct");
  return json;
}

/**
 * The occurrences of one `Struct` field, each given as its encoded bytes, merged into one object
 * as protobuf merges them (the object `fromBinary` gives; undefined for none). For a field a
 * request may send thousands of times (`src/wire/unary-log-wire.ts`): each occurrence is read
 * once, straight into the object, where protobuf-es builds `Value` messages for each and converts
 * them. Throws {@link WireFormatError} on malformed bytes.
 */
export function decodeStructOccurrences(occurrences: readonly Uint8Array[]): JsonObject | undefined {
  let json: JsonObject | undefined;
  let input: Input | undefined;
  // No string tables: a unary request's strings seldom repeat in the next one.
  const strings = NO_TABLES;
  for (const bytes of occurrences) {
    // Occurrences are views of one request buffer: one reader and Buffer view over it serve them all.
    if (input === undefined || input.text.buffer !== bytes.buffer) {
      input = newInput(bytes, strings);
    }
    input.reader.pos = bytes.byteOffset;
    input.depth = 0;
    json = readStruct(input, bytes.byteLength, json);
  }
  return json;
}

/** `google.protobuf.Value` to its JSON value (unset kind → null, as protobuf-es). */
function readValue(input: Input, length: number): JsonValue {
  const { reader } = input;
  const end = enterMessage(input, length, "google.protobuf.Value");
  let value: JsonValue = null;
  while (reader.pos < end) {
    const tag = readTag(input);
    switch (tag) {
      case (1 << 3) | WireType.Varint: // null_value
        reader.int32();
        value = null;
        break;
      case (2 << 3) | WireType.Bit64: // number_value
        value = reader.double();
        break;
      case (3 << 3) | WireType.LengthDelimited: // string_value
        value = readString(input);
        break;
      case (4 << 3) | WireType.Varint: // bool_value
        value = reader.bool();
        break;
      case (5 << 3) | WireType.LengthDelimited: // struct_value (a repeated one merges)
        value = readStruct(input, reader.uint32(), isJsonObject(value) ? value : undefined);
        break;
      case (6 << 3) | WireType.LengthDelimited: // list_value (a repeated one appends)
        value = readList(input, reader.uint32(), Array.isArray(value) ? value : undefined);
        break;
      default:
        skipValueField(input, tag);
    }
  }
  leaveMessage(input, end, "google.protobuf.Value");
  return value;
}

/** `google.protobuf.ListValue` (repeated Value values = 1) to a JSON array. */
function readList(input: Input, length: number, into: JsonValue[] | undefined): JsonValue[] {
  const { reader } = input;
  const end = enterMessage(input, length, "google.protobuf.ListValue");
  const list = into ?? [];
  while (reader.pos < end) {
    const tag = readTag(input);
    if (tag === LIST_VALUES) list.push(readValue(input, reader.uint32()));
    else skipListField(input, tag);
  }
  leaveMessage(input, end, "google.protobuf.ListValue");
  return list;
}

const isJsonObject = (v: JsonValue): v is JsonObject => typeof v === "object" && v !== null && !Array.isArray(v);
