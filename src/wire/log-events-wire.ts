/**
 * The binary fast path of `LogEvents`: the same RPC on the same path, seen through server-side
 * message types that are wire-identical to `LogEventsRequest` / `LogEventsResponse` but hold each
 * event and each result as raw bytes. Connect then only splits the request into events (protobuf-es
 * reading one `bytes` field per event, a sub-array of the request) and joins the answer; the
 * events are decoded by a compiled decoder ({@link compileDecoder}) and the results encoded by hand
 * ({@link encodeEventResult}), which costs a fraction of protobuf-es's reflective codecs.
 *
 * Wire-identical because a length-delimited message field and a `bytes` field are the same bytes
 * on the wire (tag, length, payload). Only the binary encodings can use it: the JSON form of a
 * `bytes` field is base64, so Connect JSON requests stay on the generated types
 * ({@link isBinaryLogEventsRequest} tells them apart). The types are the SDK's
 * (`sdk/src/wire/log-events-wire.ts`), whose Node client sends events through them too; they are
 * never advertised: server reflection knows only `analytics.v1`.
 */
import type { DescMethodUnary } from "@bufbuild/protobuf";
import { Buffer } from "node:buffer";
import { nativeBuffer, type NativeBuffer } from "../util/native-buffer.js";
import { AnalyticsService, type EventResult } from "../../sdk/src/gen/analytics/v1/analytics_service_pb.js";
import {
  LogEventsRequestWireSchema as requestSchema,
  LogEventsResponseWireSchema as responseSchema,
  type LogEventsResponseWire,
} from "../../sdk/src/wire/log-events-wire.js";

export type { LogEventsRequestWire, LogEventsResponseWire } from "../../sdk/src/wire/log-events-wire.js";

/**
 * `AnalyticsService.LogEvents` with the wire types: same service, name and path, so routing,
 * interceptors (auth, request log) and clients see the one RPC.
 */
export const logEventsWireMethod = {
  ...AnalyticsService.method.logEvents,
  input: requestSchema,
  output: responseSchema,
} as unknown as DescMethodUnary<typeof requestSchema, typeof responseSchema>;

/** A response of the wire type. */
export function logEventsResponseWire(results: Uint8Array[], storedCount: number, rejectedCount: number): LogEventsResponseWire {
  return { $typeName: "analytics.internal.LogEventsResponseWire", results, storedCount, rejectedCount };
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

/**
 * `EventResult` in protobuf binary, as `toBinary(EventResultSchema, result)` writes it: outcome
 * (1, varint, omitted when 0), id (2, string, omitted when empty), violations (3, each a
 * `FieldViolation` with field = 1 and description = 2, omitted when empty).
 */
export function encodeEventResult(result: EventResult): Uint8Array {
  let size = 0;
  if (result.outcome !== 0) size += 1 + varintSize(result.outcome);
  const idBytes = Buffer.byteLength(result.id);
  if (idBytes > 0) size += stringSize(idBytes);
  let violationBytes: number[] | undefined;
  if (result.violations.length > 0) {
    violationBytes = result.violations.map((v) => {
      const inner = stringSize(Buffer.byteLength(v.field)) + stringSize(Buffer.byteLength(v.description));
      size += 1 + varintSize(inner) + inner;
      return inner;
    });
  }
  const out = nativeBuffer(Buffer.allocUnsafe(size));
  let pos = 0;
  if (result.outcome !== 0) {
    out[pos++] = 0x08;
    pos = writeVarint(out, pos, result.outcome);
  }
  if (idBytes > 0) pos = writeString(out, pos, 0x12, result.id);
  if (violationBytes !== undefined) {
    for (let i = 0; i < violationBytes.length; i++) {
      const v = result.violations[i]!;
      out[pos++] = 0x1a;
      pos = writeVarint(out, pos, violationBytes[i]!);
      pos = writeString(out, pos, 0x0a, v.field);
      pos = writeString(out, pos, 0x12, v.description);
    }
  }
  return out;
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
  const bytes = Buffer.byteLength(text);
  out[pos++] = tag;
  pos = writeVarint(out, pos, bytes);
  return pos + out.utf8Write(text, pos, bytes);
}

/** Bytes of `n` (a 32-bit integer; a negative one is sign-extended to 64 bits: 10 bytes) as a varint. */
function varintSize(n: number): number {
  return n < 0 ? 10 : n < 0x80 ? 1 : n < 0x4000 ? 2 : n < 0x200000 ? 3 : n < 0x10000000 ? 4 : 5;
}
