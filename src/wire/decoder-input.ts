/**
 * What every reader of the compiled decoder (`message-decoder.ts`) shares: the state of one input
 * being read ({@link Input}), its error, and the framing checks of tags and nested messages.
 *
 * Why a module of its own: the message reader, the scalar readers and both Struct readers frame
 * their input the same way; one copy of these checks keeps malformed input failing alike
 * wherever it is read.
 */
import { type DescField, type JsonObject } from "@bufbuild/protobuf";
import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";
import { Buffer } from "node:buffer";
import { nativeBuffer, type NativeBuffer } from "./native-buffer.js";
import type { StringTables } from "./scalar-readers.js";

/** The input is not a valid encoding of the message; the text says where, safe to show a client. */
export class WireFormatError extends Error {
  override readonly name = "WireFormatError";
}

/** Deepest message nesting accepted (as protobuf-es: a bound on recursion for hostile input). */
export const MAX_DEPTH = 100;

/** A message being decoded, as an object whose fields are set by name. */
export type Target = Record<string, unknown>;

/** The reader of one message being decoded, with what a field reader needs besides the bytes. */
export interface Input {
  readonly reader: BinaryReader;
  /** The same bytes as a Buffer, for its native UTF-8 decoding. */
  readonly text: NativeBuffer;
  depth: number;
  /**
   * Struct fields decoded as text but sent more than once (`structs: "json-text"`): held as the
   * object they merge into until the whole input is read, then serialized once
   * (`finishMerges` in `message-decoder.ts`). Usually empty.
   */
  readonly merges: Merge[];
  /** The decoder's string tables (one set per compiled decoder, never shared between them). */
  readonly strings: StringTables;
}

/**
 * A new {@link Input} over the whole buffer `bytes` is a view of; callers bound it per item
 * (`reader.pos`, `reader.len`). Every Input is made here, so all have one shape.
 */
export function newInput(bytes: Uint8Array, strings: StringTables): Input {
  return { reader: new BinaryReader(new Uint8Array(bytes.buffer)), text: nativeBuffer(Buffer.from(bytes.buffer)), depth: 0, merges: [], strings };
}

/** A Struct field sent more than once: where it goes, and the object its occurrences merge into. */
export interface Merge {
  readonly target: Target;
  readonly name: string;
  readonly object: JsonObject;
}

/**
 * Starts reading a nested message of `length` bytes: checks that it fits the input and the
 * nesting limit; returns where it ends.
 */
export function enterMessage(input: Input, length: number, typeName: string): number {
  const end = input.reader.pos + length;
  if (end > input.reader.len) throw new WireFormatError(`${typeName}: length ${length} runs past the end of the input`);
  if (++input.depth > MAX_DEPTH) throw new WireFormatError(`${typeName}: nested deeper than ${MAX_DEPTH} messages`);
  return end;
}

/** Ends a message begun with {@link enterMessage}: its last field must end exactly at its length. */
export function leaveMessage(input: Input, end: number, typeName: string): void {
  if (input.reader.pos !== end) throw new WireFormatError(`${typeName}: a field runs past the message's length`);
  input.depth--;
}

/**
 * Passes over a field this decoder does not read (its tag already read), as protobuf requires of
 * fields unknown to the schema; groups within it count against the nesting limit.
 */
export function skipUnknownField(input: Input, tag: number): void {
  input.reader.skip(tag & 7, tag >>> 3, MAX_DEPTH - input.depth);
}

/** A tag as one number (`fieldNo << 3 | wireType`), checked as protobuf-es checks it. */
export function readTag(input: Input): number {
  const { reader } = input;
  const start = reader.pos;
  const tag = reader.uint32();
  const bytesRead = reader.pos - start;
  if (bytesRead > 5 || (bytesRead === 5 && input.text[reader.pos - 1]! > 0x0f)) throw new WireFormatError("illegal tag: varint overflows uint32");
  if (tag >>> 3 === 0 || (tag & 7) > 5) throw new WireFormatError(`illegal tag: field no ${tag >>> 3} wire type ${tag & 7}`);
  return tag;
}

/** Refuses a known field sent with a wire type other than its own. */
export function expectWireType(field: DescField, actual: number, expected: WireType): void {
  if (actual !== expected) throw new WireFormatError(`${field.parent.typeName}.${field.name}: wire type ${actual}, expected ${expected}`);
}
