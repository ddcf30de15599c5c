/**
 * Rate limiting per principal: one token bucket per (role, subject), sized by the role's limit.
 * Over the limit the call is `ResourceExhausted` with the wait as a `google.rpc.RetryInfo` detail,
 * in a `retry-after-ms` header and in the message; other principals have their own buckets and
 * are unaffected. Runs after the auth interceptor (it needs the principal); calls without one
 * (health, reflection) are not limited.
 * A stream counts as one call: its messages are paced by acknowledgements and the database.
 */
import type { Interceptor } from "@connectrpc/connect";
import { resourceExhausted } from "../errors/error-details.js";
import { kPrincipal } from "./principal.js";
import type { RateLimits } from "./rate-limit-policy.js";
import { createTokenBuckets, type TokenBuckets } from "./token-bucket.js";

/** Response header (Connect unary) / trailer (gRPC, gRPC-Web) with the suggested wait. */
export { RETRY_AFTER_HEADER } from "../errors/error-details.js";

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
      throw resourceExhausted(
        `rate limit exceeded for ${principal.role} "${principal.subject}" (${limit.perSecond}/s, burst ${limit.burst}): retry in ${result.retryAfterMs} ms`,
        result.retryAfterMs,
      );
    }
    return next(req);
  };
}
