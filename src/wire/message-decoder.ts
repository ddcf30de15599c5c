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
 *
 * Its parts: this module compiles the plans (a reader per field) and reads messages with them;
 * `decoder-input.ts` holds the input's state and framing checks, `scalar-readers.ts` the scalar
 * and string readers with the decoder's string tables, `struct-object-reader.ts` and
 * `struct-json-text.ts` the two ways a `Struct` is read (src/wire/README.md).
 */
import { create, ScalarType, type DescField, type DescMessage, type JsonObject, type MessageShape } from "@bufbuild/protobuf";
import { WireType } from "@bufbuild/protobuf/wire";
import { JsonText } from "../util/json-text.js";
import { unsupportedFieldKind, wireTypeOf } from "../../sdk/src/wire/index.js";
import { enterMessage, expectWireType, leaveMessage, newInput, readTag, skipUnknownField, WireFormatError, type Input, type Merge, type Target } from "./decoder-input.js";
import { newStringTables, scalarReader } from "./scalar-readers.js";
import { readStructText } from "./struct-json-text.js";
import { readStruct } from "./struct-object-reader.js";

export { WireFormatError } from "./decoder-input.js";
export { decodeStructOccurrences } from "./struct-object-reader.js";

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
      input = newInput(bytes, strings);
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
  // was slower per message and left more garbage: docs/BENCHMARKS.md#measured-choices-in-the-code).
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
          // (re-parsing and re-serializing the text at each occurrence was quadratic:
          // docs/HARDENING.md).
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

/** Serializes the objects that Struct fields sent more than once merged into (see `Input.merges`). */
function finishMerges(merges: Merge[]): void {
  for (const { target, name, object } of merges) target[name] = new JsonText(JSON.stringify(object));
  merges.length = 0;
}
