/**
 * A protobuf binary decoder compiled once per message type from its protobuf-es descriptor, for
 * the hot ingestion path (`LogEvents`): it yields the same objects as `fromBinary` (same field
 * names, defaults, oneof `{ case, value }`, `Struct` fields as `JsonObject`, 64-bit integers as
 * `bigint`) at a fraction of the CPU and garbage.
 *
 * Why it exists: protobuf-es decodes reflectively, through a `ReflectMessage` wrapper per message,
 * a field lookup per tag and a `[fieldNo, wireType]` array per tag, and builds `Struct` payloads
 * twice (as `Value` messages, then as JSON): the largest single cost of `LogEvents` on the server
 * (docs/BENCHMARKS.md#measured-choices-in-the-code).
 *
 * What it does not do, on purpose: unknown fields are skipped, not kept (`$unknown` is never
 * set); field kinds the ingestion messages do not use (wrapper types, `Value` / `ListValue`
 * fields, `Struct` in a list, map or oneof, groups) are refused when the decoder is compiled, so a
 * schema change that needs them fails at start-up and in the tests, never silently at run time.
 * Malformed input (truncated data, a known field with the wrong wire type, invalid UTF-8 in a
 * string, nesting deeper than 100) throws {@link WireFormatError}.
 */
import { create, ScalarType, type DescField, type DescMessage, type JsonObject, type JsonValue, type MessageShape } from "@bufbuild/protobuf";
import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";
import { Buffer, isUtf8 } from "node:buffer";
import { JsonText } from "../util/json-text.js";
import { nativeBuffer, type NativeBuffer } from "./native-buffer.js";
import { unsupportedFieldKind, wireTypeOf } from "../../sdk/src/wire/index.js";

/** The input is not a valid encoding of the message; the text says where, safe to show a client. */
export class WireFormatError extends Error {
  override readonly name = "WireFormatError";
}

/** How {@link compileDecoder} decodes `google.protobuf.Struct` fields. */
export interface DecoderOptions {
  /**
   * `"object"` (the default): a `JsonObject`, as `fromBinary` gives. `"json-text"`: a
   * {@link JsonText} of the object's JSON, written straight from the bytes without building the
   * object, for messages whose payloads are only stored: the object would be serialized at once
   * and thrown away (on `LogEvents`, an eighth of the decoding cost: docs/BENCHMARKS.md#measured-choices-in-the-code). The message's type still says `JsonObject`: give such messages only to code that
   * takes a payload through `jsonTextOf` (validation, rows), which returns the `JsonText` as it
   * is; its `toJSON` and `parse` give the object.
   *
   * The text stands for the same JSON value, as jsonb stores it: a key sent twice is written twice
   * (JSON readers, jsonb among them, keep the last, as the object does), and keys keep their wire
   * order. Encodings that need protobuf's merge rules (a Value with two kinds, a Struct field
   * sent twice) are decoded to the object and serialized instead.
   */
  readonly structs?: "object" | "json-text";
}

/** Decodes one message's bytes. */
export type MessageDecoder<Desc extends DescMessage> = (bytes: Uint8Array) => MessageShape<Desc>;

/** Deepest message nesting accepted (as protobuf-es: a bound on recursion for hostile input). */
const MAX_DEPTH = 100;

type Target = Record<string, unknown>;

/** The reader of one message being decoded, with what a field reader needs besides the bytes. */
interface Input {
  readonly reader: BinaryReader;
  /** The same bytes as a Buffer, for its native UTF-8 decoding. */
  readonly text: NativeBuffer;
  depth: number;
  /**
   * Struct fields decoded as text but sent more than once (`structs: "json-text"`): held as the
   * object they merge into until the whole input is read, then serialized once
   * ({@link finishMerges}). Usually empty.
   */
  readonly merges: Merge[];
  /** The decoder's string tables (one set per compiled decoder, never shared between them). */
  readonly strings: StringTables;
}

/** Strings a decoder has seen lately ({@link readString}, {@link jsonString}). */
interface StringTables {
  /** Short ASCII strings by a hash of their bytes ({@link INTERNED_SLOTS}). */
  readonly interned: (string | undefined)[];
  /** `JSON.stringify` of short strings ({@link JSON_STRINGS_MAX}). */
  readonly json: Map<string, string>;
}

const newStringTables = (): StringTables => ({ interned: new Array(INTERNED_SLOTS).fill(undefined), json: new Map() });

/** A Struct field sent more than once: where it goes, and the object its occurrences merge into. */
interface Merge {
  readonly target: Target;
  readonly name: string;
  readonly object: JsonObject;
}

/** Reads one occurrence of a field (its tag already read) into `target`. */
type FieldReader = (input: Input, wireType: number, target: Target) => void;

/** How to decode one message type. */
interface Plan {
  readonly typeName: string;
  /** A new message with every field at its default. */
  make: () => Target;
  /** By field number. */
  readonly fields: Map<number, FieldReader>;
}

/**
 * Compiles the decoder for `schema` and every message type it reaches. Throws (at compile time)
 * when the schema uses a field kind this decoder does not handle.
 */
export function compileDecoder<Desc extends DescMessage>(schema: Desc, options: DecoderOptions = {}): MessageDecoder<Desc> {
  const plan = planFor(schema, new Map(), options.structs === "json-text");
  // The items of one request (LogEvents' events) are views of one buffer: one reader and one
  // Buffer view over the whole buffer serve them all, bounded per item, instead of a reader, a
  // DataView and a Buffer per item. Only the last buffer is kept.
  let input: Input | undefined;
  const strings = newStringTables();
  return (bytes) => {
    if (input === undefined || input.text.buffer !== bytes.buffer) {
      const whole = new Uint8Array(bytes.buffer);
      input = { reader: new BinaryReader(whole), text: nativeBuffer(Buffer.from(bytes.buffer)), depth: 0, merges: [], strings };
    }
    const { reader, merges } = input;
    reader.pos = bytes.byteOffset;
    (reader as { len: number }).len = bytes.byteOffset + bytes.byteLength;
    input.depth = 0;
    try {
      const message = readMessage(plan, input, bytes.byteLength, undefined) as MessageShape<Desc>;
      if (merges.length > 0) finishMerges(merges);
      return message;
    } catch (err) {
      merges.length = 0; // what a failed decode held is garbage now (a decode starts with it empty)
      if (err instanceof WireFormatError) throw err;
      // BinaryReader's own errors: premature EOF, invalid varint, an unskippable wire type.
      throw new WireFormatError(`cannot decode ${schema.typeName}: ${(err as Error).message}`);
    }
  };
}

function planFor(desc: DescMessage, plans: Map<string, Plan>, structsAsText: boolean): Plan {
  const known = plans.get(desc.typeName);
  if (known) return known; // recursive types share their plan
  const fields = new Map<number, FieldReader>();
  const plan: Plan = { typeName: desc.typeName, make: zeroFactory(desc), fields };
  plans.set(desc.typeName, plan);
  for (const field of desc.fields) fields.set(field.number, fieldReader(field, plans, structsAsText));
  // proto2 (and editions fields with explicit presence) keep defaults on a prototype that `make`
  // does not build: unset fields would read undefined instead of their default.
  if (Object.getPrototypeOf(create(desc)) !== Object.prototype) {
    throw new Error(`compileDecoder: ${desc.typeName}: messages with default values on a prototype (proto2) are not supported`);
  }
  return plan;
}

/** A function returning a fresh default message, as `create(desc)` would, without its reflection. */
function zeroFactory(desc: DescMessage): () => Target {
  // An object literal compiled from the defaults `create` gives: every message of a type then
  // has one hidden class from birth (a spread of a template, or properties added one by one,
  // measured 3x slower per message and left more garbage).
  const template = create(desc) as unknown as Target;
  const props = Object.keys(template).map((key) => {
    const v = template[key];
    const source =
      Array.isArray(v) ? "[]"
      : typeof v === "bigint" ? `${v}n`
      : v === undefined ? "undefined"
      : v instanceof Uint8Array ? "new Uint8Array(0)" // a bytes field (an object, but not {})
      : typeof v === "object" && v !== null && "case" in v ? "{ case: undefined }"
      : typeof v === "object" && v !== null ? "{}"
      : JSON.stringify(v);
    return `${JSON.stringify(key)}: ${source}`;
  });
  return new Function(`return () => ({ ${props.join(", ")} });`)() as () => Target;
}

function fieldReader(field: DescField, plans: Map<string, Plan>, structsAsText: boolean): FieldReader {
  const name = field.localName;
  const why = unsupportedFieldKind(field);
  if (why !== undefined) throw new Error(`compileDecoder: ${field.parent.typeName}.${field.name}: ${why} is not supported`);
  switch (field.fieldKind) {
    case "scalar":
    case "enum": {
      const read = scalarReader(field.fieldKind === "enum" ? ScalarType.INT32 : field.scalar, field.fieldKind === "scalar" && field.longAsString);
      const expected = wireTypeOf(field.fieldKind === "enum" ? ScalarType.INT32 : field.scalar);
      const oneof = field.oneof?.localName;
      return (input, wireType, target) => {
        expectWireType(field, wireType, expected);
        const value = read(input);
        if (oneof === undefined) target[name] = value;
        else target[oneof] = { case: name, value };
      };
    }
    case "message": {
      if (field.message.typeName === "google.protobuf.Struct" && structsAsText) {
        return (input, wireType, target) => {
          expectWireType(field, wireType, WireType.LengthDelimited);
          const length = input.reader.uint32();
          const sent = target[name] as JsonText | JsonObject | undefined;
          if (sent === undefined) {
            target[name] = new JsonText(readStructText(input, length));
            return;
          }
          // Sent again, the occurrences merge: the rare case pays for one object, which every
          // further occurrence merges into and which is serialized once, when the input is read
          // (re-parsing and re-serializing the text at each occurrence was quadratic: 4k
          // repeats of extra_data in one event, ~2.5 s).
          if (sent instanceof JsonText) {
            const object = sent.parse() as JsonObject;
            input.merges.push({ target, name, object });
            target[name] = readStruct(input, length, object);
          } else {
            readStruct(input, length, sent);
          }
        };
      }
      if (field.message.typeName === "google.protobuf.Struct") {
        return (input, wireType, target) => {
          expectWireType(field, wireType, WireType.LengthDelimited);
          target[name] = readStruct(input, input.reader.uint32(), target[name] as JsonObject | undefined);
        };
      }
      const oneof = field.oneof?.localName;
      // A recursive type gets the plan being made (registered before its fields are compiled).
      const p = planFor(field.message, plans, structsAsText);
      return (input, wireType, target) => {
        expectWireType(field, wireType, WireType.LengthDelimited);
        if (oneof === undefined) {
          target[name] = readMessage(p, input, input.reader.uint32(), target[name] as Target | undefined);
        } else {
          // A repeated occurrence of the same oneof member merges, as protobuf requires.
          const current = target[oneof] as { case: string | undefined; value?: Target };
          const into = current.case === name ? current.value : undefined;
          target[oneof] = { case: name, value: readMessage(p, input, input.reader.uint32(), into) };
        }
      };
    }
    case "list": {
      if (field.listKind === "message") {
        const p = planFor(field.message, plans, structsAsText);
        return (input, wireType, target) => {
          expectWireType(field, wireType, WireType.LengthDelimited);
          (target[name] as unknown[]).push(readMessage(p, input, input.reader.uint32(), undefined));
        };
      }
      const scalar = field.listKind === "enum" ? ScalarType.INT32 : field.scalar;
      const read = scalarReader(scalar, field.listKind === "scalar" && field.longAsString);
      const expected = wireTypeOf(scalar);
      return (input, wireType, target) => {
        const list = target[name] as unknown[];
        if (wireType === WireType.LengthDelimited && expected !== WireType.LengthDelimited) {
          const end = input.reader.uint32() + input.reader.pos;
          while (input.reader.pos < end) list.push(read(input));
          if (input.reader.pos !== end) throw new WireFormatError(`${field.parent.typeName}.${field.name}: packed values overrun their length`);
          return;
        }
        expectWireType(field, wireType, expected);
        list.push(read(input));
      };
    }
    case "map":
      // No message the hot path decodes has a map; refusing keeps this decoder small.
      throw new Error("unreachable: maps are refused above");
  }
}

/** Reads one message of `length` bytes into `into` (merging) or a new message. */
function readMessage(plan: Plan, input: Input, length: number, into: Target | undefined): Target {
  const { reader } = input;
  const end = enterMessage(input, length, plan.typeName);
  const message = into ?? plan.make();
  while (reader.pos < end) {
    const tag = readTag(input);
    const wireType = tag & 7;
    const read = plan.fields.get(tag >>> 3);
    if (read === undefined) skipUnknownField(input, tag);
    else read(input, wireType, message);
  }
  leaveMessage(input, end, plan.typeName);
  return message;
}

/** Serializes the objects that Struct fields sent more than once merged into (see {@link Input.merges}). */
function finishMerges(merges: Merge[]): void {
  for (const { target, name, object } of merges) target[name] = new JsonText(JSON.stringify(object));
  merges.length = 0;
}

/**
 * Starts reading a nested message of `length` bytes: checks that it fits the input and the
 * nesting limit; returns where it ends.
 */
function enterMessage(input: Input, length: number, typeName: string): number {
  const end = input.reader.pos + length;
  if (end > input.reader.len) throw new WireFormatError(`${typeName}: length ${length} runs past the end of the input`);
  if (++input.depth > MAX_DEPTH) throw new WireFormatError(`${typeName}: nested deeper than ${MAX_DEPTH} messages`);
  return end;
}

/** Ends a message begun with {@link enterMessage}: its last field must end exactly at its length. */
function leaveMessage(input: Input, end: number, typeName: string): void {
  if (input.reader.pos !== end) throw new WireFormatError(`${typeName}: a field runs past the message's length`);
  input.depth--;
}

/**
 * Passes over a field this decoder does not read (its tag already read), as protobuf requires of
 * fields unknown to the schema; groups within it count against the nesting limit.
 */
function skipUnknownField(input: Input, tag: number): void {
  input.reader.skip(tag & 7, tag >>> 3, MAX_DEPTH - input.depth);
}

/** A tag as one number (`fieldNo << 3 | wireType`), checked as protobuf-es checks it. */
function readTag(input: Input): number {
  const { reader } = input;
  const start = reader.pos;
  const tag = reader.uint32();
  const bytesRead = reader.pos - start;
  if (bytesRead > 5 || (bytesRead === 5 && input.text[reader.pos - 1]! > 0x0f)) throw new WireFormatError("illegal tag: varint overflows uint32");
  if (tag >>> 3 === 0 || (tag & 7) > 5) throw new WireFormatError(`illegal tag: field no ${tag >>> 3} wire type ${tag & 7}`);
  return tag;
}

function expectWireType(field: DescField, actual: number, expected: WireType): void {
  if (actual !== expected) throw new WireFormatError(`${field.parent.typeName}.${field.name}: wire type ${actual}, expected ${expected}`);
}

function scalarReader(scalar: ScalarType, longAsString: boolean): (input: Input) => unknown {
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
function readString(input: Input): string {
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

/** Longest string kept in the intern table. */
const INTERNED_MAX_BYTES = 32;
/** Slots in the intern table (a power of two). */
const INTERNED_SLOTS = 4096;
/**
 * Short ASCII strings decoded lately, by a hash of their bytes: states, kinds, names and keys
 * repeat from event to event, and a hit costs a hash and a compare instead of a native UTF-8
 * decode, a new string, and the garbage of it. A collision replaces the slot's entry. Only the
 * strings are kept (an ASCII string is compared with bytes a character a byte): a copy of the
 * bytes beside each, made on every miss, cost the decoder a fifth of its instructions with more
 * distinct strings than slots (docs/BENCHMARKS.md#measured-choices-in-the-code). Strings with other
 * characters are decoded every time.
 */
/** For decoding that keeps no strings: an empty intern table turns interning off. */
const NO_TABLES: StringTables = { interned: Object.freeze([]) as unknown as (string | undefined)[], json: new Map() };

/** A Struct map entry's key (field 1, string) and value (field 2, Value) tags. */
const ENTRY_KEY = (1 << 3) | WireType.LengthDelimited;
const ENTRY_VALUE = (2 << 3) | WireType.LengthDelimited;

/**
 * Reads the next field of a Struct: for a map entry (fields = 1) returns where the entry ends;
 * for any other field skips it and returns -1. The entry's key and value may come in any order,
 * either may be missing (its default), and unknown fields may sit beside them.
 */
function structEntryEnd(input: Input): number {
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
function skipEntryField(input: Input, tag: number): void {
  if (tag >>> 3 === 1 || tag >>> 3 === 2) throw new WireFormatError(`google.protobuf.Struct.fields: entry field ${tag >>> 3} with wire type ${tag & 7}`);
  skipUnknownField(input, tag);
}

/** Ends a map entry: its last field must end exactly at its length. */
function leaveStructEntry(input: Input, entryEnd: number): void {
  if (input.reader.pos !== entryEnd) throw new WireFormatError("google.protobuf.Struct.fields: an entry runs past its length");
}

/** Passes over a Value field that is not a kind: refused when it is one (fields 1-6) with the wrong wire type. */
function skipValueField(input: Input, tag: number): void {
  if (tag >>> 3 >= 1 && tag >>> 3 <= 6) throw new WireFormatError(`google.protobuf.Value: field ${tag >>> 3} with wire type ${tag & 7}`);
  skipUnknownField(input, tag);
}

/** A ListValue's `values` tag (field 1, Value). */
const LIST_VALUES = (1 << 3) | WireType.LengthDelimited;

/** Passes over a ListValue field other than `values`: refused when it is `values` with the wrong wire type. */
function skipListField(input: Input, tag: number): void {
  if (tag >>> 3 === 1) throw new WireFormatError(`google.protobuf.ListValue.values: wire type ${tag & 7}`);
  skipUnknownField(input, tag);
}

/** `google.protobuf.Struct` (map<string, Value> fields = 1) straight to a JSON object. */
function readStruct(input: Input, length: number, into: JsonObject | undefined): JsonObject {
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
      input = { reader: new BinaryReader(new Uint8Array(bytes.buffer)), text: nativeBuffer(Buffer.from(bytes.buffer)), depth: 0, merges: [], strings };
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

/**
 * Thrown inside a Struct being written as text when its encoding needs protobuf's merge rules,
 * which text cannot apply: the Struct is then decoded to an object. Never leaves the decoder.
 */
const NEEDS_MERGE = { needsMerge: true };

/**
 * `google.protobuf.Struct` straight to the JSON text of the object {@link readStruct} would build
 * (see {@link DecoderOptions.structs}); the same checks, so malformed input fails as it would.
 */
function readStructText(input: Input, length: number): string {
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

/** Most JSON string literals kept by {@link jsonString}; the cache starts over when full. */
const JSON_STRINGS_MAX = 4096;

/**
 * `JSON.stringify(s)`, kept for short strings: keys and enum-like values repeat from payload to
 * payload, and a lookup of a string the intern table gave before (its hash already computed)
 * costs a fraction of the call into the JSON serializer (~1,000 instructions a string, callgrind).
 */
function jsonString(input: Input, s: string): string {
  if (s.length > INTERNED_MAX_BYTES) return JSON.stringify(s);
  const strings = input.strings.json;
  let literal = strings.get(s);
  if (literal === undefined) {
    if (strings.size >= JSON_STRINGS_MAX) strings.clear();
    strings.set(s, (literal = JSON.stringify(s)));
  }
  return literal;
}
