import { Buffer } from "node:buffer";

/**
 * A JSON column's value serialized by the caller: the batch writer stores the text as it is
 * instead of calling `JSON.stringify` when it buffers the row.
 *
 * For a hot path whose value object would otherwise stay referenced until the commit: serialized
 * at once, the object dies young and the scavenger reclaims it for nothing, while a buffered
 * object is copied by every scavenge it survives (docs/BENCHMARKS.md#measured-choices-in-the-code).
 */
export class JsonText {
  constructor(
    /** The JSON text, e.g. `{"cpu":12.5}`. */
    readonly text: string,
  ) {}

  /** The value the text stands for (tests, and code that reads a buffered row back). */
  parse(): unknown {
    return JSON.parse(this.text);
  }

  /**
   * The value, for `JSON.stringify` of anything that holds a row (a log line, a JSON parameter):
   * it stands for its value, not for a `{ "text": ... }` wrapper. Not on the write path, which
   * takes `text` as it is.
   */
  toJSON(): unknown {
    return this.parse();
  }
}

/**
 * The value serialized last, its JSON as `JSON.stringify` wrote it, and its stored text (made on
 * first ask). Validation measures a payload and the row built right after it stores the same
 * text: one entry is enough for that pair, and costs an identity check, where a memo on the
 * object itself (`Object.defineProperty` with a symbol) or a `WeakMap` entry cost more per event
 * on the LogEvents path (docs/BENCHMARKS.md#measured-choices-in-the-code). Holds one object alive at most.
 */
let lastValue: object | undefined;
let lastJson = "";
let lastText: JsonText | undefined;

/**
 * `value`'s JSON exactly as `JSON.stringify` writes it (lone surrogates still escaped), once for
 * asks in a row about the same object: what validation measures, before it scans the content
 * ({@link jsonHasNul}) or the row's text is made ({@link jsonTextOf}). The text of a
 * {@link JsonText} as it is. Same caveat as {@link jsonTextOf}: values must not change once made.
 */
export function jsonOf(value: object): string {
  if (value instanceof JsonText) return value.text;
  if (value !== lastValue) {
    lastJson = JSON.stringify(value);
    lastValue = value;
    lastText = undefined;
  }
  return lastJson;
}

/**
 * `value` serialized, once for two asks in a row about the same object (the request validation
 * measures a JSON payload's size and the row then stores the same text, instead of running
 * `JSON.stringify` on it twice). For values that do not change once made (a decoded request's
 * payload): a change to the object between two asks would not be seen.
 */
export function jsonTextOf(value: object): JsonText {
  if (value instanceof JsonText) return value; // a payload decoded as text (`compileDecoder`'s `structs: "json-text"`)
  const json = jsonOf(value);
  return (lastText ??= new JsonText(wellFormedJson(json)));
}

// The scans below take JSON text (as `JSON.stringify` writes it, or any valid JSON) where a
// backslash only ever appears in a string, and there always starts an escape: `\\`, `\"`,
// `\n`..., or `\uXXXX`. Stepping over the character after each backslash therefore sees every
// escape, and only escapes (in `\\u0000` the second backslash is escaped, and "u0000" is text),
// in one pass: linear in the text. A regular expression cannot say "after an even run of
// backslashes" without an unbounded lookbehind, which made it quadratic in a run's length (16k
// backslashes before a NUL: 0.4-0.8 s; a 1 MB run: hours). Both scans first ask the engine's
// native substring search whether the escape they look for occurs at all: on the hot path
// (LogEvents) it never does, and the pass never runs.

const BACKSLASH = 0x5c;
const LOWER_U = 0x75;
const LOWER_D = 0x64;

/** Whether `json` (valid JSON, e.g. made by `JSON.stringify`) holds U+0000 in a key or string, which jsonb cannot store. */
export function jsonHasNul(json: string): boolean {
  if (!json.includes("\\u0000")) return false;
  for (let i = json.indexOf("\\"); i >= 0 && i < json.length; i++) {
    if (json.charCodeAt(i) !== BACKSLASH) continue;
    if (json.startsWith("u0000", i + 1)) return true;
    i++; // the escaped character: a backslash there is text
  }
  return false;
}

/** Whether the escape at `i` (a backslash) is `\ud800`-`\udfff` in lower case, as `JSON.stringify` writes a lone surrogate. */
function isSurrogateEscape(json: string, i: number): boolean {
  if (json.charCodeAt(i + 1) !== LOWER_U || json.charCodeAt(i + 2) !== LOWER_D) return false;
  const c = json.charCodeAt(i + 3); // 8, 9, a-f: 0xd800-0xdfff
  return c === 0x38 || c === 0x39 || (c >= 0x61 && c <= 0x66);
}

/**
 * `json` with every lone surrogate replaced by U+FFFD, as UTF-8 encoders do (and as the text of
 * a binary request already arrives): PostgreSQL's jsonb refuses the escape of a lone surrogate,
 * and would fail the row's whole flush. A JavaScript string may hold one (a JSON request's
 * `"\ud800"`, a truncated emoji), and Struct payloads are not checked for it when decoded.
 * `JSON.stringify` writes a paired surrogate as the character itself, so every surrogate escape
 * in its text is a lone one. The result has the same length and UTF-8 size as `json`.
 */
export function wellFormedJson(json: string): string {
  if (!json.includes("\\ud")) return json;
  // Each replacement has the length of what it replaces: the text's UTF-16 code units are copied
  // once, patched in place, and read back once (two native copies), instead of a piece of string
  // per lone surrogate for the collector to copy.
  let units: Buffer | undefined;
  for (let i = json.indexOf("\\"); i >= 0 && i < json.length; i++) {
    if (json.charCodeAt(i) !== BACKSLASH) continue;
    if (isSurrogateEscape(json, i)) {
      units ??= Buffer.from(json, "utf16le");
      units.write("fffd", 2 * (i + 2), "utf16le");
      i += 5;
    } else {
      i++; // the escaped character: a backslash there is text
    }
  }
  return units === undefined ? json : units.toString("utf16le");
}
