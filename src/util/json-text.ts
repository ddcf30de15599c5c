/**
 * A JSON column's value serialized by the caller: the batch writer stores the text as it is
 * instead of calling `JSON.stringify` when it buffers the row.
 *
 * For a hot path whose value object would otherwise stay referenced until the commit: serialized
 * at once, the object dies young and the scavenger reclaims it for nothing, while a buffered
 * object is copied by every scavenge it survives (device metrics: ~7 % less CPU per stored row).
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
 * The value serialized last and its text. Validation measures a payload and the row built right
 * after it stores the same text: one entry is enough for that pair, and costs an identity check,
 * where a memo on the object itself (`Object.defineProperty` with a symbol) was ~0.5 µs per event
 * and a `WeakMap` entry ~0.8 µs (profiled on the LogEvents path). Holds one object alive at most.
 */
let lastValue: object | undefined;
let lastText: JsonText | undefined;

/**
 * `value` serialized, once for two asks in a row about the same object (the request validation
 * measures a JSON payload's size and the row then stores the same text, instead of running
 * `JSON.stringify` on it twice). For values that do not change once made (a decoded request's
 * payload): a change to the object between two asks would not be seen.
 */
export function jsonTextOf(value: object): JsonText {
  if (value instanceof JsonText) return value; // a payload decoded as text (`compileDecoder`'s `structs: "json-text"`)
  if (value === lastValue) return lastText!;
  const text = new JsonText(wellFormedJson(JSON.stringify(value)));
  lastValue = value;
  lastText = text;
  return text;
}

/**
 * Where an escape in text made by `JSON.stringify` is one: after an even number of backslashes
 * (it writes a literal backslash as `\\`, so `\\u0000` is text, not an escape).
 */
const UNESCAPED = String.raw`(?<=(?:^|[^\\])(?:\\\\)*)`;

/** A lone UTF-16 surrogate as `JSON.stringify` writes it (`\ud800`; a paired one is the character itself). */
const LONE_SURROGATE = new RegExp(UNESCAPED + String.raw`\\ud[89a-f][0-9a-f]{2}`, "g");

/** U+0000 as `JSON.stringify` writes it. */
const NUL = new RegExp(UNESCAPED + String.raw`\\u0000`);

/** Whether `json` (made by `JSON.stringify`) holds U+0000 in a key or string, which jsonb cannot store. */
export function jsonHasNul(json: string): boolean {
  return json.includes("\\u0000") && NUL.test(json);
}

/**
 * `json` with every lone surrogate replaced by U+FFFD, as UTF-8 encoders do (and as the text of
 * a binary request already arrives): PostgreSQL's jsonb refuses the escape of a lone surrogate,
 * and would fail the row's whole flush. A JavaScript string may hold one (a JSON request's
 * `"\ud800"`, a truncated emoji), and Struct payloads are not checked for it when decoded.
 */
export function wellFormedJson(json: string): string {
  return json.includes("\\ud") ? json.replace(LONE_SURROGATE, "\\ufffd") : json;
}
