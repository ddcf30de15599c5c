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
 *
 * This module compiles the per-field plan; the output buffer is `encoder-output.ts`, scalar values
 * `scalar-writer.ts`, and `Struct` fields `struct-writer.ts`.
 */
import { create, ScalarType, type DescField, type DescMessage, type JsonObject, type MessageShape } from "@bufbuild/protobuf";
import { WireType } from "@bufbuild/protobuf/wire";
import { unsupportedFieldKind, wireTypeOf } from "./codec-fields.js";
import { KEPT_BUFFER_BYTES, Output } from "./encoder-output.js";
import { isScalarZero, writeScalar } from "./scalar-writer.js";
import { writeStruct } from "./struct-writer.js";

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
