/**
 * Which transports encode messages in protobuf binary: the SDK's own transport factories mark
 * theirs, so clients may send pre-encoded messages through them (the JSON form of a pre-encoded
 * message would be base64 of it, which the server would not take).
 *
 * @module
 */
import type { Transport } from "@connectrpc/connect";

const kBinary = Symbol("binaryTransport");

/** Marks `transport` as one that encodes every message in protobuf binary; returns it. */
export function markBinaryTransport<T extends Transport>(transport: T): T {
  return Object.assign(transport, { [kBinary]: true });
}

/** True for a transport marked by {@link markBinaryTransport}. */
export function isBinaryTransport(transport: Transport): boolean {
  return (transport as { [kBinary]?: boolean })[kBinary] === true;
}
