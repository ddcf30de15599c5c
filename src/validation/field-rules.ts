/**
 * A tiny declarative validator: each request message declares its rules once (see
 * `request-rules.ts`), and {@link validate} turns them into client-safe field violations, which
 * {@link invalidArgument} sends as a `google.rpc.BadRequest` detail.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import type { Timestamp } from "@bufbuild/protobuf/wkt";
import type { JsonObject } from "@bufbuild/protobuf";
import { badRequest, type FieldViolation, type OutgoingDetail } from "../errors/error-details.js";
import { jsonHasNul, jsonOf } from "../util/json-text.js";
import { isUuid } from "../util/uuid-v7.js";

/** One invalid field: its proto field path and what is wrong, in words safe to show a client. */
export type Violation = FieldViolation;

/** A check returns a description of the problem, or undefined when the value is fine. */
export type Check<V> = (value: V) => string | undefined;

/** A rule for one field of message `M`: how to read the field, and its checks in order. */
export interface FieldRule<M> {
  /** The field's name in the .proto file (the violation's path). */
  readonly field: string;
  readonly get: (message: M) => unknown;
  /** Run in order; the first problem found is the field's violation. */
  readonly checks: readonly Check<never>[];
}

/** Declares the checks of one field, named as in the .proto file. */
export function field<M, V>(name: string, get: (m: M) => V, ...checks: Check<V>[]): FieldRule<M> {
  return { field: name, get, checks };
}

/** The rules of one message type, compiled into one function ({@link rules}). */
export interface Rules<M> {
  readonly fields: readonly FieldRule<M>[];
  /** The violations of `message`, each field path after `prefix`; empty when it is valid. */
  readonly check: (message: M, prefix: string) => Violation[];
}

/**
 * Compiles a message type's field rules into one function that reads each field and runs its
 * checks in declaration order. Compiled (`new Function`, once, at start-up) so that every reader
 * and check is called from a call site of its own, where the engine inlines it: run from one
 * shared loop, every call site saw every field's closures and none was inlined (validating a
 * device state change: ~4,400 instructions, callgrind; compiled: see docs/BENCHMARKS.md).
 * Only the rules' own functions are called; field names enter the code as JSON string literals.
 */
export function rules<M>(...fields: FieldRule<M>[]): Rules<M> {
  const names: string[] = [];
  const values: unknown[] = [];
  const bind = (name: string, value: unknown): string => {
    names.push(name);
    values.push(value);
    return name;
  };
  const body = fields
    .filter((f) => f.checks.length > 0)
    .map((f, i) => {
      const checks = f.checks.map((c, j) => bind(`check${i}_${j}`, c));
      return [
        `v = ${bind(`get${i}`, f.get)}(message);`,
        `p = ${checks[0]}(v);`,
        ...checks.slice(1).map((c) => `if (p === undefined) p = ${c}(v);`),
        `if (p !== undefined) out.push({ field: prefix + ${JSON.stringify(f.field)}, description: p });`,
      ].join("\n");
    });
  const check = new Function(...names, `return (message, prefix) => {\nconst out = [];\nlet v;\nlet p;\n${body.join("\n")}\nreturn out;\n};`)(...values) as Rules<M>["check"];
  return { fields, check };
}

/** Runs every rule; `prefix` places nested messages (e.g. `events[3].error.`). */
export function validate<M>(message: M, ruleSet: Rules<M>, prefix = ""): Violation[] {
  return ruleSet.check(message, prefix);
}

/** Throws InvalidArgument naming every invalid field, or returns when there is none. */
export function assertValid<M>(message: M, ruleSet: Rules<M>): void {
  const violations = validate(message, ruleSet);
  if (violations.length > 0) throw invalidArgument(violations);
}

/** Options of {@link invalidArgument}. */
export interface InvalidArgumentOptions {
  /** Words after the message's list of fields, e.g. which batch of a stream. */
  readonly context?: string;
  /** Details after the `google.rpc.BadRequest`, e.g. the refused batch of a stream. */
  readonly details?: readonly OutgoingDetail[];
}

/**
 * The InvalidArgument error for a list of violations: the message names each field for a reader,
 * and a `google.rpc.BadRequest` detail carries one field violation per entry for a program.
 */
export function invalidArgument(violations: readonly Violation[], options: InvalidArgumentOptions = {}): ConnectError {
  const text = violations.map((v) => `${v.field}: ${v.description}`).join("; ");
  const details = [badRequest(violations), ...(options.details ?? [])];
  return new ConnectError(`invalid request: ${text}${options.context ?? ""}`, Code.InvalidArgument, undefined, details);
}

// Checks. Strings from protobuf are never undefined; "" means absent.

/** The string must not be empty or blank. */
export const required: Check<string> = (v) => (v.trim() === "" ? "is required" : undefined);

/**
 * The string must not hold U+0000: PostgreSQL's text and jsonb cannot store it, and the row
 * would be refused at its flush (an `Internal` error instead of a named field).
 */
export const noNul: Check<string> = (v) => (v.includes("\u0000") ? "must not contain the NUL character (U+0000)" : undefined);

/** Adds a violation for `field` when `value` holds U+0000 (a query parameter PostgreSQL would refuse). */
export function checkNoNul(field: string, value: string, violations: Violation[]): void {
  const problem = noNul(value);
  if (problem !== undefined) violations.push({ field, description: problem });
}

/** The string must be at most `n` characters. */
export const maxLength =
  (n: number): Check<string> =>
  (v) =>
    v.length > n ? `must be at most ${n} characters (got ${v.length})` : undefined;

/**
 * Text stored in a column: at most `n` characters, then no NUL ({@link noNul}). The size comes
 * first so an oversized value is refused for its size before any scan of its content.
 */
export const text = (n: number): Check<string>[] => [maxLength(n), noNul];

/** The string, when present, must be a UUID. */
export const optionalUuid: Check<string> = (v) => (v !== "" && !isUuid(v) ? "must be a UUID" : undefined);

/** The enum value must be one the schema defines; `allowUnspecified` permits 0. */
export const definedEnum =
  (values: object, allowUnspecified: boolean): Check<number> =>
  (v) => {
    if (v === 0) return allowUnspecified ? undefined : "is required";
    return typeof (values as Record<number, unknown>)[v] === "string" ? undefined : `has unknown value ${v}`;
  };

/** Latest accepted event time relative to now: clients' clocks drift, but not by a day. */
const MAX_FUTURE_MS = 24 * 3600 * 1000;
/** Earliest accepted event time: older data is a bug or a replay beyond any retention. */
const MIN_TIME_MS = Date.UTC(2000, 0, 1);

/** The timestamp, when present, must be a real time not far in the future. */
export const optionalEventTime =
  (nowMs: () => number): Check<Timestamp | undefined> =>
  (ts) => {
    if (ts === undefined) return undefined;
    if (ts.nanos < 0 || ts.nanos > 999_999_999) return "has invalid nanos";
    const ms = Number(ts.seconds) * 1000 + ts.nanos / 1e6;
    if (!Number.isFinite(ms) || ms < MIN_TIME_MS) return "must be after 2000-01-01";
    if (ms > nowMs() + MAX_FUTURE_MS) return "must not be more than 24 hours in the future";
    return undefined;
  };

/** The largest value of a PostgreSQL `integer` column. */
export const INTEGER_COLUMN_MAX = 2_147_483_647;

/**
 * A uint32 field stored in an `integer` column must fit it: above 2^31 - 1 the database would
 * refuse the row, and with it the batch it was flushed in (an `Internal` error for every caller).
 */
export const fitsIntegerColumn: Check<number | undefined> = (v) =>
  v !== undefined && v > INTEGER_COLUMN_MAX ? `must be at most ${INTEGER_COLUMN_MAX} (got ${v})` : undefined;

/** Encoded size cap for free-form JSON (Struct) fields. */
export const MAX_JSON_BYTES = 64 * 1024;

/**
 * A Struct field, when present, must encode to at most {@link MAX_JSON_BYTES} of JSON and hold no
 * U+0000 in a key or string (jsonb cannot store it: the row would be refused at its flush). The
 * size is checked first, on the text as serialized, so no content scan ever runs on an
 * oversized payload.
 */
export const jsonPayload: Check<JsonObject | undefined> = (v) => {
  if (v === undefined) return undefined;
  const json = jsonOf(v);
  // UTF-8 takes at most 3 bytes per UTF-16 code unit: most payloads need no count of their bytes.
  if (json.length * 3 > MAX_JSON_BYTES) {
    const bytes = Buffer.byteLength(json);
    if (bytes > MAX_JSON_BYTES) return `must encode to at most ${MAX_JSON_BYTES} bytes of JSON (got ${bytes})`;
  }
  return jsonHasNul(json) ? "must not contain the NUL character (U+0000) in a key or string" : undefined;
};
