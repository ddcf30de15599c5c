/**
 * `google.protobuf.Struct` and `Value` written straight from the JSON object protobuf-es keeps for
 * a `Struct` field: no `Value` message per entry, the entries in the object's key order, as
 * `toBinary` writes them. Apart from the plan compiler: a recursion over JSON, not over
 * descriptors.
 */
import { WireType } from "@bufbuild/protobuf/wire";
import type { JsonObject, JsonValue } from "@bufbuild/protobuf";
import type { Output } from "./encoder-output.js";

/** `google.protobuf.Struct` from a JSON object: one map entry per key, in the object's key order. */
export function writeStruct(out: Output, json: JsonObject | null): void {
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
