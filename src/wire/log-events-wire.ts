/**
 * The binary fast path of `LogEvents`: the same RPC on the same path, seen through server-side
 * message types that are wire-identical to `LogEventsRequest` / `LogEventsResponse` but hold each
 * event as raw bytes. Connect then only splits the request into events (protobuf-es reading one
 * `bytes` field per event, a sub-array of the request) and sends the answer as it was encoded; the
 * events are decoded by a compiled decoder ({@link compileDecoder}) and the whole answer encoded by
 * hand into one buffer ({@link encodeLogEventsResponse}), which costs a fraction of protobuf-es's
 * reflective codecs.
 *
 * Wire-identical because a length-delimited message field and a `bytes` field are the same bytes
 * on the wire (tag, length, payload). Only the binary encodings can use it: the JSON form of a
 * `bytes` field is base64, so Connect JSON requests stay on the generated types
 * ({@link isBinaryLogEventsRequest} tells them apart). The types are the SDK's, imported through
 * its public `./wire` entry (`sdk/src/wire/index.ts`); its Node client sends events through them
 * too. They are never advertised: server reflection knows only `analytics.v1`.
 */
import type { DescMethodUnary } from "@bufbuild/protobuf";
import type { WireType } from "@bufbuild/protobuf/wire";
import { Buffer } from "node:buffer";
import { nativeBuffer, utf8Length, writeUtf8, type NativeBuffer } from "./native-buffer.js";
import { AnalyticsService, type EventResult } from "../../sdk/src/gen/analytics/v1/analytics_service_pb.js";
import { UNARY_WIRE_METHODS } from "./unary-log-wire.js";
import {
  LogEventsRequestWireSchema as requestSchema,
  LogEventsResponseWireSchema as responseSchema,
  type LogEventsResponseWire,
} from "../../sdk/src/wire/index.js";

export type { LogEventsRequestWire, LogEventsResponseWire } from "../../sdk/src/wire/index.js";

/**
 * `AnalyticsService.LogEvents` with the wire types: same service, name and path, so routing,
 * interceptors (auth, request log) and clients see the one RPC.
 */
export const logEventsWireMethod = {
  ...AnalyticsService.method.logEvents,
  input: requestSchema,
  output: responseSchema,
} as unknown as DescMethodUnary<typeof requestSchema, typeof responseSchema>;

/**
 * A response of the wire type that protobuf-es (and so Connect) writes as exactly `encoded`, a
 * whole `LogEventsResponse` encoding ({@link encodeLogEventsResponse}): the bytes travel as the
 * message's unknown fields, which `toBinary` writes back verbatim, after the first field's tag
 * (`toBinary` writes each unknown field as its tag, then its data as kept). One buffer for the
 * whole answer instead of a buffer per result that protobuf-es then frames and joins
 * (docs/BENCHMARKS.md#measured-choices-in-the-code).
 */
export function logEventsResponseWire(encoded: Uint8Array): LogEventsResponseWire {
  const response: LogEventsResponseWire = { $typeName: "analytics.internal.LogEventsResponseWire", results: [], storedCount: 0, rejectedCount: 0 };
  if (encoded.length > 0) {
    // Every tag of a LogEventsResponse (fields 1-3) is one byte.
    const tag = encoded[0]!;
    response.$unknown = [{ no: tag >>> 3, wireType: (tag & 7) as WireType, data: encoded.subarray(1) }];
  }
  return response;
}

const BINARY_CONTENT_TYPE = /^application\/(?:grpc(?:-web)?(?:\+proto)?|proto)\s*(?:;|$)/i;
const LOG_EVENTS_PATH = `/${AnalyticsService.typeName}/${AnalyticsService.method.logEvents.name}`;

/**
 * Whether an HTTP request is a `LogEvents` call in a binary encoding: gRPC, gRPC-Web or Connect
 * unary with `application/proto` (not JSON, not a GET).
 */
export function isBinaryLogEventsRequest(method: string | undefined, url: string | undefined, contentType: string | undefined): boolean {
  return method === "POST" && url === LOG_EVENTS_PATH && contentType !== undefined && BINARY_CONTENT_TYPE.test(contentType);
}

/** The paths of the unary methods read through wire types (`unary-log-wire.ts`). */
const UNARY_WIRE_PATHS = new Set(UNARY_WIRE_METHODS.map((m) => `/${AnalyticsService.typeName}/${m.name}`));

/**
 * Whether an HTTP request goes to the binary fast path: `LogEvents` ({@link isBinaryLogEventsRequest})
 * or a unary `Log*` call whose request has a Struct field (`unary-log-wire.ts`), in a binary
 * encoding.
 */
export function isBinaryFastPathRequest(method: string | undefined, url: string | undefined, contentType: string | undefined): boolean {
  if (method !== "POST" || url === undefined || contentType === undefined) return false;
  return (url === LOG_EVENTS_PATH || UNARY_WIRE_PATHS.has(url)) && BINARY_CONTENT_TYPE.test(contentType);
}

/**
 * `LogEventsResponse { results, stored_count, rejected_count }` in protobuf binary, exactly as
 * `toBinary(LogEventsResponseSchema, ...)` writes it, into one buffer: each result as field 1
 * (outcome: 1, varint, omitted when 0; id: 2, string, omitted when empty; violations: 3, each a
 * `FieldViolation` with field = 1 and description = 2), then the counts (2 and 3, omitted when 0).
 */
export function encodeLogEventsResponse(results: readonly EventResult[], storedCount: number, rejectedCount: number): Buffer {
  const sizes = new Array<number>(results.length);
  let size = 0;
  for (let i = 0; i < results.length; i++) {
    const n = resultSize(results[i]!);
    sizes[i] = n;
    size += 1 + varintSize(n) + n;
  }
  if (storedCount !== 0) size += 1 + varintSize(storedCount);
  if (rejectedCount !== 0) size += 1 + varintSize(rejectedCount);
  const out = nativeBuffer(Buffer.allocUnsafe(size));
  let pos = 0;
  for (let i = 0; i < results.length; i++) {
    out[pos++] = 0x0a;
    pos = writeVarint(out, pos, sizes[i]!);
    pos = writeResult(out, pos, results[i]!);
  }
  if (storedCount !== 0) {
    out[pos++] = 0x10;
    pos = writeVarint(out, pos, storedCount);
  }
  if (rejectedCount !== 0) {
    out[pos++] = 0x18;
    pos = writeVarint(out, pos, rejectedCount);
  }
  return out;
}

/** Bytes of `result`'s encoding (without its own tag and length). */
function resultSize(result: EventResult): number {
  let size = 0;
  if (result.outcome !== 0) size += 1 + varintSize(result.outcome);
  size += stringSize(utf8Length(result.id));
  for (const v of result.violations) {
    const inner = violationSize(v);
    size += 1 + varintSize(inner) + inner;
  }
  return size;
}

/** Bytes of a `FieldViolation`'s encoding (without its own tag and length). */
const violationSize = (v: EventResult["violations"][number]): number => stringSize(utf8Length(v.field)) + stringSize(utf8Length(v.description));

/** Writes `result`'s fields at `pos`; returns the position after them. */
function writeResult(out: NativeBuffer, pos: number, result: EventResult): number {
  if (result.outcome !== 0) {
    out[pos++] = 0x08;
    pos = writeVarint(out, pos, result.outcome);
  }
  pos = writeString(out, pos, 0x12, result.id);
  for (const v of result.violations) {
    out[pos++] = 0x1a;
    pos = writeVarint(out, pos, violationSize(v));
    pos = writeString(out, pos, 0x0a, v.field);
    pos = writeString(out, pos, 0x12, v.description);
  }
  return pos;
}

/** Bytes of a string field of `bytes` UTF-8 bytes (tag, length, text); 0 when empty (omitted). */
const stringSize = (bytes: number): number => (bytes > 0 ? 1 + varintSize(bytes) + bytes : 0);

/** Writes `n` as a varint at `pos`; returns the position after it. */
function writeVarint(out: Buffer, pos: number, n: number): number {
  if (n < 0) {
    // Only an (unknown) negative outcome: toBinary writes an int32 sign-extended to 64 bits.
    for (let i = 0; i < 9; i++, n >>= 7) out[pos++] = (n & 0x7f) | 0x80;
    out[pos++] = 0x01;
    return pos;
  }
  while (n > 0x7f) {
    out[pos++] = (n & 0x7f) | 0x80;
    n >>>= 7;
  }
  out[pos++] = n;
  return pos;
}

/** Writes a string field (omitted when empty) at `pos`; returns the position after it. */
function writeString(out: NativeBuffer, pos: number, tag: number, text: string): number {
  if (text === "") return pos;
  const bytes = utf8Length(text);
  out[pos++] = tag;
  pos = writeVarint(out, pos, bytes);
  return pos + writeUtf8(out, text, pos);
}

/** Bytes of `n` (a 32-bit integer; a negative one is sign-extended to 64 bits: 10 bytes) as a varint. */
function varintSize(n: number): number {
  return n < 0 ? 10 : n < 0x80 ? 1 : n < 0x4000 ? 2 : n < 0x200000 ? 3 : n < 0x10000000 ? 4 : 5;
}
