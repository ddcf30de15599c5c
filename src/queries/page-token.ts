/**
 * Page tokens of `GetDeviceStateHistory`, free of I/O: opaque to clients (base64url of a small
 * JSON object), a keyset cursor on `(occurred_at, id)` underneath, so a page costs one index range
 * scan however deep the client pages and rows written meanwhile neither shift nor repeat pages.
 *
 * The token also carries the device (a token is only valid for the query that produced it) and the
 * first page's window start, so later pages keep the window the first page had even as "the last N
 * hours" moves on. Times are epoch microseconds, PostgreSQL's precision, as decimal strings.
 */

/** What a state-history page token holds. */
export interface StateHistoryToken {
  readonly deviceId: string;
  /** Window start of the first page (epoch µs). */
  readonly startUs: bigint;
  /** The next page holds changes strictly before `(beforeUs, beforeId)` in (occurred_at, id) order. */
  readonly beforeUs: bigint;
  readonly beforeId: string;
}

const VERSION = 1;
const MICROS = /^-?\d{1,19}$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
/** Longest token accepted; a real one is ~150 characters plus the device id. */
const MAX_TOKEN_LENGTH = 4096;

/** Encodes a token. */
export function encodeStateHistoryToken(token: StateHistoryToken): string {
  const json = JSON.stringify({ v: VERSION, d: token.deviceId, s: String(token.startUs), b: String(token.beforeUs), i: token.beforeId });
  return Buffer.from(json, "utf8").toString("base64url");
}

/** Decodes a token; `undefined` for anything that is not a token this module wrote. */
export function decodeStateHistoryToken(text: string): StateHistoryToken | undefined {
  if (text.length > MAX_TOKEN_LENGTH || !/^[A-Za-z0-9_-]+$/.test(text)) return undefined;
  let raw: unknown;
  try {
    raw = JSON.parse(Buffer.from(text, "base64url").toString("utf8"));
  } catch {
    return undefined;
  }
  if (typeof raw !== "object" || raw === null) return undefined;
  const r = raw as Record<string, unknown>;
  if (r.v !== VERSION || typeof r.d !== "string" || typeof r.s !== "string" || typeof r.b !== "string" || typeof r.i !== "string") {
    return undefined;
  }
  if (!MICROS.test(r.s) || !MICROS.test(r.b) || !UUID.test(r.i)) return undefined;
  const startUs = BigInt(r.s);
  const beforeUs = BigInt(r.b);
  // Both must fit PostgreSQL's bigint, which the query binds them as.
  const limit = 2n ** 63n;
  if (startUs >= limit || startUs < -limit || beforeUs >= limit || beforeUs < -limit) return undefined;
  return { deviceId: r.d, startUs, beforeUs, beforeId: r.i };
}
