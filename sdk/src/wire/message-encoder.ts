/**
 * A protobuf binary encoder compiled once per message type from its protobuf-es descriptor, for
 * the SDK's hot path (`LogEvents` batches): the same bytes as `toBinary` at a fraction of its CPU.
 *
 * Why it exists: protobuf-es encodes reflectively (a `ReflectMessage` per message, a `Value`
 * message per `Struct` entry, a `TextEncoder` call per string, and a copy of every nested message
 * into its parent at each level), enough that a service logging many events spent a good part
 * of a core encoding them (docs/BENCHMARKS.md#measured-choices-in-the-code). This encoder writes each field
 * straight into one growing buffer and each nested message in place (its length is filled in when
 * the message ends).
 *
 * Same bytes as `toBinary` (field-number order, the same presence rules, `Struct` entries in the
 * object's key order, unknown fields last); values of unusual types (a 64-bit field, a float, a
 * value that is not of its field's JavaScript type) go through protobuf-es's own `BinaryWriter`, so
 * they are encoded, and refused, exactly as `toBinary` does. Field kinds the SDK's messages do not
 * use (maps other than `Struct`, wrapper, `Value` and `ListValue` fields, `Struct` in a list,
 * groups, proto2 defaults) are refused when the encoder is compiled, so a schema change that needs
 * them fails in the tests, never silently at run time.
 */
import { create, ScalarType, type DescField, type DescMessage, type JsonObject, type JsonValue, type MessageShape } from "@bufbuild/protobuf";
import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { unsupportedFieldKind, wireTypeOf } from "./codec-fields.js";

/** Encodes one message. */
export type MessageEncoder<Desc extends DescMessage> = (message: MessageShape<Desc>) => Uint8Array;

type Message = Record<string, unknown>;

/** Writes one field of a message (when it is set) into the output. */
type FieldWriter = (out: Output, message: Message) => void;

/** How to encode one message type: its fields' writers in field-number order. */
interface Plan {
  readonly typeName: string;
  readonly fields: FieldWriter[];
}

/**
 * Compiles the encoder for `schema` and every message type it reaches. Throws (at compile time)
 * when the schema uses a field kind this encoder does not handle.
 */
export function compileEncoder<Desc extends DescMessage>(schema: Desc): MessageEncoder<Desc> {
  const plan = planFor(schema, new Map());
  const out = new Output();
  return (message) => {
    out.pos = 0; // an encode that threw midway leaves nothing behind
    writeMessage(out, plan, message as unknown as Message);
    const bytes = out.buf.slice(0, out.pos);
    if (out.buf.length > KEPT_BUFFER_BYTES) out.shrink(); // one huge message does not pin its buffer
    return bytes;
  };
}

function planFor(desc: DescMessage, plans: Map<string, Plan>): Plan {
  const known = plans.get(desc.typeName);
  if (known) return known; // recursive types share their plan
  const plan: Plan = { typeName: desc.typeName, fields: [] };
  plans.set(desc.typeName, plan);
  for (const field of [...desc.fields].sort((a, b) => a.number - b.number)) plan.fields.push(fieldWriter(field, plans));
  // proto2 (and editions fields with explicit presence) keep defaults on a prototype, and may have
  // required fields: not what the SDK's proto3 messages do.
  if (Object.getPrototypeOf(create(desc)) !== Object.prototype) {
    throw new Error(`compileEncoder: ${desc.typeName}: messages with default values on a prototype (proto2) are not supported`);
  }
  return plan;
}

function writeMessage(out: Output, plan: Plan, message: Message): void {
  for (const write of plan.fields) write(out, message);
  const unknown = message.$unknown as { no: number; wireType: WireType; data: Uint8Array }[] | undefined;
  if (unknown !== undefined) for (const u of unknown) out.tag(u.no, u.wireType).raw(u.data);
}

function fieldWriter(field: DescField, plans: Map<string, Plan>): FieldWriter {
  const name = field.localName;
  const why = unsupportedFieldKind(field);
  if (why !== undefined) throw new Error(`compileEncoder: ${field.parent.typeName}.${field.name}: ${why} is not supported`);
  const oneof = field.oneof?.localName;
  /** The field's value when set, as protobuf-es's `isSet` decides it; else undefined. */
  const setValue = (isSetImplicit: (v: unknown) => boolean): ((m: Message) => unknown) => {
    if (oneof !== undefined) {
      return (m) => {
        const o = m[oneof] as { case: string | undefined; value?: unknown };
        return o.case === name ? o.value : undefined;
      };
    }
    if (field.presence !== IMPLICIT) return (m) => (m[name] !== undefined && Object.prototype.hasOwnProperty.call(m, name) ? m[name] : undefined);
    return (m) => (isSetImplicit(m[name]) ? m[name] : undefined);
  };
  switch (field.fieldKind) {
    case "scalar":
    case "enum": {
      const scalar = field.fieldKind === "enum" ? ScalarType.INT32 : field.scalar;
      const zero = field.fieldKind === "enum" ? field.enum.values[0]!.number : undefined;
      const get = setValue((v) => (field.fieldKind === "enum" ? v !== zero : !isScalarZero(scalar, v)));
      const wireType = wireTypeOf(scalar);
      const where = `${field.parent.typeName}.${field.name}`;
      return (out, m) => {
        const v = get(m);
        if (v === undefined) return;
        out.tag(field.number, wireType);
        writeScalar(out, scalar, v, where);
      };
    }
    case "message": {
      if (field.message.typeName === "google.protobuf.Struct") {
        const get = setValue(() => true);
        return (out, m) => {
          const v = get(m);
          if (v === undefined) return;
          // protobuf-es refuses these too (with a less helpful error); null is an empty Struct.
          if (v !== null && (typeof v !== "object" || Array.isArray(v))) {
            throw new Error(`cannot encode field ${field.parent.typeName}.${field.name} to binary: a google.protobuf.Struct must be a JSON object`);
          }
          const start = out.tag(field.number, WireType.LengthDelimited).begin();
          writeStruct(out, v as JsonObject);
          out.end(start);
        };
      }
      const plan = planFor(field.message, plans);
      const get = setValue(() => true);
      return (out, m) => {
        const v = get(m);
        if (v === undefined) return;
        const start = out.tag(field.number, WireType.LengthDelimited).begin();
        writeMessage(out, plan, v as Message);
        out.end(start);
      };
    }
    case "list": {
      if (field.listKind === "message") {
        const plan = planFor(field.message, plans);
        return (out, m) => {
          for (const item of m[name] as Message[]) {
            const start = out.tag(field.number, WireType.LengthDelimited).begin();
            writeMessage(out, plan, item);
            out.end(start);
          }
        };
      }
      const scalar = field.listKind === "enum" ? ScalarType.INT32 : field.scalar;
      const where = `${field.parent.typeName}.${field.name}`;
      if (field.packed) {
        return (out, m) => {
          const list = m[name] as unknown[];
          if (list.length === 0) return;
          const start = out.tag(field.number, WireType.LengthDelimited).begin();
          for (const item of list) writeScalar(out, scalar, item, where);
          out.end(start);
        };
      }
      const wireType = wireTypeOf(scalar);
      return (out, m) => {
        for (const item of m[name] as unknown[]) {
          out.tag(field.number, wireType);
          writeScalar(out, scalar, item, where);
        }
      };
    }
    case "map":
      throw new Error("unreachable: maps are refused above");
  }
}

/** `FeatureSet.FieldPresence.IMPLICIT`: proto3 fields without `optional`. */
const IMPLICIT = 2;

/** protobuf-es's `isScalarZeroValue`: what an implicit-presence field does not write. */
function isScalarZero(scalar: ScalarType, v: unknown): boolean {
  switch (scalar) {
    case ScalarType.BOOL:
      return v === false;
    case ScalarType.STRING:
      return v === "";
    case ScalarType.BYTES:
      return v instanceof Uint8Array && v.byteLength === 0;
    case ScalarType.DOUBLE:
    case ScalarType.FLOAT:
      return Object.is(v, 0); // -0 is written
    default:
      return v == 0; // 0, 0n and "0" (a 64-bit value as a string)
  }
}

const INT32_MIN = -0x8000_0000;
const INT32_MAX = 0x7fff_ffff;
const UINT32_MAX = 0xffff_ffff;
const MAX_SAFE_BIGINT = BigInt(Number.MAX_SAFE_INTEGER);

/**
 * One scalar value (its tag already written). The common cases are written here; the others by
 * protobuf-es's `BinaryWriter`, which also refuses what `toBinary` refuses, with its words.
 */
function writeScalar(out: Output, scalar: ScalarType, v: unknown, where: string): void {
  switch (scalar) {
    case ScalarType.STRING:
      if (typeof v === "string") return out.string(v);
      break;
    case ScalarType.BOOL:
      out.byte(v ? 1 : 0);
      return;
    case ScalarType.INT32:
      if (typeof v === "number" && Number.isInteger(v) && v >= INT32_MIN && v <= INT32_MAX) return out.int32(v);
      break;
    case ScalarType.UINT32:
      if (typeof v === "number" && Number.isInteger(v) && v >= 0 && v <= UINT32_MAX) return out.varint(v);
      break;
    case ScalarType.DOUBLE:
      if (typeof v === "number") return out.double(v);
      break;
    case ScalarType.INT64:
    case ScalarType.UINT64:
      // A Timestamp's seconds, most often: non-negative, within 2^53.
      if (typeof v === "bigint" && v >= 0n && v <= MAX_SAFE_BIGINT) return out.varint53(Number(v));
      break;
    case ScalarType.BYTES:
      if (v instanceof Uint8Array) {
        out.varint(v.byteLength);
        out.raw(v);
        return;
      }
      break;
  }
  out.raw(viaProtobufEs(scalar, v, where));
}

/** `v` encoded by protobuf-es's writer (no tag), with `toBinary`'s error text when it refuses it. */
function viaProtobufEs(scalar: ScalarType, v: unknown, where: string): Uint8Array {
  const w = new BinaryWriter();
  try {
    const value = v as never;
    switch (scalar) {
      case ScalarType.STRING: w.string(value); break;
      case ScalarType.BOOL: w.bool(value); break;
      case ScalarType.DOUBLE: w.double(value); break;
      case ScalarType.FLOAT: w.float(value); break;
      case ScalarType.INT32: w.int32(value); break;
      case ScalarType.INT64: w.int64(value); break;
      case ScalarType.UINT64: w.uint64(value); break;
      case ScalarType.FIXED64: w.fixed64(value); break;
      case ScalarType.BYTES: w.bytes(value); break;
      case ScalarType.FIXED32: w.fixed32(value); break;
      case ScalarType.SFIXED32: w.sfixed32(value); break;
      case ScalarType.SFIXED64: w.sfixed64(value); break;
      case ScalarType.SINT64: w.sint64(value); break;
      case ScalarType.UINT32: w.uint32(value); break;
      case ScalarType.SINT32: w.sint32(value); break;
    }
  } catch (err) {
    throw new Error(`cannot encode field ${where} to binary: ${err instanceof Error ? err.message : String(err)}`);
  }
  return w.finish();
}

/** `google.protobuf.Struct` from a JSON object: one map entry per key, in the object's key order. */
function writeStruct(out: Output, json: JsonObject | null): void {
  if (json === null) return; // an empty Struct, as protobuf-es writes it
  for (const [key, value] of Object.entries(json)) {
    const entry = out.tag(1, WireType.LengthDelimited).begin();
    out.tag(1, WireType.LengthDelimited).string(key); // a map entry's key is written even when ""
    const inner = out.tag(2, WireType.LengthDelimited).begin();
    writeValue(out, value);
    out.end(inner);
    out.end(entry);
  }
}

/** `google.protobuf.Value` from a JSON value (anything else, e.g. undefined: a Value with no kind). */
function writeValue(out: Output, json: JsonValue): void {
  switch (typeof json) {
    case "number":
      out.tag(2, WireType.Bit64).double(json);
      return;
    case "string":
      out.tag(3, WireType.LengthDelimited).string(json);
      return;
    case "boolean":
      out.tag(4, WireType.Varint).byte(json ? 1 : 0);
      return;
    case "object": {
      if (json === null) {
        out.tag(1, WireType.Varint).byte(0); // null_value: NULL_VALUE, written as a oneof member
        return;
      }
      if (Array.isArray(json)) {
        const list = out.tag(6, WireType.LengthDelimited).begin();
        for (const item of json) {
          const value = out.tag(1, WireType.LengthDelimited).begin();
          writeValue(out, item);
          out.end(value);
        }
        out.end(list);
        return;
      }
      const struct = out.tag(5, WireType.LengthDelimited).begin();
      writeStruct(out, json);
      out.end(struct);
      return;
    }
  }
}

/** The bytes of a varint of `n` (0 ≤ n < 2^32). */
const varintSize = (n: number): number => (n < 0x80 ? 1 : n < 0x4000 ? 2 : n < 0x20_0000 ? 3 : n < 0x1000_0000 ? 4 : 5);

const utf8 = new TextEncoder();

/** Bytes an encoder's buffer starts with, and keeps between messages at most. */
const KEPT_BUFFER_BYTES = 64 * 1024;

/** A growing buffer with protobuf's primitive writes. */
class Output {
  buf = new Uint8Array(KEPT_BUFFER_BYTES);
  view = new DataView(this.buf.buffer);
  pos = 0;

  /** Back to the starting size (between messages). */
  shrink(): void {
    this.buf = new Uint8Array(KEPT_BUFFER_BYTES);
    this.view = new DataView(this.buf.buffer);
    this.pos = 0;
  }

  tag(no: number, wireType: WireType): this {
    this.varint(((no << 3) | wireType) >>> 0);
    return this;
  }

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

  double(n: number): void {
    this.room(8);
    this.view.setFloat64(this.pos, n, true);
    this.pos += 8;
  }

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

  room(bytes: number): void {
    if (this.pos + bytes <= this.buf.length) return;
    const grown = new Uint8Array(Math.max(this.buf.length * 2, this.pos + bytes));
    grown.set(this.buf.subarray(0, this.pos));
    this.buf = grown;
    this.view = new DataView(grown.buffer);
  }
}
