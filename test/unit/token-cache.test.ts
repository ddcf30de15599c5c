import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { mintToken } from "../../src/auth/mint-token.js";
import { cachedTokenVerifier, createTokenVerifier } from "../../src/auth/token-verifier.js";

const secret = new TextEncoder().encode("a-test-secret-that-is-long-enough-for-hs256");

describe("cachedTokenVerifier", () => {
  it("verifies a token once while it is fresh, and again after maxAgeMs", async () => {
    let clock = Date.UTC(2026, 0, 1);
    let verifications = 0;
    const inner = createTokenVerifier({ secret, now: () => clock });
    const verify = cachedTokenVerifier(
      async (t) => {
        verifications++;
        return inner(t);
      },
      { now: () => clock, maxAgeMs: 60_000 },
    );
    const token = await mintToken(secret, { role: "service", sub: "svc", ttlSeconds: 3600 }, clock);
    expect(await verify(token)).toEqual({ subject: "svc", role: "service", expiresAtMs: clock + 3_600_000 });
    await verify(token);
    expect(verifications).toBe(1);
    clock += 60_001;
    await verify(token);
    expect(verifications).toBe(2);
  });

  it("never trusts a cached token past its exp", async () => {
    let clock = Date.UTC(2026, 0, 1);
    const verify = cachedTokenVerifier(createTokenVerifier({ secret, now: () => clock, clockToleranceSec: 0 }), { now: () => clock, maxAgeMs: 3_600_000 });
    const token = await mintToken(secret, { role: "device", sub: "d-1", ttlSeconds: 10 }, clock);
    await verify(token);
    clock += 10_001;
    const err = await verify(token).then(
      () => undefined,
      (e: unknown) => ConnectError.from(e),
    );
    expect(err?.code).toBe(Code.Unauthenticated);
  });

  it("does not cache failures and evicts the least recently used token", async () => {
    const clock = Date.UTC(2026, 0, 1);
    let calls = 0;
    const inner = createTokenVerifier({ secret, now: () => clock });
    const verify = cachedTokenVerifier(
      async (t) => {
        calls++;
        return inner(t);
      },
      { now: () => clock, maxEntries: 1 },
    );
    await expect(verify("not-a-token")).rejects.toThrow();
    await expect(verify("not-a-token")).rejects.toThrow();
    expect(calls).toBe(2);
    const a = await mintToken(secret, { role: "user", sub: "a", ttlSeconds: 600 }, clock);
    const b = await mintToken(secret, { role: "user", sub: "b", ttlSeconds: 600 }, clock);
    await verify(a);
    await verify(b); // evicts a
    await verify(a);
    expect(calls).toBe(5);
  });
});
