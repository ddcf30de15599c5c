/**
 * `google.protobuf.Struct` written straight from its bytes as the JSON text of the object
 * `struct-object-reader.ts` would build, for `compileDecoder`'s `structs: "json-text"`: payloads
 * that are only stored skip the object that would be serialized at once and thrown away
 * (docs/BENCHMARKS.md#measured-choices-in-the-code). The same checks as the object reader, so
 * malformed input fails as it would; encodings that need protobuf's merge rules fall back to the
 * object reader.
 */
import { WireType } from "@bufbuild/protobuf/wire";
import { enterMessage, leaveMessage, readTag, type Input } from "./decoder-input.js";
import { jsonString, readString } from "./scalar-readers.js";
import {
  ENTRY_KEY,
  ENTRY_VALUE,
  leaveStructEntry,
  LIST_VALUES,
  readStruct,
  skipEntryField,
  skipListField,
  skipValueField,
  structEntryEnd,
} from "./struct-object-reader.js";

/**
 * Thrown inside a Struct being written as text when its encoding needs protobuf's merge rules,
 * which text cannot apply: the Struct is then decoded to an object. Never leaves the decoder.
 */
const NEEDS_MERGE = { needsMerge: true };

/**
 * `google.protobuf.Struct` straight to the JSON text of the object {@link readStruct} would build
 * (see `DecoderOptions.structs` in `message-decoder.ts`); the same checks, so malformed input fails as it would.
 */
export function readStructText(input: Input, length: number): string {
  const start = input.reader.pos;
  const depth = input.depth;
  try {
    return structText(input, length);
  } catch (err) {
    if (err !== NEEDS_MERGE) throw err;
    input.reader.pos = start;
    input.depth = depth;
    return JSON.stringify(readStruct(input, length, undefined));
  }
}

/** The JSON text of a Struct ({@link readStructText}); throws {@link NEEDS_MERGE} where text cannot follow protobuf. */
function structText(input: Input, length: number): string {
  const { reader } = input;
  const end = enterMessage(input, length, "google.protobuf.Struct");
  let json = "{";
  while (reader.pos < end) {
    const entryEnd = structEntryEnd(input);
    if (entryEnd < 0) continue;
    let key = "";
    let value: string | undefined;
    while (reader.pos < entryEnd) {
      const t = readTag(input);
      if (t === ENTRY_KEY) key = readString(input);
      else if (t === ENTRY_VALUE) value = valueText(input, reader.uint32()); // a second one replaces the first, as in readStruct
      else skipEntryField(input, t);
    }
    leaveStructEntry(input, entryEnd);
    if (json.length > 1) json += ",";
    json += jsonString(input, key) + ":" + (value ?? "null");
  }
  leaveMessage(input, end, "google.protobuf.Struct");
  return json + "}";
}

/** `google.protobuf.Value` to the JSON text of its value, as `JSON.stringify` writes it (no kind, NaN, ±Infinity: null). */
function valueText(input: Input, length: number): string {
  const { reader } = input;
  const end = enterMessage(input, length, "google.protobuf.Value");
  let text: string | undefined;
  while (reader.pos < end) {
    const tag = readTag(input);
    let kind: string;
    switch (tag) {
      case (1 << 3) | WireType.Varint: // null_value
        reader.int32();
        kind = "null";
        break;
      case (2 << 3) | WireType.Bit64: {
        // number_value: String(n) is JSON.stringify's number text for every finite n (-0 too).
        const n = reader.double();
        kind = Number.isFinite(n) ? String(n) : "null";
        break;
      }
      case (3 << 3) | WireType.LengthDelimited: // string_value
        kind = jsonString(input, readString(input));
        break;
      case (4 << 3) | WireType.Varint: // bool_value
        kind = reader.bool() ? "true" : "false";
        break;
      case (5 << 3) | WireType.LengthDelimited: // struct_value
        kind = structText(input, reader.uint32());
        break;
      case (6 << 3) | WireType.LengthDelimited: // list_value
        kind = listText(input, reader.uint32());
        break;
      default:
        skipValueField(input, tag);
        continue;
    }
    // A second kind replaces the first, or merges with it (struct and list): the object decides.
    if (text !== undefined) throw NEEDS_MERGE;
    text = kind;
  }
  leaveMessage(input, end, "google.protobuf.Value");
  return text ?? "null";
}

/** `google.protobuf.ListValue` to the JSON text of its array. */
function listText(input: Input, length: number): string {
  const { reader } = input;
  const end = enterMessage(input, length, "google.protobuf.ListValue");
  let json = "[";
  while (reader.pos < end) {
    const tag = readTag(input);
    if (tag === LIST_VALUES) {
      if (json.length > 1) json += ",";
      json += valueText(input, reader.uint32());
    } else skipListField(input, tag);
  }
  leaveMessage(input, end, "google.protobuf.ListValue");
  return json + "]";
}
