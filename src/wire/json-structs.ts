/**
 * A message from its `JSON.parse` value with its `google.protobuf.Struct` fields taken as they
 * are: protobuf-es `fromJson` rebuilds every `Struct` payload as `Value` messages and back, at
 * several times the cost of `JSON.parse` itself (docs/BENCHMARKS.md#measured-choices-in-the-code),
 * which on a large payload holds the event loop. The payloads are lifted out of the value, the rest
 * goes through `fromJson` (so every other field is read exactly as protobuf-es reads it), and the
 * payloads are put back on the message, where `fromJson` would have put the same JSON.
 */
import { fromJson, type DescField, type DescMessage, type JsonObject, type MessageShape } from "@bufbuild/protobuf";
import type { Violation } from "../validation/field-rules.js";

/** A `Struct` payload lifted out: the field path from the message down to it, and its value. */
interface Payload {
  readonly path: readonly DescField[];
  readonly value: JsonObject;
}

/** Whether a `JSON.parse` value is an object (not null, not a list). */
export const isJsonObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
const has = (o: object, key: string) => Object.prototype.hasOwnProperty.call(o, key);
const isStruct = (f: DescField) => f.fieldKind === "message" && f.message.typeName === "google.protobuf.Struct";
const names = (path: readonly DescField[]) => path.map((f) => f.name).join(".");

/** Why the value is not the message; carries the violation out of the walk. */
class NotTheMessage extends Error {
  constructor(readonly violation: Violation) {
    super(violation.description);
  }
}

/** The key `o` names `field` by (JSON name or proto name), or undefined; refuses both at once. */
function keyOf(o: Record<string, unknown>, field: DescField, path: readonly DescField[]): string | undefined {
  const json = has(o, field.jsonName);
  const proto = field.name !== field.jsonName && has(o, field.name);
  if (json && proto) throw new NotTheMessage({ field: names([...path, field]), description: `is given twice (as ${field.jsonName} and ${field.name})` });
  return json ? field.jsonName : proto ? field.name : undefined;
}

/** `json` without the `Struct` payloads of `desc` and of its singular message fields (same object when it has none). */
function liftStructs(desc: DescMessage, json: Record<string, unknown>, path: readonly DescField[], out: Payload[]): Record<string, unknown> {
  let rest: Record<string, unknown> | undefined;
  for (const field of desc.fields) {
    if (field.fieldKind !== "message") continue;
    const key = keyOf(json, field, path);
    if (key === undefined) continue;
    const value = json[key];
    const at = [...path, field];
    if (isStruct(field)) {
      if (value !== null && !isJsonObject(value)) throw new NotTheMessage({ field: names(at), description: "must be a JSON object" });
      rest ??= { ...json };
      delete rest[key];
      if (value !== null) out.push({ path: at, value: value as JsonObject });
      continue;
    }
    // Only fields that can hold a Struct below them; fromJson says what is wrong with other values.
    if (!isJsonObject(value) || !field.message.fields.some((f) => f.fieldKind === "message")) continue;
    const inner = liftStructs(field.message, value, at, out);
    if (inner === value) continue;
    rest ??= { ...json };
    rest[key] = inner;
  }
  return rest ?? json;
}

/** Puts a lifted payload back where `fromJson` would have put it (through oneofs as they were set). */
function putBack(message: Record<string, unknown>, { path, value }: Payload): void {
  let target: Record<string, unknown> | undefined = message;
  for (const field of path.slice(0, -1)) {
    if (target === undefined) return;
    if (field.oneof) {
      const oneof = target[field.oneof.localName] as { case?: string; value?: Record<string, unknown> };
      target = oneof.case === field.localName ? oneof.value : undefined;
    } else target = target[field.localName] as Record<string, unknown> | undefined;
  }
  if (target !== undefined) target[path[path.length - 1]!.localName] = value;
}

/**
 * The message `fromJson(desc, json)` gives, its `Struct` payloads (at any depth through singular
 * message fields and oneofs) being the very objects of `json`; or the violation that makes `json`
 * no such message (a `Struct` that is not an object, a field named twice), or the `fromJson`
 * error for anything else.
 *
 * @throws what `fromJson` throws on the rest of the message.
 */
export function fromJsonKeepingStructs<Desc extends DescMessage>(desc: Desc, json: Record<string, unknown>): MessageShape<Desc> | Violation {
  const payloads: Payload[] = [];
  let rest: Record<string, unknown>;
  try {
    rest = liftStructs(desc, json, [], payloads);
  } catch (err) {
    if (err instanceof NotTheMessage) return err.violation;
    throw err;
  }
  const message = fromJson(desc, rest as never);
  for (const payload of payloads) putBack(message as unknown as Record<string, unknown>, payload);
  return message;
}

/** Whether `x` is a violation rather than a message. */
export const isViolation = (x: object): x is Violation => !("$typeName" in x);

/**
 * The deepest bracket nesting of a JSON text, in one pass (strings skipped by escape): checked
 * before `JSON.parse`, so a deeply nested value is refused for its depth without being built.
 */
export function maxBracketDepth(text: string): number {
  let depth = 0;
  let max = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22) {
      // To the closing quote; a backslash always starts an escape, so the character after it is skipped.
      for (i++; i < text.length; i++) {
        const d = text.charCodeAt(i);
        if (d === 0x5c) i++;
        else if (d === 0x22) break;
      }
    } else if (c === 0x7b || c === 0x5b) {
      if (++depth > max) max = depth;
    } else if (c === 0x7d || c === 0x5d) depth--;
  }
  return max;
}
