/**
 * What the compiled protobuf codecs (the SDK's encoder, the server's decoder) share about fields:
 * which kinds they handle, and each scalar type's wire type.
 *
 * @module
 */
import { ScalarType, type DescField } from "@bufbuild/protobuf";
import { WireType } from "@bufbuild/protobuf/wire";
import { isWrapperDesc } from "@bufbuild/protobuf/wkt";

/** The wire type a (non-packed) value of `scalar` is written with. */
export function wireTypeOf(scalar: ScalarType): WireType {
  switch (scalar) {
    case ScalarType.STRING:
    case ScalarType.BYTES:
      return WireType.LengthDelimited;
    case ScalarType.DOUBLE:
    case ScalarType.FIXED64:
    case ScalarType.SFIXED64:
      return WireType.Bit64;
    case ScalarType.FLOAT:
    case ScalarType.FIXED32:
    case ScalarType.SFIXED32:
      return WireType.Bit32;
    default:
      return WireType.Varint;
  }
}

const JSON_TYPES = new Set(["google.protobuf.Struct", "google.protobuf.Value", "google.protobuf.ListValue"]);

/**
 * Why a compiled codec does not handle `field`, or undefined when it does. Not handled: maps,
 * groups, wrapper types and `Value` / `ListValue` fields (protobuf-es gives them special shapes),
 * `Struct` in a oneof, and any of the JSON types in a list. The analytics messages the codecs
 * serve use none of them; a schema change that does fails when the codec is compiled.
 */
export function unsupportedFieldKind(field: DescField): string | undefined {
  switch (field.fieldKind) {
    case "map":
      return "a map field";
    case "message":
      if (field.delimitedEncoding) return "group encoding";
      if (field.message.typeName === "google.protobuf.Struct") return field.oneof ? "a Struct in a oneof" : undefined;
      if (JSON_TYPES.has(field.message.typeName) || isWrapperDesc(field.message)) return field.message.typeName;
      return undefined;
    case "list":
      if (field.listKind !== "message") return undefined;
      if (field.delimitedEncoding) return "group encoding";
      return JSON_TYPES.has(field.message.typeName) ? `a repeated ${field.message.typeName}` : undefined;
    default:
      return undefined;
  }
}
