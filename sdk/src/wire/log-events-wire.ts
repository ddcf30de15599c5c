/**
 * `LogEvents` seen through message types that are wire-identical to `LogEventsRequest` /
 * `LogEventsResponse` but hold each event and each result as its own encoding (`bytes`): a
 * length-delimited message field and a `bytes` field are the same bytes on the wire (tag, length,
 * payload). The SDK's Node client sends events it encoded with a compiled encoder through them
 * (`toBinary` costs several times as much per event), and the server reads and answers `LogEvents` through them
 * with its compiled decoder. Only for binary encodings (gRPC, gRPC-Web, Connect with
 * `application/proto`): the JSON form of `bytes` is base64. Never advertised: reflection and the
 * generated code know only `analytics.v1`.
 *
 * @module
 */
import { create, createFileRegistry, type DescMethodUnary, type UnknownField } from "@bufbuild/protobuf";
import type { GenMessage } from "@bufbuild/protobuf/codegenv2";
import { FieldDescriptorProto_Label, FieldDescriptorProto_Type, FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { AnalyticsService, EventSchema, LogEventsResponseSchema, type Event } from "../gen/analytics/v1/analytics_service_pb.js";
import { compileEncoder } from "./message-encoder.js";

const { REPEATED: LABEL_REPEATED, OPTIONAL: LABEL_OPTIONAL } = FieldDescriptorProto_Label;
const { BYTES: TYPE_BYTES, UINT32: TYPE_UINT32 } = FieldDescriptorProto_Type;

const registry = createFileRegistry(
  create(FileDescriptorProtoSchema, {
    name: "analytics/internal/log_events_wire.proto",
    package: "analytics.internal",
    syntax: "proto3",
    messageType: [
      {
        name: "LogEventsRequestWire",
        field: [{ name: "events", number: 1, label: LABEL_REPEATED, type: TYPE_BYTES, jsonName: "events" }],
      },
      {
        name: "LogEventsResponseWire",
        field: [
          { name: "results", number: 1, label: LABEL_REPEATED, type: TYPE_BYTES, jsonName: "results" },
          { name: "stored_count", number: 2, label: LABEL_OPTIONAL, type: TYPE_UINT32, jsonName: "storedCount" },
          { name: "rejected_count", number: 3, label: LABEL_OPTIONAL, type: TYPE_UINT32, jsonName: "rejectedCount" },
        ],
      },
    ],
  }),
  () => undefined,
);

/** `LogEventsRequest` with each event as its encoding. */
export interface LogEventsRequestWire {
  readonly $typeName: "analytics.internal.LogEventsRequestWire";
  events: Uint8Array[];
}

/** `LogEventsResponse` with each result as its encoding. */
export interface LogEventsResponseWire {
  readonly $typeName: "analytics.internal.LogEventsResponseWire";
  results: Uint8Array[];
  storedCount: number;
  rejectedCount: number;
  /** Fields kept as they were read, and written back as they are (as on every protobuf-es message). */
  $unknown?: UnknownField[];
}

/** The schema of {@link LogEventsRequestWire}. */
export const LogEventsRequestWireSchema = registry.getMessage("analytics.internal.LogEventsRequestWire") as GenMessage<LogEventsRequestWire>;
/** The schema of {@link LogEventsResponseWire}. */
export const LogEventsResponseWireSchema = registry.getMessage("analytics.internal.LogEventsResponseWire") as GenMessage<LogEventsResponseWire>;

/**
 * `AnalyticsService.LogEvents` as a client sends pre-encoded events: same service, name and path,
 * the generated response.
 */
export const logEventsEncodedMethod = {
  ...AnalyticsService.method.logEvents,
  input: LogEventsRequestWireSchema,
} as unknown as DescMethodUnary<typeof LogEventsRequestWireSchema, typeof LogEventsResponseSchema>;

/** Marks a request whose every event carries an event id (not sent: not a field of the message). */
const kEveryEventHasId = Symbol("everyEventHasId");

const encodeEvent = compileEncoder(EventSchema);

/** A `LogEvents` request of `events`, each encoded as `toBinary` would (by the compiled encoder). */
export function encodedLogEventsRequest(events: readonly Event[]): LogEventsRequestWire {
  return {
    $typeName: "analytics.internal.LogEventsRequestWire",
    events: events.map(encodeEvent),
    [kEveryEventHasId]: events.every((e) => (e.kind.value?.eventId ?? "") !== ""),
  } as LogEventsRequestWire;
}

/** Bytes of `request`'s encoding: each event's tag (one byte), length varint and bytes. */
export function encodedRequestBytes(request: LogEventsRequestWire): number {
  let total = 0;
  for (const event of request.events) total += 1 + varintBytes(event.length) + event.length;
  return total;
}

const varintBytes = (n: number): number => (n < 0x80 ? 1 : n < 0x4000 ? 2 : n < 0x200000 ? 3 : n < 0x10000000 ? 4 : 5);

/**
 * Whether `message` is a pre-encoded `LogEvents` request whose every event has an event id (so
 * sending it again stores nothing twice); undefined when it is not a pre-encoded request.
 */
export function encodedRequestIsIdempotent(message: unknown): boolean | undefined {
  if ((message as { $typeName?: unknown } | null)?.$typeName !== LogEventsRequestWireSchema.typeName) return undefined;
  return (message as { [kEveryEventHasId]?: boolean })[kEveryEventHasId] === true;
}
