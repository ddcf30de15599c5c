import { describe, expect, it } from "vitest";
import { DEFAULT_RATE_LIMITS, parseRateLimits } from "../../src/auth/rate-limit-policy.js";
import { createTokenBuckets } from "../../src/auth/token-bucket.js";

describe("token buckets", () => {
  const clock = () => {
    let t = 1_000;
    return { now: () => t, advance: (ms: number) => (t += ms) };
  };

  it("allows a burst, then refills at the rate, and says how long to wait", () => {
    const c = clock();
    const buckets = createTokenBuckets({ now: c.now });
    const limit = { perSecond: 2, burst: 3 };
    expect([1, 2, 3].map(() => buckets.take("a", limit).allowed)).toEqual([true, true, true]);
    expect(buckets.take("a", limit)).toEqual({ allowed: false, retryAfterMs: 500 });
    c.advance(250);
    expect(buckets.take("a", limit)).toEqual({ allowed: false, retryAfterMs: 250 });
    c.advance(250);
    expect(buckets.take("a", limit)).toEqual({ allowed: true });
    expect(buckets.take("a", limit).allowed).toBe(false);
    // Refill never exceeds the burst.
    c.advance(60_000);
    expect([1, 2, 3, 4].map(() => buckets.take("a", limit).allowed)).toEqual([true, true, true, false]);
  });

  it("keeps keys apart: one exhausted key leaves the others untouched", () => {
    const c = clock();
    const buckets = createTokenBuckets({ now: c.now });
    const limit = { perSecond: 1, burst: 1 };
    expect(buckets.take("a", limit).allowed).toBe(true);
    expect(buckets.take("a", limit).allowed).toBe(false);
    expect(buckets.take("b", limit).allowed).toBe(true);
  });

  it("forgets refilled buckets when there are many, and only those", () => {
    const c = clock();
    const buckets = createTokenBuckets({ now: c.now, maxKeys: 3 });
    const limit = { perSecond: 1, burst: 2 };
    buckets.take("a", limit);
    buckets.take("a", limit);
    buckets.take("b", limit);
    buckets.take("c", limit);
    c.advance(1500); // b and c are full again, a is not
    buckets.take("d", limit);
    expect(buckets.size()).toBe(2); // a and d
    expect(buckets.take("a", limit).allowed).toBe(true);
    expect(buckets.take("a", limit).allowed).toBe(false);
  });

  it("charges a cost", () => {
    const buckets = createTokenBuckets({ now: () => 0 });
    expect(buckets.take("a", { perSecond: 10, burst: 10 }, 8).allowed).toBe(true);
    expect(buckets.take("a", { perSecond: 10, burst: 10 }, 8)).toEqual({ allowed: false, retryAfterMs: 600 });
  });
});

describe("ANALYTICS_RATE_LIMITS", () => {
  it("overrides named roles and keeps the defaults of the others", () => {
    const limits = parseRateLimits("user=5/s:20, device=600/m, admin=off");
    expect(limits.user).toEqual({ perSecond: 5, burst: 20 });
    expect(limits.device).toEqual({ perSecond: 10, burst: 20 });
    expect(limits.admin).toBeUndefined();
    expect(limits.service).toEqual(DEFAULT_RATE_LIMITS.service);
  });

  it("turns everything off", () => {
    expect(Object.values(parseRateLimits("off"))).toEqual([undefined, undefined, undefined, undefined]);
  });

  it.each([
    ["user=5", /bad entry "user=5"/],
    ["root=5/s", /unknown role "root"/],
    ["user=0/s", /rate of 0/],
    ["user=5/s:0", /burst below 1/],
  ])("refuses %s", (raw, message) => {
    expect(() => parseRateLimits(raw)).toThrow(message);
  });
});
