/**
 * Random protobuf messages for the property tests of the compiled decoder and encoder: values
 * that stress UTF-8, JSON payloads, every scalar kind and its edge values, and a test schema with
 * every field kind (compiled from a descriptor, so the scalar types the analytics messages do not
 * use are covered too).
 */
import {
  create,
  createFileRegistry,
  ScalarType,
  type DescField,
  type DescMessage,
  type JsonObject,
  type JsonValue,
  type MessageInitShape,
  type MessageShape,
} from "@bufbuild/protobuf";
import {
  FieldDescriptorProto_Label,
  FieldDescriptorProto_Type,
  FieldDescriptorProtoSchema,
  FieldOptions_JSType,
  file_google_protobuf_struct,
  file_google_protobuf_timestamp,
  file_google_protobuf_wrappers,
  FileDescriptorProtoSchema,
  TimestampSchema,
  type Timestamp,
} from "@bufbuild/protobuf/wkt";
import {
  EventSchema,
  LogDeviceStateChangeRequestSchema,
  LogErrorRequestSchema,
  LogEventsRequestSchema,
  LogJobOutcomeRequestSchema,
  LogUserActivityRequestSchema,
  type Event,
} from "../../sdk/src/gen/analytics/v1/analytics_service_pb.js";
import { ActivityType, ErrorCategory, JobStatus, Severity } from "../../sdk/src/gen/analytics/v1/common_pb.js";

// ---------------------------------------------------------------------------------------------
// Random inputs

/** A source of numbers in [0, 1). */
export type Random = () => number;

/** Strings that stress UTF-8: multi-byte, astral, a lone surrogate, a BOM, U+FFFD, NUL, 130 ASCII. */
const PIECES = [
  "a", "Z", "0", " ", "é", "ß", "✓", "日本語", "😀", "👩‍💻", "\u0000", "\n\t\"\\", "\uFFFD", "\uFEFF", "\uD800", "\uDC00",
  "\u007F", "\u0080", "\u07FF", "\u0800", "\uFFFF", "\u{10000}", "\u{10FFFF}", "x".repeat(130),
];
const KEYS = ["constructor", "toString", "hasOwnProperty", "valueOf", "1", "10", "-1", "a.b", "", "$typeName"];

/** Random values of the analytics messages' field kinds, from `random`. */
export function generators(random: Random) {
  const int = (n: number) => Math.floor(random() * n);
  const chance = (p: number) => random() < p;
  const pick = <T>(items: readonly T[]): T => items[int(items.length)]!;
  const text = (): string => {
    if (chance(0.15)) return "";
    let s = "";
    for (let n = 1 + int(5); n > 0; n--) s += pick(PIECES);
    if (chance(0.001)) s += "é".repeat(9_000); // 18 000 bytes: a 3-byte length
    return s;
  };
  const number = (): number =>
    pick([0, -0, 1, -1, 0.5, 1e300, -1e-300, 5e-324, Number.MAX_SAFE_INTEGER, 2 ** 53 + 2, Number.NaN, Infinity, -Infinity, random() * 1e6 - 5e5, int(1000)]);
  const json = (depth: number): JsonValue => {
    switch (int(depth > 0 ? 7 : 4)) {
      case 0:
        return number();
      case 1:
        return text();
      case 2:
        return chance(0.5);
      case 3:
        return null;
      case 6:
        return Array.from({ length: int(5) }, () => json(depth - 1));
      default:
        return object(depth - 1);
    }
  };
  const object = (depth: number): JsonObject => {
    const o: JsonObject = {};
    for (let n = int(6); n > 0; n--) o[chance(0.2) ? pick(KEYS) : text()] = json(depth);
    return o;
  };
  const timestamp = (): Timestamp =>
    create(TimestampSchema, {
      seconds: pick([0n, -1n, 1n, -62_135_596_800n, 253_402_300_799n, 2n ** 62n, -(2n ** 63n), 2n ** 63n - 1n, BigInt(int(2e9)), -BigInt(int(2e12))]),
      nanos: pick([0, 1, 999_999_999, -1, 2 ** 31 - 1, -(2 ** 31), int(1e9)]),
    });
  /** A known value of an enum with `count` values, or now and then an unknown one (open enums keep them). */
  const enumValue = (count: number): number => (chance(0.85) ? int(count) : pick([count, 99, 2 ** 31 - 1, -1, -(2 ** 31), 1000]));
  const optionalUint32 = (): number | undefined => (chance(0.4) ? undefined : pick([0, 1, 127, 128, 16_383, 16_384, 2 ** 32 - 1, int(1e6)]));
  const maybe = <T>(make: () => T): T | undefined => (chance(0.5) ? make() : undefined);

  const userActivity = () =>
    create(LogUserActivityRequestSchema, {
      activityType: enumValue(5) as ActivityType,
      pageUrl: text(),
      elementId: text(),
      searchQuery: text(),
      sessionId: text(),
      durationMs: optionalUint32(),
      extraData: maybe(() => object(3)),
      occurredAt: maybe(timestamp),
      eventId: text(),
      userId: text(),
    });
  const error = () =>
    create(LogErrorRequestSchema, {
      category: enumValue(8) as ErrorCategory,
      severity: enumValue(5) as Severity,
      errorCode: text(),
      errorMessage: text(),
      stackTrace: text(),
      endpoint: text(),
      deviceId: text(),
      context: maybe(() => object(3)),
      occurredAt: maybe(timestamp),
      eventId: text(),
    });
  const deviceStateChange = () =>
    create(LogDeviceStateChangeRequestSchema, {
      deviceId: text(),
      previousState: text(),
      newState: text(),
      changedBy: text(),
      reason: text(),
      extraData: maybe(() => object(3)),
      occurredAt: maybe(timestamp),
      eventId: text(),
    });
  const jobOutcome = () =>
    create(LogJobOutcomeRequestSchema, {
      jobId: text(),
      jobType: text(),
      status: enumValue(5) as JobStatus,
      deviceId: text(),
      durationMs: optionalUint32(),
      errorCode: text(),
      errorMessage: text(),
      retryCount: pick([0, 1, 2 ** 32 - 1, int(100)]),
      initiatedBy: text(),
      extraData: maybe(() => object(3)),
      occurredAt: maybe(timestamp),
      eventId: text(),
    });
  const event = (): Event => {
    const r = random();
    if (r < 0.02) return create(EventSchema); // no kind: an empty message
    if (r < 0.27) return create(EventSchema, { kind: { case: "userActivity", value: userActivity() } });
    if (r < 0.52) return create(EventSchema, { kind: { case: "error", value: error() } });
    if (r < 0.77) return create(EventSchema, { kind: { case: "deviceStateChange", value: deviceStateChange() } });
    return create(EventSchema, { kind: { case: "jobOutcome", value: jobOutcome() } });
  };
  const request = () => create(LogEventsRequestSchema, { events: Array.from({ length: 1 + int(50) }, event) });
  return { int, chance, pick, text, json, object, timestamp, event, request };
}

// ---------------------------------------------------------------------------------------------
// A test schema with every field kind the decoder supports (compiled from a descriptor here, so
// the scalar types the analytics messages do not use are covered too).

const { OPTIONAL, REPEATED } = FieldDescriptorProto_Label;
const T = FieldDescriptorProto_Type;
type FieldInit = MessageInitShape<typeof FieldDescriptorProtoSchema>;
const field = (name: string, number: number, type: FieldDescriptorProto_Type, more: FieldInit = {}): FieldInit => ({ name, number, label: OPTIONAL, type, ...more });

const SCALAR_TYPES: [string, FieldDescriptorProto_Type][] = [
  ["double", T.DOUBLE], ["float", T.FLOAT], ["int64", T.INT64], ["uint64", T.UINT64], ["int32", T.INT32], ["fixed64", T.FIXED64],
  ["fixed32", T.FIXED32], ["bool", T.BOOL], ["string", T.STRING], ["bytes", T.BYTES], ["uint32", T.UINT32], ["sfixed32", T.SFIXED32],
  ["sfixed64", T.SFIXED64], ["sint32", T.SINT32], ["sint64", T.SINT64],
];
const WKT_FILES: Record<string, typeof file_google_protobuf_struct> = {
  "google/protobuf/timestamp.proto": file_google_protobuf_timestamp,
  "google/protobuf/struct.proto": file_google_protobuf_struct,
  "google/protobuf/wrappers.proto": file_google_protobuf_wrappers,
};
/** A test schema with every field kind (scalars, enums, lists, oneofs, optional, nested, WKTs) and unsupported shapes. */
export const testRegistry = createFileRegistry(
  create(FileDescriptorProtoSchema, {
    name: "test/decoder.proto",
    package: "test.decoder",
    syntax: "proto3",
    dependency: Object.keys(WKT_FILES),
    enumType: [{ name: "Color", value: [{ name: "COLOR_UNSPECIFIED", number: 0 }, { name: "COLOR_RED", number: 1 }, { name: "COLOR_MINUS", number: -5 }] }],
    messageType: [
      {
        name: "AllKinds",
        field: [
          ...SCALAR_TYPES.map(([name, type], i) => field(`s_${name}`, 1 + i, type)),
          ...SCALAR_TYPES.map(([name, type], i) => field(`r_${name}`, 16 + i, type, { label: REPEATED })),
          field("s_enum", 31, T.ENUM, { typeName: ".test.decoder.Color" }),
          field("r_enum", 32, T.ENUM, { typeName: ".test.decoder.Color", label: REPEATED }),
          field("r_int32_unpacked", 33, T.INT32, { label: REPEATED, options: { packed: false } }),
          field("r_double_unpacked", 34, T.DOUBLE, { label: REPEATED, options: { packed: false } }),
          field("s_int64_str", 35, T.INT64, { options: { jstype: FieldOptions_JSType.JS_STRING } }),
          field("r_uint64_str", 36, T.UINT64, { label: REPEATED, options: { jstype: FieldOptions_JSType.JS_STRING } }),
          field("o_int32", 40, T.INT32, { proto3Optional: true, oneofIndex: 1 }),
          field("o_string", 41, T.STRING, { proto3Optional: true, oneofIndex: 2 }),
          field("o_bytes", 42, T.BYTES, { proto3Optional: true, oneofIndex: 3 }),
          field("c_int32", 50, T.INT32, { oneofIndex: 0 }),
          field("c_string", 51, T.STRING, { oneofIndex: 0 }),
          field("c_child", 52, T.MESSAGE, { typeName: ".test.decoder.AllKinds", oneofIndex: 0 }),
          field("c_bytes", 53, T.BYTES, { oneofIndex: 0 }),
          field("c_enum", 54, T.ENUM, { typeName: ".test.decoder.Color", oneofIndex: 0 }),
          field("child", 60, T.MESSAGE, { typeName: ".test.decoder.AllKinds" }),
          field("children", 61, T.MESSAGE, { typeName: ".test.decoder.AllKinds", label: REPEATED }),
          field("ts", 62, T.MESSAGE, { typeName: ".google.protobuf.Timestamp" }),
          field("struct", 63, T.MESSAGE, { typeName: ".google.protobuf.Struct" }),
          // protobuf-es unwraps a wrapper type only in a singular field: in a list it stays a message.
          field("r_wrapped", 64, T.MESSAGE, { typeName: ".google.protobuf.Int32Value", label: REPEATED }),
          field("far", 536_870_911, T.UINT32), // the largest field number: a 5-byte tag
        ],
        oneofDecl: [{ name: "choice" }, { name: "_o_int32" }, { name: "_o_string" }, { name: "_o_bytes" }],
      },
      { name: "WithWrapper", field: [field("w", 1, T.MESSAGE, { typeName: ".google.protobuf.Int32Value" })] },
      { name: "WithWrapperInOneof", field: [field("w", 1, T.MESSAGE, { typeName: ".google.protobuf.StringValue", oneofIndex: 0 })], oneofDecl: [{ name: "o" }] },
      { name: "WithValue", field: [field("v", 1, T.MESSAGE, { typeName: ".google.protobuf.Value" })] },
      { name: "WithListValue", field: [field("l", 1, T.MESSAGE, { typeName: ".google.protobuf.ListValue" })] },
      { name: "WithStructList", field: [field("s", 1, T.MESSAGE, { typeName: ".google.protobuf.Struct", label: REPEATED })] },
      { name: "WithStructInOneof", field: [field("s", 1, T.MESSAGE, { typeName: ".google.protobuf.Struct", oneofIndex: 0 })], oneofDecl: [{ name: "o" }] },
      { name: "WithValueList", field: [field("v", 1, T.MESSAGE, { typeName: ".google.protobuf.Value", label: REPEATED })] },
      // Supported itself, but reaches an unsupported field two levels down.
      { name: "ReachesWrapper", field: [field("inner", 1, T.MESSAGE, { typeName: ".test.decoder.WithWrapperHolder" })] },
      { name: "WithWrapperHolder", field: [field("x", 1, T.STRING), field("w", 2, T.MESSAGE, { typeName: ".test.decoder.WithWrapper" })] },
    ],
  }),
  (name) => WKT_FILES[name],
);
/** proto2 messages: a default value and a group. */
export const proto2Registry = createFileRegistry(
  create(FileDescriptorProtoSchema, {
    name: "test/decoder2.proto",
    package: "test.decoder2",
    syntax: "proto2",
    messageType: [
      { name: "Plain", field: [field("s", 1, T.STRING, { defaultValue: "dflt" }), field("n", 2, T.INT32)] },
      { name: "WithGroup", field: [field("g", 1, T.GROUP, { typeName: ".test.decoder2.WithGroup.G" })], nestedType: [{ name: "G", field: [field("a", 2, T.INT32)] }] },
    ],
  }),
  () => undefined,
);
/** A message of a test registry by name. */
export const message = (registry: typeof testRegistry, name: string): DescMessage => {
  const desc = registry.getMessage(name);
  if (!desc) throw new Error(`no ${name}`);
  return desc;
};
/** Every field kind in one message. */
export const AllKindsSchema = message(testRegistry, "test.decoder.AllKinds");

/** A random message of any schema, field by field from its descriptor (`depth` bounds recursion). */
export function randomMessage(desc: DescMessage, random: Random, depth: number): MessageShape<DescMessage> {
  const g = generators(random);
  const scalar = (f: DescField & { scalar: ScalarType; longAsString: boolean }): unknown => {
    const long = (v: bigint) => (f.longAsString ? String(v) : v);
    switch (f.scalar) {
      case ScalarType.DOUBLE:
        return g.pick([0, -0, 1.5, -1e308, Number.NaN, Infinity, 5e-324, random() * 1e9]);
      case ScalarType.FLOAT:
        return g.pick([0, 1.5, -2.25, Math.fround(0.1), Number.NaN, -Infinity, 3.4028234663852886e38, Math.fround(random())]);
      case ScalarType.INT32:
      case ScalarType.SINT32:
      case ScalarType.SFIXED32:
        return g.pick([0, 1, -1, 63, -64, 2 ** 31 - 1, -(2 ** 31), g.int(2 ** 31) - 2 ** 30]);
      case ScalarType.UINT32:
      case ScalarType.FIXED32:
        return g.pick([0, 1, 127, 128, 2 ** 31, 2 ** 32 - 1, g.int(2 ** 32)]);
      case ScalarType.INT64:
      case ScalarType.SINT64:
      case ScalarType.SFIXED64:
        return long(g.pick([0n, 1n, -1n, 2n ** 63n - 1n, -(2n ** 63n), BigInt(g.int(2 ** 52)) * 1000n - 2n ** 60n]));
      case ScalarType.UINT64:
      case ScalarType.FIXED64:
        return long(g.pick([0n, 1n, 2n ** 63n, 2n ** 64n - 1n, BigInt(g.int(2 ** 52)) * 4096n]));
      case ScalarType.BOOL:
        return g.chance(0.5);
      case ScalarType.STRING:
        return g.text();
      case ScalarType.BYTES:
        return Uint8Array.from({ length: g.chance(0.05) ? 300 : g.int(8) }, () => g.int(256));
    }
  };
  const enumValue = (values: readonly { number: number }[]) => (g.chance(0.8) ? g.pick(values).number : g.pick([7, -7, 2 ** 31 - 1]));
  const messageValue = (m: DescMessage): unknown => {
    if (m.typeName === "google.protobuf.Struct") return g.object(2);
    if (m.typeName === "google.protobuf.Timestamp") return g.timestamp();
    return depth > 0 ? randomMessage(m, random, depth - 1) : undefined;
  };
  const value = (f: DescField): unknown => {
    switch (f.fieldKind) {
      case "scalar":
        return scalar(f);
      case "enum":
        return enumValue(f.enum.values);
      case "message":
        return messageValue(f.message);
      case "list": {
        const items = Array.from({ length: g.chance(0.3) ? 0 : 1 + g.int(4) }, () =>
          f.listKind === "scalar" ? scalar(f as never) : f.listKind === "enum" ? enumValue(f.enum.values) : messageValue(f.message),
        );
        return items.filter((item) => item !== undefined);
      }
      case "map":
        throw new Error("no maps here");
    }
  };
  const init: Record<string, unknown> = {};
  for (const member of desc.members) {
    if (member.kind === "oneof") {
      if (g.chance(0.3)) continue;
      const f = g.pick(member.fields);
      const v = value(f);
      if (v !== undefined) init[member.localName] = { case: f.localName, value: v };
    } else if (g.chance(0.6)) {
      const v = value(member);
      if (v !== undefined) init[member.localName] = v;
    }
  }
  return create(desc, init);
}


/**
 * Schemas a compiled codec must refuse when it is compiled, each with what its error must say:
 * maps (Struct itself, analytics messages that reach one), wrapper types, Value and ListValue
 * fields, Struct in a list or oneof, groups, also when reached indirectly. Pass the extra
 * analytics schemas that reach a map.
 */
export function unsupportedSchemas(structSchema: DescMessage, valueSchema: DescMessage, listValueSchema: DescMessage): [DescMessage, RegExp][] {
  return [
    [structSchema, /google\.protobuf\.Struct\.fields: a map field is not supported/],
    [valueSchema, /not supported/],
    [listValueSchema, /not supported/],
    [message(testRegistry, "test.decoder.WithWrapper"), /WithWrapper\.w: google\.protobuf\.Int32Value is not supported/],
    [message(testRegistry, "test.decoder.WithWrapperInOneof"), /StringValue is not supported/],
    [message(testRegistry, "test.decoder.WithValue"), /google\.protobuf\.Value is not supported/],
    [message(testRegistry, "test.decoder.WithListValue"), /google\.protobuf\.ListValue is not supported/],
    [message(testRegistry, "test.decoder.WithStructList"), /a repeated google\.protobuf\.Struct/],
    [message(testRegistry, "test.decoder.WithValueList"), /a repeated google\.protobuf\.Value/],
    [message(testRegistry, "test.decoder.WithStructInOneof"), /a Struct in a oneof/],
    [message(testRegistry, "test.decoder.ReachesWrapper"), /WithWrapper\.w/],
    [message(proto2Registry, "test.decoder2.WithGroup"), /group encoding/],
  ];
}
