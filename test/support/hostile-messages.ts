/**
 * Hostile request messages for every RPC the server answers, generated from the schema (so a new
 * RPC or field is fuzzed without a change here) by fast-check arbitraries:
 *
 * - messages a protobuf library can still encode (sent by connect-node clients, or as bytes by
 *   the raw clients): long backslash runs followed by U+0000 in strings and `Struct` values, NUL
 *   bytes, lone surrogates, repeated fields and `Struct`s with thousands of entries, `Struct`s
 *   hundreds deep, strings just over and far over the size caps;
 * - bytes no library would write (raw clients only): random bytes and random JSON, truncations of
 *   valid messages, wrong wire types and wrongly typed JSON values, `Struct`/`ListValue` nesting
 *   1k to 100k deep (or unknown groups as deep, for messages without a `Struct`), a `Struct` field
 *   sent thousands of times, invalid UTF-8 inside strings, envelopes that lie about their length.
 *
 * Each case carries a `label` naming its class and parameters, for the report and for failures.
 */
import {
  fromJson,
  toBinary,
  toJsonString,
  ScalarType,
  type DescField,
  type DescMessage,
  type DescMethod,
  type DescService,
  type JsonValue,
} from "@bufbuild/protobuf";
import { StructSchema } from "@bufbuild/protobuf/wkt";
import fc from "fast-check";
import { AnalyticsService } from "../../sdk/src/gen/analytics/v1/analytics_service_pb.js";
import { MetricsService } from "../../sdk/src/gen/analytics/v1/metrics_service_pb.js";
import { Health } from "../../sdk/src/gen/grpc/health/v1/health_pb.js";
import { ServerReflection as ServerReflectionV1 } from "../../sdk/src/gen/grpc/reflection/v1/reflection_pb.js";
import { ServerReflection as ServerReflectionV1Alpha } from "../../sdk/src/gen/grpc/reflection/v1alpha/reflection_pb.js";
import { concat, lenField, tag, varint, WireType, wrapFields } from "./hostile-wire.js";

/** One RPC under test. */
export interface FuzzTarget {
  readonly service: DescService;
  readonly method: DescMethod;
  /** `/package.Service/Method`. */
  readonly path: string;
  /** The request or the response streams (Connect then needs HTTP/2 and envelopes). */
  readonly streaming: boolean;
}

/** Every RPC the server serves: AnalyticsService, MetricsService, health and both reflections. */
export const FUZZ_TARGETS: readonly FuzzTarget[] = [AnalyticsService, MetricsService, Health, ServerReflectionV1, ServerReflectionV1Alpha].flatMap(
  (service) =>
    service.methods.map((method) => ({
      service,
      method,
      path: `/${service.typeName}/${method.name}`,
      streaming: method.methodKind !== "unary",
    })),
);

/** The size caps a case aims just over and far over. */
export interface SizeCaps {
  /** Largest request message of the method, bytes. */
  readonly messageBytes: number;
}

/** A generated case: a message (encodable) or raw bytes, in one encoding. */
export type FuzzCase =
  | { readonly kind: "message"; readonly label: string; readonly cls: string; readonly json: JsonValue; readonly oversize: boolean }
  | {
      readonly kind: "bytes";
      readonly label: string;
      readonly cls: string;
      readonly payload: Uint8Array;
      readonly oversize: boolean;
      /** gRPC only: the envelope's length field, when it is to differ from the payload's. */
      readonly declaredLength?: number;
      /** gRPC only: envelope flags (1 = compressed, without a negotiated encoding). */
      readonly flags?: number;
    };

/** `binary` (protobuf) or `json` (proto3 JSON). */
export type Encoding = "binary" | "json";

/** A message's encoding in `encoding` (proto3 JSON, or protobuf binary through protobuf-es). */
export function encodeJson(schema: DescMessage, json: JsonValue, encoding: Encoding): Uint8Array {
  const message = fromJson(schema, json);
  return encoding === "binary" ? toBinary(schema, message) : new TextEncoder().encode(toJsonString(schema, message));
}

// --- Hostile values --------------------------------------------------------------------------

/** What fills strings, repeats and `Struct`s in a generated message. */
interface Flavor {
  /** A string field's value (`field` for field-specific text). */
  string(field: string): string;
  /** Elements of a repeated field or entries of a map. */
  readonly repeats: number;
  /** A `Struct` value. */
  struct(): Record<string, JsonValue>;
}

const escapeRun = (n: number, tail: string) => "\\".repeat(n) + tail;

/** A `Struct` nested `depth` deep, alternating objects and lists, around `leaf`. */
function nestedJson(depth: number, leaf: JsonValue): JsonValue {
  let v: JsonValue = leaf;
  for (let i = 0; i < depth; i++) v = i % 2 === 0 ? { n: v } : [v];
  return v;
}

const benign: Flavor = { string: (f) => `fuzz-${f}`, repeats: 1, struct: () => ({ k: "v", n: 1 }) };

/** Message-level classes and the flavors they fill a message with. */
const messageClasses = (caps: SizeCaps): fc.Arbitrary<{ cls: string; label: string; flavor: Flavor; oversize: boolean }> =>
  fc.oneof(
    { weight: 3, arbitrary: fc.constant({ cls: "valid", label: "valid", flavor: benign, oversize: false }) },
    {
      weight: 3,
      arbitrary: fc.record({ n: fc.integer({ min: 1000, max: 32_000 }), inStruct: fc.boolean(), tail: fc.constantFrom("\u0000", "\\u0000", "\"") }).map(
        ({ n, inStruct, tail }) => ({
          cls: "escape-run",
          label: `escape-run ${n} backslashes + ${JSON.stringify(tail)} in ${inStruct ? "Struct values" : "strings"}`,
          flavor: {
            ...benign,
            string: (f: string) => (inStruct ? `fuzz-${f}` : escapeRun(n, tail)),
            struct: () => ({ a: escapeRun(n, tail), [escapeRun(Math.min(n, 2000), tail)]: "k" }),
          },
          oversize: false,
        }),
      ),
    },
    {
      weight: 2,
      arbitrary: fc.string({ unit: "grapheme", maxLength: 20 }).map((s) => ({
        cls: "nul",
        label: `NUL bytes around ${JSON.stringify(s)}`,
        flavor: { ...benign, string: () => `\u0000${s}\u0000`, struct: () => ({ [`\u0000${s}`]: `${s}\u0000`, l: [`\u0000`] }) },
        oversize: false,
      })),
    },
    {
      weight: 2,
      arbitrary: fc.integer({ min: 1000, max: 8000 }).map((n) => ({
        cls: "huge-repeats",
        label: `${n} elements in every top-level repeated field and map`,
        flavor: { ...benign, repeats: n },
        oversize: false,
      })),
    },
    {
      weight: 2,
      arbitrary: fc.integer({ min: 1000, max: 8000 }).map((n) => ({
        cls: "huge-repeats",
        label: `${n} keys in every Struct`,
        flavor: { ...benign, struct: () => Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, i])) },
        oversize: false,
      })),
    },
    {
      weight: 2,
      // protobuf-es reads and writes at most 100 message levels (a Struct level is three), so a
      // library can send only this much; deeper goes raw (deep-nesting).
      arbitrary: fc.integer({ min: 10, max: 30 }).map((d) => ({
        cls: "deep-struct",
        label: `Struct ${d} deep`,
        flavor: { ...benign, struct: () => ({ d: nestedJson(d, "leaf") }) },
        oversize: false,
      })),
    },
    {
      weight: 1,
      arbitrary: fc.constantFrom(1, 4).map((factor) => {
        const size = factor === 1 ? caps.messageBytes + 1 : caps.messageBytes * 4;
        // One big value only (the first string or Struct filled), so the message is just that much over.
        let spent = false;
        const big = (small: string) => {
          if (spent) return small;
          spent = true;
          return "x".repeat(size);
        };
        return {
          cls: factor === 1 ? "oversize-just-over" : "oversize-way-over",
          label: `a string of ${size} bytes (cap ${caps.messageBytes})`,
          flavor: { ...benign, string: (f: string) => big(`fuzz-${f}`), struct: () => ({ big: big("x") }) },
          oversize: true,
        };
      }),
    },
  );

/** A proto3-JSON value for `field` filled with `flavor`. */
function fieldJson(field: DescField, flavor: Flavor, depth: number, pick: number): JsonValue | undefined {
  switch (field.fieldKind) {
    case "scalar":
      return scalarJson(field.scalar, field.name, flavor);
    case "enum":
      return field.enum.values[Math.min(1, field.enum.values.length - 1)]!.name;
    case "message":
      return messageValueJson(field.message, flavor, depth, pick);
    case "list": {
      const one =
        field.listKind === "scalar"
          ? scalarJson(field.scalar, field.name, flavor)
          : field.listKind === "enum"
            ? field.enum.values[Math.min(1, field.enum.values.length - 1)]!.name
            : messageValueJson(field.message, flavor, depth, pick);
      if (one === undefined) return undefined;
      // Repeats at the top only: nested ones would multiply (samples x metrics x values).
      return Array.from({ length: depth === 0 ? flavor.repeats : 1 }, () => one);
    }
    case "map": {
      const value =
        field.mapKind === "scalar"
          ? scalarJson(field.scalar, field.name, flavor)
          : field.mapKind === "enum"
            ? field.enum.values[Math.min(1, field.enum.values.length - 1)]!.name
            : messageValueJson(field.message, flavor, depth, pick);
      if (value === undefined) return undefined;
      const key = field.mapKey === ScalarType.STRING ? (i: number) => (i === 0 ? flavor.string(field.name) : `k${i}`) : (i: number) => String(i);
      return Object.fromEntries(Array.from({ length: depth === 0 ? flavor.repeats : 1 }, (_, i) => [key(i), value]));
    }
  }
}

function scalarJson(scalar: ScalarType, name: string, flavor: Flavor): JsonValue {
  switch (scalar) {
    case ScalarType.STRING:
      // Ids that must look like ids get one, so messages get past the first check sometimes.
      if (/(^|_)(event_id|error_id)$/.test(name) && flavor === benign) return crypto.randomUUID();
      return flavor.string(name);
    case ScalarType.BYTES:
      return Buffer.from(flavor.string(name)).toString("base64");
    case ScalarType.BOOL:
      return true;
    case ScalarType.DOUBLE:
    case ScalarType.FLOAT:
      return flavor === benign ? 1.5 : "NaN";
    case ScalarType.INT64:
    case ScalarType.SINT64:
    case ScalarType.SFIXED64:
      return flavor === benign ? "1" : "-9223372036854775808";
    case ScalarType.UINT64:
    case ScalarType.FIXED64:
      return flavor === benign ? "1" : "18446744073709551615";
    case ScalarType.UINT32:
    case ScalarType.FIXED32:
      return flavor === benign ? 1 : 4294967295;
    default:
      return flavor === benign ? 1 : -2147483648;
  }
}

function messageValueJson(desc: DescMessage, flavor: Flavor, depth: number, pick: number): JsonValue | undefined {
  switch (desc.typeName) {
    case "google.protobuf.Struct":
      return flavor.struct();
    case "google.protobuf.Value":
      return flavor.struct();
    case "google.protobuf.ListValue":
      return [flavor.struct()];
    case "google.protobuf.Timestamp":
      return new Date(Date.now() - 60_000).toISOString();
    case "google.protobuf.Duration":
      return "1s";
  }
  if (depth > 4) return undefined;
  return messageJson(desc, pick, flavor, depth + 1);
}

/**
 * A message of `desc` with every field set, filled with `flavor`; each oneof (at every level) set
 * to its member number `pick` (modulo their count), for variety.
 */
export function messageJson(desc: DescMessage, pick: number, flavor: Flavor = benign, depth = 0): Record<string, JsonValue> {
  const out: Record<string, JsonValue> = {};
  for (const field of desc.fields) {
    if (field.oneof !== undefined && field.oneof.kind === "oneof") {
      if (field.oneof.fields[pick % field.oneof.fields.length] !== field) continue;
    }
    const v = fieldJson(field, flavor, depth, pick);
    if (v !== undefined) out[field.jsonName] = v;
  }
  return out;
}

// --- Paths inside a message --------------------------------------------------------------------

/** Field numbers and JSON names from the top of `desc` down to the first `Struct` field (breadth first). */
export function structPath(desc: DescMessage): { numbers: number[]; names: string[]; pick: number } | undefined {
  const queue: { desc: DescMessage; numbers: number[]; names: string[]; pick: number }[] = [{ desc, numbers: [], names: [], pick: 0 }];
  while (queue.length > 0) {
    const at = queue.shift()!;
    if (at.numbers.length > 3) continue;
    for (const f of at.desc.fields) {
      const m = f.fieldKind === "message" ? f.message : f.fieldKind === "list" && f.listKind === "message" ? f.message : undefined;
      if (m === undefined) continue;
      if (m.typeName === "google.protobuf.Struct") return { numbers: [...at.numbers, f.number], names: [...at.names, f.jsonName], pick: at.pick };
      if (m.typeName.startsWith("google.protobuf.")) continue;
      const pick = f.oneof?.kind === "oneof" ? f.oneof.fields.indexOf(f) : at.pick;
      queue.push({ desc: m, numbers: [...at.numbers, f.number], names: [...at.names, f.jsonName], pick });
    }
  }
  return undefined;
}

/** `inner` as JSON at `names` (lists get one element). */
function jsonAt(desc: DescMessage, names: readonly string[], inner: string): string {
  let text = inner;
  const fields: DescField[] = [];
  let d: DescMessage | undefined = desc;
  for (const n of names) {
    const f: DescField | undefined = d?.fields.find((x) => x.jsonName === n);
    if (f === undefined) break;
    fields.push(f);
    d = f.fieldKind === "message" || (f.fieldKind === "list" && f.listKind === "message") ? f.message : undefined;
  }
  for (let i = fields.length - 1; i >= 0; i--) {
    const f = fields[i]!;
    text = `{${JSON.stringify(f.jsonName)}:${f.fieldKind === "list" ? `[${text}]` : text}}`;
  }
  return text;
}

// --- Byte-level classes ----------------------------------------------------------------------

const MARKER = "ZqXmarkZqX";

/** Invalid UTF-8 sequences, each 10 bytes (the marker's length, so lengths stay right). */
const INVALID_UTF8: readonly number[][] = [
  [0xc3, 0x28, 0xa0, 0xa1, 0xe2, 0x28, 0xa1, 0xf0, 0x28, 0x8c],
  [0xed, 0xa0, 0x80, 0xed, 0xbf, 0xbf, 0x41, 0x41, 0x41, 0x41], // encoded surrogates
  [0xff, 0xfe, 0xfd, 0xfc, 0xf8, 0xc0, 0x80, 0xc1, 0xbf, 0x00],
  [0xf4, 0x90, 0x80, 0x80, 0xe0, 0x80, 0xaf, 0x5c, 0x5c, 0x00], // above U+10FFFF, overlong '/', backslashes, NUL
];

function replaceAll(bytes: Uint8Array, marker: Uint8Array, replacement: readonly number[]): Uint8Array {
  const out = Uint8Array.from(bytes);
  for (let i = 0; i + marker.length <= out.length; i++) {
    let hit = true;
    for (let j = 0; j < marker.length && hit; j++) hit = out[i + j] === marker[j];
    if (hit) {
      out.set(replacement, i);
      i += marker.length - 1;
    }
  }
  return out;
}

/** A `Value` nested `depth` deep (alternating `struct_value` and `list_value`) in binary, built in linear time. */
export function deepValueBinary(depth: number): Uint8Array {
  const core = Uint8Array.from([0x08, 0x00]); // Value { null_value: NULL_VALUE }
  // Each level is a run of prefixes (tag + length), the nested value last: lengths from the inside out.
  const levels: Uint8Array[] = new Array<Uint8Array>(depth);
  let inner = core.length;
  for (let i = depth - 1; i >= 0; i--) {
    let prefix: Uint8Array;
    if (i % 2 === 0) {
      // Value { struct_value: Struct { fields: { key: "a", value: <inner> } } }
      const entry = concat([lenField(1, Uint8Array.of(0x61)), tag(2, WireType.len), varint(inner)]);
      const entryLen = entry.length + inner;
      const struct = concat([tag(1, WireType.len), varint(entryLen)]);
      const structLen = struct.length + entryLen;
      prefix = concat([tag(5, WireType.len), varint(structLen), struct, entry]);
    } else {
      // Value { list_value: ListValue { values: [<inner>] } }
      const list = concat([tag(1, WireType.len), varint(inner)]);
      prefix = concat([tag(6, WireType.len), varint(list.length + inner), list]);
    }
    levels[i] = prefix;
    inner += prefix.length;
  }
  return concat([...levels, core]);
}

/** Top-level fields of a binary message: [start, end, tag length) of each, or undefined if malformed. */
function topLevelFields(bytes: Uint8Array): { start: number; tagLen: number; end: number }[] {
  const out: { start: number; tagLen: number; end: number }[] = [];
  let at = 0;
  const readVarint = (): number | undefined => {
    let v = 0;
    let mul = 1;
    for (let i = 0; i < 10; i++) {
      if (at >= bytes.length) return undefined;
      const b = bytes[at++]!;
      v += (b & 0x7f) * mul;
      mul *= 128;
      if (b < 0x80) return v;
    }
    return undefined;
  };
  while (at < bytes.length) {
    const start = at;
    const t = readVarint();
    if (t === undefined) break;
    const tagLen = at - start;
    const wt = t & 7;
    if (wt === 0) readVarint();
    else if (wt === 1) at += 8;
    else if (wt === 5) at += 4;
    else if (wt === 2) at += readVarint() ?? bytes.length;
    else break;
    out.push({ start, tagLen, end: Math.min(at, bytes.length) });
  }
  return out;
}

/** JSON values of another type than a field expects, for the wrong-type class in JSON. */
const WRONG_JSON: readonly string[] = ['"text"', "12345678901234567890123", "-1", "1.5", "true", "null", "[]", '[{"a":1}]', '{"a":[1]}', '"\\u0000"', "1e400", '"AAAA===="'];

const byteClasses = (target: FuzzTarget, encoding: Encoding, caps: SizeCaps): fc.Arbitrary<FuzzCase> => {
  const schema = target.method.input;
  const valid = (pick: number, flavor: Flavor = benign) => encodeJson(schema, messageJson(schema, pick, flavor), encoding);
  const struct = structPath(schema);
  const bytesCase = (cls: string, label: string, payload: Uint8Array, extra: Partial<Extract<FuzzCase, { kind: "bytes" }>> = {}): FuzzCase => ({
    kind: "bytes",
    cls,
    label,
    payload,
    oversize: payload.length > caps.messageBytes,
    ...extra,
  });
  const text = (s: string) => new TextEncoder().encode(s);
  const arbs: { weight: number; arbitrary: fc.Arbitrary<FuzzCase> }[] = [
    {
      weight: 4,
      arbitrary:
        encoding === "binary"
          ? fc.uint8Array({ maxLength: 2048 }).map((b) => bytesCase("random-bytes", `${b.length} random bytes`, b))
          : fc.oneof(fc.json(), fc.string({ unit: "binary", maxLength: 200 })).map((s) => bytesCase("random-bytes", `random JSON text ${JSON.stringify(s.slice(0, 60))}`, text(s))),
    },
    {
      weight: 4,
      arbitrary: fc.record({ pick: fc.nat(8), cut: fc.double({ min: 0, max: 1, noNaN: true }) }).map(({ pick, cut }) => {
        const whole = valid(pick);
        const at = Math.floor(cut * whole.length);
        return bytesCase("truncation", `valid message truncated at ${at} of ${whole.length}`, whole.subarray(0, at));
      }),
    },
    {
      weight: 4,
      arbitrary: fc.record({ pick: fc.nat(8), which: fc.nat(), wt: fc.constantFrom(0, 1, 2, 3, 4, 5, 6, 7), wrong: fc.constantFrom(...WRONG_JSON) }).map(({ pick, which, wt, wrong }) => {
        const whole = valid(pick);
        if (encoding === "json") {
          const obj = JSON.parse(new TextDecoder().decode(whole)) as Record<string, unknown>;
          const keys = Object.keys(obj);
          if (keys.length === 0) return bytesCase("wrong-type", `unknown field given ${wrong}`, text(`{"noSuchField":${wrong}}`));
          const key = keys[which % keys.length]!;
          const body = JSON.stringify({ ...obj, [key]: MARKER }).replace(`"${MARKER}"`, wrong);
          return bytesCase("wrong-type", `field ${key} given ${wrong}`, text(body));
        }
        const fields = topLevelFields(whole);
        if (fields.length === 0) return bytesCase("wrong-type", `a lone tag of wire type ${wt}`, concat([tag(1, wt)]));
        const f = fields[which % fields.length]!;
        const out = Uint8Array.from(whole);
        // The wire type is the low 3 bits of the tag's first byte.
        out[f.start] = (out[f.start]! & ~7) | wt;
        return bytesCase("wrong-type", `field at byte ${f.start} re-tagged as wire type ${wt}`, out);
      }),
    },
    {
      weight: 3,
      arbitrary: fc.record({ depthExp: fc.double({ min: 1.7, max: 5, noNaN: true }), lists: fc.boolean() }).map(({ depthExp, lists }) => {
        const depth = Math.round(10 ** depthExp); // 50 to 100k, log-uniform (1k and more two thirds of the time)
        if (encoding === "binary") {
          if (struct) {
            // The Struct field holds { "a": <Value nested depth deep> }.
            const entry = concat([lenField(1, Uint8Array.of(0x61)), lenField(2, deepValueBinary(depth))]);
            return bytesCase("deep-nesting", `Struct/ListValue/Value ${depth} deep in ${struct.names.join(".")}`, wrapFields(struct.numbers, lenField(1, entry)));
          }
          // No Struct: an unknown field's groups nested as deep (every reader must skip them).
          const open = new Uint8Array(depth).fill((15 << 3) | WireType.startGroup);
          const close = new Uint8Array(depth).fill((15 << 3) | WireType.endGroup);
          return bytesCase("deep-nesting", `unknown group nested ${depth} deep`, concat([open, close]));
        }
        const deep = lists ? "[".repeat(depth) + "]".repeat(depth) : '{"a":'.repeat(depth) + "null" + "}".repeat(depth);
        const body = struct ? jsonAt(schema, struct.names, `{"d":${deep}}`) : `{"deep":${deep}}`;
        return bytesCase("deep-nesting", `JSON ${lists ? "lists" : "objects"} ${depth} deep in ${struct ? struct.names.join(".") : "an unknown field"}`, text(body));
      }),
    },
    {
      weight: 3,
      arbitrary: fc.integer({ min: 1000, max: 8000 }).map((n) => {
        if (struct) {
          if (encoding === "binary") {
            // The same Struct field sent n times in one message, each with keys of its own, so
            // the merged value grows with every repeat (protobuf merges repeats of a message field).
            const field = struct.numbers[struct.numbers.length - 1]!;
            const repeated = concat(Array.from({ length: n }, (_, i) => lenField(field, toBinary(StructSchema, fromJson(StructSchema, { [`k${i}`]: "v", [`n${i}`]: i, [`l${i}`]: [i, "x"] })))));
            return bytesCase("huge-repeats", `${struct.names.join(".")} sent ${n} times`, wrapFields(struct.numbers.slice(0, -1), repeated));
          }
          const keys = Array.from({ length: n }, (_, i) => `"k":{"i":${i}}`).join(",");
          return bytesCase("huge-repeats", `a Struct key given ${n} times in ${struct.names.join(".")}`, text(jsonAt(schema, struct.names, `{${keys}}`)));
        }
        // No Struct: the first field n times.
        const whole = valid(0);
        const f = topLevelFields(encoding === "binary" ? whole : new Uint8Array())[0];
        if (encoding === "binary" && f) {
          const one = whole.subarray(f.start, f.end);
          return bytesCase("huge-repeats", `first field sent ${n} times`, concat(Array.from({ length: n }, () => one)));
        }
        const obj = JSON.parse(new TextDecoder().decode(encodeJson(schema, messageJson(schema, 0), "json"))) as Record<string, unknown>;
        const key = Object.keys(obj)[0] ?? "x";
        return bytesCase("huge-repeats", `key ${key} given ${n} times`, text(`{${Array.from({ length: n }, () => `${JSON.stringify(key)}:${JSON.stringify(obj[key] ?? 1)}`).join(",")}}`));
      }),
    },
    {
      weight: 3,
      arbitrary: fc.record({ pick: fc.nat(8), seq: fc.nat(INVALID_UTF8.length - 1) }).map(({ pick, seq }) => {
        const flavor: Flavor = { ...benign, string: () => MARKER, struct: () => ({ [MARKER]: MARKER }) };
        const bad = INVALID_UTF8[seq]!;
        const label = `strings replaced by bytes ${Buffer.from(bad).toString("hex")}`;
        const whole = valid(pick, flavor);
        const replaced = replaceAll(whole, text(MARKER), bad);
        if (!replaced.every((b, i) => b === whole[i])) return bytesCase("invalid-utf8", label, replaced);
        // A message without a string field: the bytes go in an unknown one.
        const unknown = encoding === "binary" ? lenField(1000, Uint8Array.from(bad)) : concat([text('{"noSuchField":"'), Uint8Array.from(bad), text('"}')]);
        return bytesCase("invalid-utf8", `${label} in an unknown field`, encoding === "binary" ? concat([whole, unknown]) : unknown);
      }),
    },
    {
      weight: encoding === "json" ? 4 : 0,
      // In JSON text, what protobuf-es will not write: lone surrogates as \uD800 escapes, alone or
      // after a run of escaped backslashes (each written \\), and escaped NULs after such a run.
      arbitrary: fc.record({
        pick: fc.nat(8),
        run: fc.oneof(fc.constant(0), fc.integer({ min: 1000, max: 32_000 })),
        tail: fc.constantFrom("\\ud800", "\\udfff", "a\\ud83d", "\\udc00\\ud800", "\\u0000"),
      }).map(({ pick, run, tail }) => {
        const flavor: Flavor = { ...benign, string: () => MARKER, struct: () => ({ [MARKER]: MARKER }) };
        const json = new TextDecoder().decode(encodeJson(schema, messageJson(schema, pick, flavor), "json"));
        const replacement = "\\\\".repeat(run) + tail;
        const body = json.includes(MARKER) ? json.split(MARKER).join(replacement) : `{"noSuchField":"${replacement}"}`;
        const cls = tail.includes("u0000") || run > 0 ? "escape-run" : "lone-surrogate";
        return bytesCase(cls, `JSON text: ${run} escaped backslashes then ${tail} in every string`, text(body));
      }),
    },
    {
      weight: 1,
      arbitrary: fc.constantFrom("just-over", "way-over").map((how) => {
        const size = how === "just-over" ? caps.messageBytes + 1 : caps.messageBytes * 4;
        // A valid message padded with an unknown bytes field (binary) or a long string value (JSON).
        if (encoding === "binary") {
          const head = valid(0);
          const padHeader = concat([tag(1000, WireType.len), varint(size)]);
          const pad = new Uint8Array(Math.max(0, size - head.length - padHeader.length + 8));
          return bytesCase(`oversize-${how}`, `${how} the ${caps.messageBytes}-byte cap`, concat([head, tag(1000, WireType.len), varint(pad.length), pad]));
        }
        return bytesCase(`oversize-${how}`, `${how} the ${caps.messageBytes}-byte cap`, text(`{"pad":"${"x".repeat(size)}"}`));
      }),
    },
  ];
  return fc.oneof(...arbs.filter((a) => a.weight > 0));
};

/** gRPC envelope lies: a length field that does not match the bytes, or a compressed flag never negotiated. */
const envelopeLies = (target: FuzzTarget, encoding: Encoding, caps: SizeCaps): fc.Arbitrary<FuzzCase> =>
  fc.record({ how: fc.constantFrom("longer", "shorter", "huge", "compressed"), pick: fc.nat(4) }).map(({ how, pick }) => {
    const payload = encodeJson(target.method.input, messageJson(target.method.input, pick, benign), encoding);
    const declared = how === "longer" ? payload.length + 100 : how === "shorter" ? Math.max(0, payload.length - 1) : how === "huge" ? Math.max(caps.messageBytes * 64, 0x7fffffff) : payload.length;
    return {
      kind: "bytes",
      cls: "envelope-lie",
      label: `envelope ${how} (declares ${declared} for ${payload.length} bytes)`,
      payload,
      oversize: how === "huge",
      declaredLength: declared,
      flags: how === "compressed" ? 1 : 0,
    } satisfies FuzzCase;
  });

/** Cases for the connect-node clients: messages only. */
export function clientCases(target: FuzzTarget, caps: SizeCaps): fc.Arbitrary<FuzzCase> {
  return fc.record({ c: messageClasses(caps), pick: fc.nat(8) }).map(({ c, pick }) => ({
    kind: "message",
    cls: c.cls,
    label: c.label,
    json: messageJson(target.method.input, pick, c.flavor),
    oversize: c.oversize,
  }));
}

/** Cases for the raw clients: messages (sent as their bytes) and byte-level classes. */
export function rawCases(target: FuzzTarget, encoding: Encoding, caps: SizeCaps, grpc: boolean): fc.Arbitrary<FuzzCase> {
  const arbs = [
    { weight: 3, arbitrary: clientCases(target, caps) },
    { weight: 6, arbitrary: byteClasses(target, encoding, caps) },
  ];
  if (grpc) arbs.push({ weight: 1, arbitrary: envelopeLies(target, encoding, caps) });
  return fc.oneof(...arbs);
}
