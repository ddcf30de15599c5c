/**
 * `LogEvents` in JSON, decoded one event at a time so a large batch never holds the event loop.
 *
 * Why not Connect's own JSON decoding: Connect turns the whole body into a message in one
 * synchronous block (`JSON.parse`, then protobuf-es `fromJson`), and a batch within the 4 MiB cap
 * costs up to hundreds of milliseconds there (a million empty events, or sixty 5,000-key
 * `Struct`s), with every other call of the process, health checks included, waiting behind it.
 * Here the body's text is split into its events by one linear scan ({@link splitEventsJson}), the
 * batch size is checked before any event is parsed, and each event is parsed alone
 * ({@link eventFromJson}) between turns of the event loop, as the binary fast path does with its
 * events' bytes. `Struct` payloads are taken as `JSON.parse` gives them (what protobuf-es would
 * rebuild through `google.protobuf.Value` messages at several times the cost), so one event
 * costs about one `JSON.parse` of it.
 *
 * How the body gets here unparsed: `json-body-capture.ts`. Connect still reads the body (its size
 * cap, decompression, deadlines) and runs every interceptor.
 *
 * Semantics match the binary path: an event that is JSON but not a valid `analytics.v1.Event` is
 * rejected as an item (its neighbours are stored), a body that is not JSON or not a
 * `LogEventsRequest` is refused whole (`InvalidArgument`), as are an empty or oversized batch.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { EventSchema, type Event } from "../../sdk/src/gen/analytics/v1/analytics_service_pb.js";
import { wellFormedText } from "../errors/error-details.js";
import type { Violation } from "../validation/field-rules.js";
import { fromJsonKeepingStructs, isJsonObject, isViolation } from "./json-structs.js";

/** Where one event's JSON text is in the body, and how deep its brackets nest. */
export interface EventSpan {
  readonly start: number;
  readonly end: number;
  readonly depth: number;
}

/** The events of a `LogEventsRequest` JSON text: the first `maxEvents` spans, and how many there are. */
export interface EventsJsonSplit {
  readonly spans: readonly EventSpan[];
  readonly count: number;
}

/** The body is not JSON, or not a `LogEventsRequest` (refused whole). */
export class EventsJsonError extends Error {
  override name = "EventsJsonError";
}

const SPACE = 0x20;
const TAB = 0x09;
const LF = 0x0a;
const CR = 0x0d;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const COLON = 0x3a;
const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;
const OPEN_LIST = 0x5b;
const CLOSE_LIST = 0x5d;

/** At most this many characters of caller text in an error message. */
const QUOTED_CHARS = 64;
const quoted = (s: string) => JSON.stringify(s.length > QUOTED_CHARS ? `${s.slice(0, QUOTED_CHARS)}…` : s);

/**
 * Splits a `LogEventsRequest` JSON text into its events' spans in one pass, each character looked
 * at once (strings skipped by escape, brackets counted), without parsing any event: the top level
 * is checked exactly (`{`, the key `events` or none, `null` or a list, nothing after), each event
 * only for where it ends. Spans past `maxEvents` are counted, not kept.
 *
 * @throws EventsJsonError when the text is not JSON of that shape (an event's own syntax is left to
 *   {@link eventFromJson}).
 */
export function splitEventsJson(text: string, maxEvents: number): EventsJsonSplit {
  const n = text.length;
  let i = 0;
  const fail = (what: string): never => {
    throw new EventsJsonError(`${what} at offset ${i}`);
  };
  const skipSpace = () => {
    for (let c = text.charCodeAt(i); c === SPACE || c === LF || c === CR || c === TAB; c = text.charCodeAt(++i));
  };
  /** From an opening quote at `i` to just past its closing quote. */
  const skipString = () => {
    for (i++; i < n; ) {
      const c = text.charCodeAt(i);
      if (c === QUOTE) {
        i++;
        return;
      }
      i += c === BACKSLASH ? 2 : 1;
    }
    fail("unterminated string");
  };
  /** One JSON value from `i`: its span and bracket depth. */
  const value = (): EventSpan => {
    const start = i;
    const c = text.charCodeAt(i);
    let depth = 0;
    if (c === OPEN_OBJECT || c === OPEN_LIST) {
      let open = 0;
      while (i < n) {
        const d = text.charCodeAt(i);
        if (d === QUOTE) {
          skipString();
          continue;
        }
        if (d === OPEN_OBJECT || d === OPEN_LIST) {
          if (++open > depth) depth = open;
        } else if (d === CLOSE_OBJECT || d === CLOSE_LIST) {
          if (--open === 0) {
            i++;
            return { start, end: i, depth };
          }
        }
        i++;
      }
      fail("unterminated value");
    }
    if (c === QUOTE) {
      skipString();
      return { start, end: i, depth };
    }
    for (let d = c; i < n && d !== COMMA && d !== CLOSE_LIST && d !== CLOSE_OBJECT && d !== SPACE && d !== LF && d !== CR && d !== TAB; d = text.charCodeAt(++i));
    if (i === start) fail("expected a value");
    return { start, end: i, depth };
  };

  let spans: EventSpan[] = [];
  let count = 0;
  skipSpace();
  if (text.charCodeAt(i) !== OPEN_OBJECT) fail("expected an object");
  i++;
  skipSpace();
  if (text.charCodeAt(i) === CLOSE_OBJECT) i++;
  else {
    for (;;) {
      if (text.charCodeAt(i) !== QUOTE) fail("expected a key");
      const keyStart = i;
      skipString();
      let key: unknown;
      try {
        key = JSON.parse(text.slice(keyStart, i));
      } catch {
        fail("invalid key");
      }
      if (key !== "events") throw new EventsJsonError(`key ${quoted(String(key))} is unknown`);
      skipSpace();
      if (text.charCodeAt(i) !== COLON) fail("expected ':'");
      i++;
      skipSpace();
      // A key given twice: the last one counts, as with JSON.parse.
      spans = [];
      count = 0;
      if (text.startsWith("null", i)) i += 4;
      else {
        if (text.charCodeAt(i) !== OPEN_LIST) fail("events must be a list");
        i++;
        skipSpace();
        if (text.charCodeAt(i) === CLOSE_LIST) i++;
        else {
          for (;;) {
            const span = value();
            if (++count <= maxEvents) spans.push(span);
            skipSpace();
            const c = text.charCodeAt(i++);
            if (c === CLOSE_LIST) break;
            if (c !== COMMA) fail(`expected ',' or ']' after events[${count - 1}]`);
            skipSpace();
          }
        }
      }
      skipSpace();
      const c = text.charCodeAt(i++);
      if (c === CLOSE_OBJECT) break;
      if (c !== COMMA) fail("expected ',' or '}'");
      skipSpace();
    }
  }
  skipSpace();
  if (i < n) fail("unexpected text after the request");
  return { spans, count };
}

/** Bracket depth past which an event is refused before it is parsed (its `Struct`s nest in it). */
export const MAX_EVENT_JSON_DEPTH = 64;

/** An error's text, cut to a readable length (well-formed: never half a surrogate pair). */
const reason = (err: unknown): string => wellFormedText(err instanceof Error ? err.message : String(err), 200);

/**
 * One event from its JSON text (a span of {@link splitEventsJson}): the `Event` protobuf-es would
 * give, its `Struct` payloads as `JSON.parse` gave them, or why it is not one (as an item of the
 * batch, field `events[index]...`). NaN and infinities cannot appear; a number too large for a
 * double is Infinity, stored as `null` as `JSON.stringify` (and the binary path) write it.
 *
 * @throws EventsJsonError when the text is not JSON at all (the body is then not JSON).
 */
export function eventFromJson(text: string, span: EventSpan, index: number, maxChars: number): Event | Violation {
  const at = `events[${index}]`;
  const chars = span.end - span.start;
  if (chars > maxChars) return { field: at, description: `is ${chars} characters of JSON, more than any valid event (${maxChars})` };
  if (span.depth > MAX_EVENT_JSON_DEPTH) return { field: at, description: `nests deeper than ${MAX_EVENT_JSON_DEPTH} levels` };
  let json: unknown;
  try {
    json = JSON.parse(text.slice(span.start, span.end));
  } catch (err) {
    throw new EventsJsonError(`${at} is not valid JSON: ${reason(err)}`);
  }
  if (!isJsonObject(json)) return { field: at, description: "must be a JSON object (an analytics.v1.Event)" };
  let event: Event | Violation;
  try {
    event = fromJsonKeepingStructs(EventSchema, json);
  } catch (err) {
    return { field: at, description: `is not a valid analytics.v1.Event: ${reason(err)}` };
  }
  return isViolation(event) ? { field: `${at}.${event.field}`, description: event.description } : event;
}

/** The InvalidArgument for a body that is not a `LogEventsRequest` in JSON. */
export function invalidJsonBody(err: EventsJsonError): ConnectError {
  return new ConnectError(`invalid request: not an analytics.v1.LogEventsRequest in JSON: ${err.message}`, Code.InvalidArgument);
}
