/**
 * Requests of an exact encoded size, for tests of read caps: a message padded with an unknown
 * field (number 99, which servers skip) to exactly the bytes wanted.
 */
import { toBinary, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import { WireType } from "@bufbuild/protobuf/wire";

/** `n` as a protobuf varint. */
function varint(n: number): number[] {
  const out: number[] = [];
  while (n > 0x7f) {
    out.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  out.push(n);
  return out;
}

/**
 * `message` padded to exactly `bytes` bytes of protobuf binary.
 *
 * @throws Error when `message` alone is too large for that.
 */
export function sizedMessage<D extends DescMessage>(schema: D, message: MessageShape<D>, bytes: number): MessageShape<D> {
  const bare = toBinary(schema, message).length;
  for (let lengthBytes = 1; lengthBytes <= 5; lengthBytes++) {
    const pad = bytes - bare - 2 - lengthBytes; // 2: the tag of field 99
    if (pad < 0 || varint(pad).length !== lengthBytes) continue;
    const padded = { ...message, $unknown: [{ no: 99, wireType: WireType.LengthDelimited, data: new Uint8Array([...varint(pad), ...new Uint8Array(pad)]) }] };
    if (toBinary(schema, padded).length === bytes) return padded;
  }
  throw new Error(`cannot pad ${schema.typeName} of ${bare} bytes to ${bytes}`);
}
