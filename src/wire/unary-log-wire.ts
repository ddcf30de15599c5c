/**
 * The binary encodings of the four unary `Log*` methods, read through message types that are
 * wire-identical to their requests except that each `google.protobuf.Struct` field is
 * `repeated`. A field sent more than once then costs its own bytes: protobuf-es, reading the
 * generated type, merges a repeat of a Struct field by converting the `JsonObject` kept so far
 * back to a `Struct` message and the merged message to a `JsonObject` again, for every repeat:
 * quadratic, seconds for a small request, before any interceptor could refuse the call
 * (docs/HARDENING.md). Here each occurrence is read once into a list and {@link fromUnaryWire}
 * merges the list into one object as protobuf merges a Struct (a later entry replaces an earlier
 * one with the same key), so the handler gets exactly what `fromBinary` of the generated type
 * gives (held by differential tests).
 *
 * A singular message field and a repeated one are the same bytes on the wire (tag, length,
 * payload, as many times as sent), so clients notice nothing. Only for binary encodings (the
 * JSON form of a repeated field is an array): `isBinaryFastPathRequest` in `log-events-wire.ts`
 * sends them here, JSON stays on the generated types. Every other field keeps its name, type and
 * number, so interceptors (the access policy reads ids) see the message they expect. Never
 * advertised: reflection knows only `analytics.v1`.
 */
import { clone, create, createFileRegistry, type DescMessage, type DescMethodUnary, type JsonObject, type MessageShape } from "@bufbuild/protobuf";
import { DescriptorProtoSchema, FieldDescriptorProto_Label, FieldDescriptorProto_Type, FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { AnalyticsService, file_analytics_v1_analytics_service as sourceFile } from "../../sdk/src/gen/analytics/v1/analytics_service_pb.js";
import { invalidArgument } from "../validation/field-rules.js";
import { decodeStructOccurrences, WireFormatError } from "./message-decoder.js";

const STRUCT = ".google.protobuf.Struct";

/** The unary methods served through wire types: those whose request has a Struct field. */
const METHODS = [
  AnalyticsService.method.logUserActivity,
  AnalyticsService.method.logError,
  AnalyticsService.method.logDeviceStateChange,
  AnalyticsService.method.logJobOutcome,
] as const;

const registry = createFileRegistry(
  create(FileDescriptorProtoSchema, {
    name: "analytics/internal/unary_log_wire.proto",
    package: "analytics.internal",
    syntax: sourceFile.proto.syntax,
    dependency: sourceFile.proto.dependency,
    messageType: METHODS.map((m) => {
      const proto = clone(DescriptorProtoSchema, m.input.proto);
      // Each occurrence of a Struct field kept as its bytes (`decodeStructOccurrences` reads them).
      for (const field of proto.field) {
        if (field.typeName !== STRUCT) continue;
        field.label = FieldDescriptorProto_Label.REPEATED;
        field.type = FieldDescriptorProto_Type.BYTES;
        field.typeName = "";
      }
      return proto;
    }),
  }),
  (name) => sourceFile.dependencies.find((d) => d.proto.name === name),
);

/** A wire type's generated counterpart and the local names of its Struct fields. */
interface WireType {
  readonly schema: DescMessage;
  readonly structFields: readonly string[];
}

const wireTypes = new Map<DescMessage, WireType>(
  METHODS.map((m) => [
    registry.getMessage(`analytics.internal.${m.input.name}`)!,
    { schema: m.input, structFields: m.input.fields.filter((f) => f.message?.typeName === "google.protobuf.Struct").map((f) => f.localName) },
  ]),
);

/** A generated unary method whose request is read through its wire type (same service, name and path). */
export type UnaryWireMethod<M extends (typeof METHODS)[number]> = DescMethodUnary<DescMessage, M["output"]>;

/** `method` with its request read through its wire type; undefined for a method that has none. */
export function unaryWireMethod<M extends (typeof METHODS)[number]>(method: M): UnaryWireMethod<M> {
  const input = [...wireTypes].find(([, t]) => t.schema === method.input)?.[0];
  if (input === undefined) throw new Error(`unaryWireMethod: ${method.name} has no wire type`);
  return { ...method, input } as unknown as UnaryWireMethod<M>;
}

/** The methods {@link unaryWireMethod} serves. */
export const UNARY_WIRE_METHODS: readonly (typeof METHODS)[number][] = METHODS;

/**
 * The generated request a wire request stands for: each Struct field's occurrences merged in
 * order (absent when none was sent), as `fromBinary` of the generated type merges them.
 */
export function fromUnaryWire<Desc extends DescMessage>(schema: Desc, wire: unknown): MessageShape<Desc> {
  const message = wire as Record<string, unknown> & { $typeName: string };
  const type = [...wireTypes.values()].find((t) => t.schema === schema);
  if (type === undefined) throw new Error(`fromUnaryWire: ${schema.typeName} has no wire type`);
  const out: Record<string, unknown> = { ...message, $typeName: schema.typeName };
  for (const name of type.structFields) {
    let merged: JsonObject | undefined;
    try {
      merged = decodeStructOccurrences(message[name] as Uint8Array[]);
    } catch (err) {
      if (!(err instanceof WireFormatError)) throw err;
      const field = schema.fields.find((f) => f.localName === name)!;
      throw invalidArgument([{ field: field.name, description: `is not a valid google.protobuf.Struct: ${err.message}` }]);
    }
    if (merged === undefined) delete out[name]; // as a generated message without it
    else out[name] = merged;
  }
  return out as MessageShape<Desc>;
}

