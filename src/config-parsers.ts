/**
 * The value parsers of `src/config.ts`: each turns one variable's text into its value or throws an
 * `Error` whose message completes "NAME=value ...". Kept apart from the settings table so the table
 * reads as one line per variable; they never read the environment themselves (`src/config.ts` is
 * the one place that does).
 */

/** How one device metric's change is judged (see `src/metrics/smart-data-filter.ts`). */
export interface MetricThresholdSetting {
  readonly kind: "relative" | "absolute";
  readonly threshold: number;
}

/** An integer in `[min, max]`. */
export const int = (min: number, max: number) => (raw: string) => {
  if (!/^-?\d+$/.test(raw.trim())) throw new Error(`must be an integer from ${min} to ${max}`);
  const n = Number(raw);
  if (n < min || n > max) throw new Error(`must be an integer from ${min} to ${max}`);
  return n;
};

/** `true`/`1`/`yes`/`on` or `false`/`0`/`no`/`off`, in any case. */
export const bool = (raw: string) => {
  const v = raw.trim().toLowerCase();
  if (["1", "true", "yes", "on"].includes(v)) return true;
  if (["0", "false", "no", "off"].includes(v)) return false;
  throw new Error("must be true or false");
};

/** One of `values`, in any case (returned in lower case). */
export const oneOf =
  <T extends string>(values: readonly T[]) =>
  (raw: string): T => {
    const v = raw.trim().toLowerCase();
    if (!(values as readonly string[]).includes(v)) throw new Error(`must be one of ${values.join(", ")}`);
    return v as T;
  };

/** A `postgres://` or `postgresql://` URL, returned as written. */
export const postgresUrl = (raw: string) => {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new Error("must be a URL like postgres://user@host:5432/database");
  }
  if (url.protocol !== "postgres:" && url.protocol !== "postgresql:") {
    throw new Error("must start with postgres:// or postgresql://");
  }
  return raw;
};

/** Any text but blank, trimmed. */
export const nonEmpty = (raw: string) => {
  if (raw.trim() === "") throw new Error("must not be empty");
  return raw.trim();
};

/** An HS256 secret of at least 32 characters: a short one can be guessed offline from any token it signed. */
export const jwtSecret = (raw: string) => {
  if (raw.length < 32) throw new Error("must be at least 32 characters (e.g. `openssl rand -base64 32`)");
  return raw;
};

/** True for `localhost` and the loopback addresses (127.0.0.0/8, ::1), as `URL` spells hosts. */
function isLoopbackHost(hostname: string): boolean {
  // URL normalises IPv4 forms (127.1, 0x7f.0.0.1) to dotted decimal, so this pattern sees them all.
  return hostname === "localhost" || hostname === "[::1]" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(hostname);
}

/**
 * A JWKS URL: `https:`, since whoever can change the keys in transit can mint any token; plain
 * `http:` only for a loopback host (a sidecar or a test issuer on the same machine).
 */
export const httpUrl = (raw: string) => {
  let url: URL;
  try {
    url = new URL(raw.trim());
  } catch {
    throw new Error("must be a URL like https://issuer.example.com/.well-known/jwks.json");
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") throw new Error("must start with https:// or http://");
  if (url.protocol === "http:" && !isLoopbackHost(url.hostname)) {
    throw new Error("must start with https://: plain http:// is accepted only for a loopback host (localhost, 127.0.0.0/8, [::1])");
  }
  return url.toString();
};

/** Clock skew allowed when a revocation cut-off is checked against this machine's clock. */
const NOT_BEFORE_SKEW_MS = 5 * 60_000;

/**
 * An instant in the past: epoch seconds, a date (`2026-12-01`, UTC) or a date-time with its zone
 * (`2026-12-01T09:30:00Z`, `...+01:00`); a zone-less date-time would depend on the host's zone.
 * A future cut-off would refuse even freshly minted tokens until then, so it is refused.
 */
export const pastInstant = (raw: string): number => {
  const text = raw.trim();
  const want = "must be epoch seconds or an ISO-8601 time with its zone, e.g. 2026-12-01T09:30:00Z";
  let ms: number;
  if (/^\d{1,12}$/.test(text)) ms = Number(text) * 1000;
  else if (/^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2}))?$/i.test(text)) ms = Date.parse(text);
  else throw new Error(want);
  if (!Number.isFinite(ms)) throw new Error(want);
  if (ms > Date.now() + NOT_BEFORE_SKEW_MS) throw new Error(`is in the future (${new Date(ms).toISOString()}): it would refuse every token until then`);
  return ms;
};

/** Exact origins (`scheme://host[:port]`); a wildcard is refused because listed origins get credentials. */
export const origins = (raw: string): readonly string[] =>
  raw
    .split(/[\s,]+/)
    .filter((o) => o !== "")
    .map((o) => {
      let url: URL | undefined;
      try {
        url = new URL(o);
      } catch {
        url = undefined;
      }
      const bare = url && (url.pathname === "/" || url.pathname === "") && !url.search && !url.hash && !o.includes("*");
      if (!url || (url.protocol !== "https:" && url.protocol !== "http:") || !bare) {
        throw new Error(`has ${JSON.stringify(o)}, which is not an origin like https://app.example.com (no path, no wildcard)`);
      }
      return url.origin;
    });

/** A decimal number; `min` is exclusive when `minExclusive`. */
export const decimal =
  (min: number, max: number, minExclusive = false) =>
  (raw: string) => {
    const want = `must be a number ${minExclusive ? "above" : "from"} ${min} ${minExclusive ? "and up to" : "to"} ${max}`;
    if (!/^\s*\d+(\.\d+)?([eE][-+]?\d+)?\s*$/.test(raw)) throw new Error(want);
    const n = Number(raw);
    if (!(minExclusive ? n > min : n >= min) || n > max) throw new Error(want);
    return n;
  };

const METRIC_NAME = /^[^\s,=:]{1,128}$/;

/** Comma-separated metric names; blank entries are ignored. */
export const metricNames = (raw: string): readonly string[] => {
  const names = raw.split(",").map((n) => n.trim()).filter((n) => n !== "");
  const bad = names.find((n) => !METRIC_NAME.test(n));
  if (bad !== undefined) throw new Error(`has an invalid metric name ${JSON.stringify(bad)}`);
  return Object.freeze(names);
};

/** `name=relative:0.1,other=absolute:2`: per-metric change rules. */
export const metricThresholds = (raw: string): Readonly<Record<string, MetricThresholdSetting>> => {
  const out: Record<string, MetricThresholdSetting> = {};
  for (const entry of raw.split(",").map((e) => e.trim()).filter((e) => e !== "")) {
    const match = /^([^\s,=:]{1,128})=(relative|absolute):(\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)$/.exec(entry);
    const threshold = Number(match?.[3]);
    if (!match || !Number.isFinite(threshold) || (match[2] === "relative" && threshold <= 0)) {
      throw new Error(
        `has a bad entry ${JSON.stringify(entry)}: write name=relative:RATIO (above 0) or name=absolute:DIFFERENCE`,
      );
    }
    out[match[1]!] = Object.freeze({ kind: match[2] as MetricThresholdSetting["kind"], threshold });
  }
  return Object.freeze(out);
};
