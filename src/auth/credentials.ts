/**
 * Where a call's token comes from: `authorization: Bearer ...`, or for browsers the
 * `access_token` cookie, which is only honoured when the request cannot be a cross-site forgery.
 * Pure functions of the request headers.
 */

/** The cookie browsers carry the token in. */
export const TOKEN_COOKIE = "access_token";

/** A token and where it was found, or why none could be used. */
export type Credentials =
  | { readonly token: string; readonly source: "bearer" | "cookie" }
  | { readonly token?: undefined; readonly problem: string };

/**
 * True when the `access_token` cookie may authenticate this request. Browsers attach cookies to
 * cross-site requests too (SameSite=None), so the cookie counts only when the request comes
 * from a listed origin or from the server's own origin, or carries no sign of being a
 * cross-site browser request at all (non-browser clients send neither `Origin` nor
 * `Sec-Fetch-Site`).
 */
export function cookieAllowed(header: Headers, requestUrl: string, allowedOrigins: readonly string[]): boolean {
  const origin = header.get("origin");
  if (origin !== null) {
    if (allowedOrigins.includes(origin)) return true;
    try {
      // Same host as the request: the page was served by this server itself.
      return origin !== "null" && new URL(origin).host === new URL(requestUrl).host;
    } catch {
      return false;
    }
  }
  const site = header.get("sec-fetch-site");
  return site === null || site === "same-origin" || site === "none";
}

/** Value of one cookie from a `Cookie` header (the first, if repeated). */
export function readCookie(cookieHeader: string | null, name: string): string | undefined {
  if (!cookieHeader) return undefined;
  for (const part of cookieHeader.split(";")) {
    const eq = part.indexOf("=");
    if (eq < 0 || part.slice(0, eq).trim() !== name) continue;
    let value = part.slice(eq + 1).trim();
    if (value.startsWith('"') && value.endsWith('"') && value.length >= 2) value = value.slice(1, -1);
    return value;
  }
  return undefined;
}

/**
 * Finds the call's token. A bearer header wins over the cookie; a malformed `authorization`
 * header is a problem rather than a reason to fall back to the cookie.
 *
 * @returns the token, or `{ problem }` saying what is missing or wrong.
 */
export function readCredentials(header: Headers, requestUrl: string, allowedOrigins: readonly string[]): Credentials {
  const authorization = header.get("authorization");
  if (authorization !== null) {
    const m = /^\s*bearer\s+(\S+)\s*$/i.exec(authorization);
    if (!m) return { problem: "the authorization header must be \"Bearer <token>\"" };
    return { token: m[1]!, source: "bearer" };
  }
  const cookie = readCookie(header.get("cookie"), TOKEN_COOKIE);
  if (cookie !== undefined && cookie !== "") {
    if (!cookieAllowed(header, requestUrl, allowedOrigins)) {
      return { problem: `the ${TOKEN_COOKIE} cookie is not accepted from origin ${header.get("origin") ?? "(cross-site)"}: it is not in ANALYTICS_CORS_ORIGINS` };
    }
    return { token: cookie, source: "cookie" };
  }
  return { problem: `missing credentials: send "authorization: Bearer <token>" or an ${TOKEN_COOKIE} cookie` };
}
