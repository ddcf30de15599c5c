/**
 * Page tokens of `GetDeviceStateHistory` and `GetDeviceMetrics`, free of I/O: opaque to clients
 * (base64url of a small JSON object), a keyset cursor underneath (on `(occurred_at, id)` for state
 * history; on `occurred_at`, unique per device, for metric samples), so a page costs one index
 * range scan however deep the client pages and rows written meanwhile neither shift nor repeat pages.
 *
 * The token also carries the device (a token is only valid for the query that produced it) and the
 * first page's window start, so later pages keep the window the first page had even as "the last N
 * hours" moves on. Times are epoch microseconds, PostgreSQL's precision, as decimal strings.
 *
 * Tokens are not signed: a client can write any token, so a decoded one is only trusted after
 * {@link pageTokenWindowProblem} finds its window inside what a first request of the method may
 * ask (see there for why validation rather than a signature).
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

/** The JSON object a token of at most `maxLength` characters holds; `undefined` when it holds none. */
function tokenObject(text: string, maxLength: number): Record<string, unknown> | undefined {
  if (text.length > maxLength || !/^[A-Za-z0-9_-]+$/.test(text)) return undefined;
  let raw: unknown;
  try {
    raw = JSON.parse(Buffer.from(text, "base64url").toString("utf8"));
  } catch {
    return undefined;
  }
  if (typeof raw !== "object" || raw === null) return undefined;
  return raw as Record<string, unknown>;
}

/** Decodes a token; `undefined` for anything that is not a token this module wrote. */
export function decodeStateHistoryToken(text: string): StateHistoryToken | undefined {
  const r = tokenObject(text, MAX_TOKEN_LENGTH);
  if (r === undefined) return undefined;
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

/** What a `GetDeviceMetrics` page token holds. */
export interface DeviceMetricsToken {
  readonly deviceId: string;
  /** Window start of the first page (epoch µs). */
  readonly startUs: bigint;
  /** The next page holds samples strictly older than this (epoch µs). */
  readonly beforeUs: bigint;
}

/** Longest `GetDeviceMetrics` token accepted. */
const MAX_DEVICE_METRICS_TOKEN_LENGTH = 1024;
/** At most 18 digits: always fits the bigint the query binds it as. */
const DEVICE_METRICS_MICROS = /^-?\d{1,18}$/;

/** Encodes a `GetDeviceMetrics` token. */
export function encodeDeviceMetricsToken(token: DeviceMetricsToken): string {
  const json = JSON.stringify({ v: 1, d: token.deviceId, s: String(token.startUs), b: String(token.beforeUs) });
  return Buffer.from(json).toString("base64url");
}

/** Decodes a `GetDeviceMetrics` token; `undefined` for anything that is not one this module wrote. */
export function decodeDeviceMetricsToken(text: string): DeviceMetricsToken | undefined {
  const raw = tokenObject(text, MAX_DEVICE_METRICS_TOKEN_LENGTH);
  if (raw === undefined) return undefined;
  if (raw.v !== 1 || typeof raw.d !== "string" || typeof raw.s !== "string" || typeof raw.b !== "string") return undefined;
  if (!DEVICE_METRICS_MICROS.test(raw.s) || !DEVICE_METRICS_MICROS.test(raw.b)) return undefined;
  return { deviceId: raw.d, startUs: BigInt(raw.s), beforeUs: BigInt(raw.b) };
}

/**
 * How long after the first page its token's window still counts as one a request may ask: a
 * client paging through the longest window may take this long before its window start is older
 * than "the last `max` hours". One hour; paging a whole window is seconds of work.
 */
export const PAGE_TOKEN_PAGING_GRACE_MS = 3_600_000;

/** The window fields of a page token (both kinds of token have them). */
export interface PageTokenWindow {
  /** Window start of the first page, epoch µs. */
  readonly startUs: bigint;
  /** The page holds rows strictly before this, epoch µs. */
  readonly beforeUs: bigint;
}

/**
 * Why a decoded page token does not fit the request (a description for a `page_token` field
 * violation), or `undefined` when it does. A token's window start must lie within the longest
 * window the method allows (`maxHours` before `nowMs`, plus {@link PAGE_TOKEN_PAGING_GRACE_MS})
 * and not after now; its position (`beforeUs`) between that start and now.
 *
 * Validation rather than a signature: the server keeps no key that every instance is sure to
 * share (the HS256 secret may be created per data folder, or replaced by a JWKS), a rotated key
 * would break every page in flight, and a token that fits these bounds can only ask what a legal
 * first request could ask anyway (the methods are admin-only; the risk is cost, not access).
 */
export function pageTokenWindowProblem(token: PageTokenWindow, nowMs: number, maxHours: number): string | undefined {
  const nowUs = BigInt(Math.floor(nowMs)) * 1000n;
  const earliestUs = nowUs - BigInt(Math.round(maxHours * 3_600_000 + PAGE_TOKEN_PAGING_GRACE_MS)) * 1000n;
  // Another instance may have written the token on a clock a little ahead of this one.
  const latestUs = nowUs + BigInt(CLOCK_SKEW_MS) * 1000n;
  if (token.startUs < earliestUs || token.startUs > latestUs) {
    return `reaches outside the longest window this method allows (${maxHours} hours); request the first page again`;
  }
  if (token.beforeUs < token.startUs || token.beforeUs > latestUs) return "is not a page token of this query";
  return undefined;
}

/** Clock difference between instances tolerated in a token's times. */
const CLOCK_SKEW_MS = 60_000;
