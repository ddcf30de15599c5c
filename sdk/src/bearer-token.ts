/**
 * Bearer-token authentication for any transport: `authorization: Bearer <token>` on every call
 * (every attempt of a retried call, so a refreshed token is picked up). Platform-neutral.
 *
 * @module
 */
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";

/**
 * Where a token comes from: a fixed string, or a function called before every attempt (cache and
 * refresh inside it; it may return a promise).
 */
export type TokenSource = string | (() => string | Promise<string>);

/** Resolves a {@link TokenSource} to the current token. */
export async function resolveToken(source: TokenSource): Promise<string> {
  return typeof source === "string" ? source : await source();
}

/**
 * A client interceptor sending the token of `source` as a bearer token.
 *
 * ```ts
 * createConnectTransport({ baseUrl, interceptors: [createBearerTokenInterceptor(() => tokens.current())] });
 * ```
 *
 * A `getToken` that throws fails the call with `Unauthenticated` (the cause kept).
 */
export function createBearerTokenInterceptor(source: TokenSource): Interceptor {
  return (next) => async (req) => {
    let token: string;
    try {
      token = await resolveToken(source);
    } catch (err) {
      throw new ConnectError("could not get an access token", Code.Unauthenticated, undefined, undefined, err);
    }
    if (token !== "") req.header.set("authorization", `Bearer ${token}`);
    return next(req);
  };
}
