/**
 * Scalar values for the compiled encoder: which values an implicit-presence field leaves out
 * (protobuf-es's rule), and each scalar written into the {@link Output}. The common cases are
 * written directly; the rest go through protobuf-es's `BinaryWriter`, so unusual values are
 * encoded, and refused, exactly as `toBinary` does. Apart from the plan compiler so that the
 * byte-for-byte rules for scalars can be read on their own.
 */
import { ScalarType } from "@bufbuild/protobuf";
import { BinaryWriter } from "@bufbuild/protobuf/wire";
import { UINT32_MAX, type Output } from "./encoder-output.js";

/** protobuf-es's `isScalarZeroValue`: what an implicit-presence field does not write. */
export function isScalarZero(scalar: ScalarType, v: unknown): boolean {
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
const MAX_SAFE_BIGINT = BigInt(Number.MAX_SAFE_INTEGER);

/**
 * One scalar value (its tag already written). The common cases are written here; the others by
 * protobuf-es's `BinaryWriter`, which also refuses what `toBinary` refuses, with its words.
 */
export function writeScalar(out: Output, scalar: ScalarType, v: unknown, where: string): void {
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
