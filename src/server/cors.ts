/**
 * CORS for browsers calling over Connect or gRPC-Web: an allow-list of exact origins, each
 * answered with credentials (the `access_token` cookie) allowed; every other origin gets no CORS
 * headers at all, so its scripts can neither send a preflighted request nor read a response.
 * Headers and methods come from `@connectrpc/connect`'s `cors` constants, plus `authorization`.
 * (Whether the cookie counts for a request is decided again by the auth interceptor, which never
 * trusts a cookie from an unlisted origin; CORS alone only protects responses.)
 */
import { cors } from "@connectrpc/connect";
import type { UniversalHandler } from "./one-port-server.js";
import { RETRY_AFTER_HEADER } from "../auth/rate-limit-interceptor.js";

/** Options for {@link withCors}. */
export interface CorsOptions {
  /** Exact origins (`https://app.example.com`), as normalised by the config. */
  readonly allowedOrigins: readonly string[];
  /**
   * How long browsers may cache a preflight, in seconds. 7200 is the most Chromium honours
   * (Firefox allows a day), so there is no point asking for more.
   */
  readonly maxAgeSeconds?: number;
}

/** Headers browsers may send: Connect's, gRPC-Web's, and the bearer token. */
export const CORS_ALLOWED_HEADERS: readonly string[] = [...cors.allowedHeaders, "Authorization"];
/** Headers browser scripts may read: Connect's, gRPC-Web's, and the rate-limit hint. */
export const CORS_EXPOSED_HEADERS: readonly string[] = [...cors.exposedHeaders, RETRY_AFTER_HEADER];

/** Wraps a handler with CORS. Requests without an `Origin` header pass through untouched. */
export function withCors(handler: UniversalHandler, options: CorsOptions): UniversalHandler {
  const allowed = new Set(options.allowedOrigins);
  const maxAge = String(options.maxAgeSeconds ?? 7200);
  const allowMethods = cors.allowedMethods.join(", ");
  const allowHeaders = CORS_ALLOWED_HEADERS.join(", ");
  const exposeHeaders = CORS_EXPOSED_HEADERS.join(", ");

  return (req, res) => {
    const origin = req.headers.origin;
    if (typeof origin !== "string") {
      handler(req, res);
      return;
    }
    // Answers differ by Origin, so caches must key on it.
    res.setHeader("Vary", "Origin");
    const listed = allowed.has(origin);
    const preflight = req.method === "OPTIONS" && req.headers["access-control-request-method"] !== undefined;
    if (preflight) {
      if (!listed) {
        res.statusCode = 403;
        res.end();
        return;
      }
      res.statusCode = 204;
      res.setHeader("Access-Control-Allow-Origin", origin);
      res.setHeader("Access-Control-Allow-Credentials", "true");
      res.setHeader("Access-Control-Allow-Methods", allowMethods);
      res.setHeader("Access-Control-Allow-Headers", allowHeaders);
      res.setHeader("Access-Control-Max-Age", maxAge);
      res.end();
      return;
    }
    if (listed) {
      res.setHeader("Access-Control-Allow-Origin", origin);
      res.setHeader("Access-Control-Allow-Credentials", "true");
      res.setHeader("Access-Control-Expose-Headers", exposeHeaders);
    }
    handler(req, res);
  };
}
