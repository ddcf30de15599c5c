/**
 * Token buckets keyed by principal. Pure apart from the injected clock, so tests drive time.
 */
import type { RateLimit } from "./rate-limit-policy.js";

/** The answer to one {@link TokenBuckets.take}. */
export type TakeResult = { readonly allowed: true } | { readonly allowed: false; readonly retryAfterMs: number };

/** A set of token buckets, one per key, created full on first use. */
export interface TokenBuckets {
  /** Takes `cost` tokens from `key`'s bucket under `limit`, or says how long until it could. */
  take(key: string, limit: RateLimit, cost?: number): TakeResult;
  /** Buckets currently remembered (full buckets are forgotten once there are many). */
  size(): number;
}

/** Options for {@link createTokenBuckets}. */
export interface TokenBucketsOptions {
  /** The clock in milliseconds (default `performance.now`). */
  readonly now?: () => number;
  /**
   * Past this many remembered keys, buckets that have refilled completely are dropped: a full
   * bucket behaves exactly like a new one, so forgetting it changes nothing but memory.
   */
  readonly maxKeys?: number;
}

interface Bucket {
  tokens: number;
  at: number;
  perSecond: number;
  burst: number;
}

/** Creates an empty set of buckets. */
export function createTokenBuckets(options: TokenBucketsOptions = {}): TokenBuckets {
  const now = options.now ?? (() => performance.now());
  const maxKeys = options.maxKeys ?? 10_000;
  const buckets = new Map<string, Bucket>();

  const refill = (b: Bucket, t: number) => {
    if (t > b.at) b.tokens = Math.min(b.burst, b.tokens + ((t - b.at) / 1000) * b.perSecond);
    b.at = t;
  };

  const sweep = (t: number) => {
    for (const [key, b] of buckets) {
      refill(b, t);
      if (b.tokens >= b.burst) buckets.delete(key);
    }
  };

  return {
    take(key, limit, cost = 1) {
      const t = now();
      let b = buckets.get(key);
      if (!b) {
        if (buckets.size >= maxKeys) sweep(t);
        b = { tokens: limit.burst, at: t, perSecond: limit.perSecond, burst: limit.burst };
        buckets.set(key, b);
      } else {
        refill(b, t);
        // A changed limit (new config) applies from now on without losing the current level.
        b.perSecond = limit.perSecond;
        b.burst = limit.burst;
        b.tokens = Math.min(b.tokens, b.burst);
      }
      if (b.tokens >= cost) {
        b.tokens -= cost;
        return { allowed: true };
      }
      const retryAfterMs = Math.max(1, Math.ceil(((cost - b.tokens) / b.perSecond) * 1000));
      return { allowed: false, retryAfterMs };
    },
    size() {
      return buckets.size;
    },
  };
}
