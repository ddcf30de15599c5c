/**
 * Answers as plain values, the way the typed clients hand them out: `JSON.stringify`, `===` and
 * structured clone work on them. Platform-neutral.
 *
 * A 64-bit integer field the schema marks `[jstype = JS_NUMBER]` (a count, a size, a duration:
 * never past 2^53) becomes a `number`. protobuf-es 2 acts only on `JS_STRING` and keeps `bigint`
 * for `JS_NUMBER` fields, so the mark is applied here, read from the schema: marking a new field
 * in the `.proto` is all it takes (proto/README.md, "Style"). A `google.protobuf.Timestamp`
 * becomes a `Date` (its `seconds` are a genuine 64-bit `bigint`), and `$typeName` / `$unknown`
 * are left out.
 *
 * @module
 */
import type { DescField, DescMessage, Message } from "@bufbuild/protobuf";
import { FieldOptions_JSType, timestampDate, type Timestamp } from "@bufbuild/protobuf/wkt";

/**
 * A generated message type as a plain value: `bigint` → `number`, `Timestamp` → `Date`, no
 * `$typeName`. Accurate for answers whose every 64-bit integer field is marked
 * `jstype = JS_NUMBER` (every `MetricsService` answer: a test checks it).
 */
export type Plain<T> = T extends Timestamp
  ? Date
  : T extends bigint
    ? number
    : T extends Uint8Array | Date
      ? T
      : T extends readonly (infer E)[]
        ? Plain<E>[]
        : T extends object
          ? { [K in keyof T as K extends "$typeName" | "$unknown" ? never : K]: Plain<T[K]> }
          : T;

type Fields = Record<string, unknown>;

/** True for a 64-bit integer field marked `jstype = JS_NUMBER`. */
export function isNumberField(field: DescField): boolean {
  return field.proto.options?.jstype === FieldOptions_JSType.JS_NUMBER;
}

function plainScalar(field: DescField, value: unknown): unknown {
  return typeof value === "bigint" && isNumberField(field) ? Number(value) : value;
}

function plainOf(desc: DescMessage, value: unknown): unknown {
  // Struct, Value and the wrappers are generated unboxed (already plain JSON or a scalar).
  if (typeof value !== "object" || value === null || !("$typeName" in value)) return value;
  if (desc.typeName === "google.protobuf.Timestamp") return timestampDate(value as Timestamp);
  return toPlain(desc, value as Message);
}

function plainField(field: DescField, value: unknown): unknown {
  switch (field.fieldKind) {
    case "scalar":
      return plainScalar(field, value);
    case "enum":
      return value;
    case "message":
      return value === undefined ? undefined : plainOf(field.message, value);
    case "list": {
      const list = value as readonly unknown[];
      if (field.listKind === "message") return list.map((v) => plainOf(field.message, v));
      return field.listKind === "scalar" ? list.map((v) => plainScalar(field, v)) : [...list];
    }
    case "map": {
      const entries = Object.entries(value as Fields);
      if (field.mapKind === "message") return Object.fromEntries(entries.map(([k, v]) => [k, plainOf(field.message, v)]));
      return Object.fromEntries(field.mapKind === "scalar" ? entries.map(([k, v]) => [k, plainScalar(field, v)]) : entries);
    }
  }
}

/**
 * `message` as a plain value (see {@link Plain}), walked by its schema `desc`.
 *
 * ```ts
 * const answer = toPlain(GetJobOutcomesResponseSchema, await raw.getJobOutcomes({}));
 * JSON.stringify(answer); // counts are numbers, times ISO strings
 * ```
 */
export function toPlain<T extends Message>(desc: DescMessage, message: T): Plain<T> {
  const fields = message as unknown as Fields;
  const out: Fields = {};
  for (const member of desc.members) {
    const value = fields[member.localName];
    if (member.kind === "oneof") {
      const selected = value as { case: string | undefined; value?: unknown };
      const field = member.fields.find((f) => f.localName === selected.case);
      out[member.localName] = field === undefined ? { case: undefined } : { case: selected.case, value: plainField(field, selected.value) };
    } else if (value !== undefined) {
      out[member.localName] = plainField(member, value);
    }
  }
  return out as Plain<T>;
}
