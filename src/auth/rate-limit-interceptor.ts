/**
 * Rate limiting per principal: one token bucket per (role, subject), sized by the role's limit.
 * Over the limit the call is `ResourceExhausted` with a `retry-after-ms` header and the wait in
 * the message; other principals have their own buckets and are unaffected. Runs after the auth
 * interceptor (it needs the principal); calls without one (health, reflection) are not limited.
 * A stream counts as one call: its messages are paced by acknowledgements and the database.
 */
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { kPrincipal } from "./principal.js";
import type { RateLimits } from "./rate-limit-policy.js";
import { createTokenBuckets, type TokenBuckets } from "./token-bucket.js";

/** Response header (Connect unary) / trailer (gRPC, gRPC-Web) with the suggested wait. */
export const RETRY_AFTER_HEADER = "retry-after-ms";

/** Options for {@link createRateLimitInterceptor}. */
export interface RateLimitInterceptorOptions {
  readonly limits: RateLimits;
  /** The buckets (injectable, with a fake clock, for tests). */
  readonly buckets?: TokenBuckets;
}

/** Creates the interceptor. */
export function createRateLimitInterceptor(options: RateLimitInterceptorOptions): Interceptor {
  const buckets = options.buckets ?? createTokenBuckets();
  return (next) => async (req) => {
    const principal = req.contextValues.get(kPrincipal);
    const limit = principal ? options.limits[principal.role] : undefined;
    if (!principal || !limit) return next(req);
    const result = buckets.take(`${principal.role}\u0000${principal.subject}`, limit);
    if (!result.allowed) {
      throw new ConnectError(
        `rate limit exceeded for ${principal.role} "${principal.subject}" (${limit.perSecond}/s, burst ${limit.burst}): retry in ${result.retryAfterMs} ms`,
        Code.ResourceExhausted,
        { [RETRY_AFTER_HEADER]: String(result.retryAfterMs) },
      );
    }
    return next(req);
  };
}
