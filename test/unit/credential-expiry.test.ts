import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { credentialExpiry, type ExpiryTimers } from "../../src/auth/credential-expiry.js";

/** Timers on a clock the test moves: `advance` runs what falls due, in order. */
function manualClock(startMs: number) {
  let nowMs = startMs;
  let nextId = 1;
  const pending = new Map<number, { at: number; callback: () => void; ms: number }>();
  const timers: ExpiryTimers = {
    setTimeout: (callback, ms) => {
      const id = nextId++;
      pending.set(id, { at: nowMs + ms, callback, ms });
      return id;
    },
    clearTimeout: (handle) => void pending.delete(handle as number),
  };
  return {
    now: () => nowMs,
    timers,
    pending,
    advance(ms: number) {
      const until = nowMs + ms;
      for (;;) {
        const due = [...pending.entries()].filter(([, t]) => t.at <= until).sort((a, b) => a[1].at - b[1].at)[0];
        if (due === undefined) break;
        pending.delete(due[0]);
        nowMs = due[1].at;
        due[1].callback();
      }
      nowMs = until;
    },
  };
}

describe("credentialExpiry", () => {
  it("aborts at the expiry time with Unauthenticated telling the client to reconnect with a fresh token", () => {
    const clock = manualClock(1_000_000);
    const expiry = credentialExpiry(1_002_000, clock);
    clock.advance(1999);
    expect(expiry.signal?.aborted).toBe(false);
    clock.advance(1);
    expect(expiry.signal?.aborted).toBe(true);
    const reason = expiry.signal?.reason as ConnectError;
    expect(reason).toBeInstanceOf(ConnectError);
    expect(reason.code).toBe(Code.Unauthenticated);
    expect(reason.rawMessage).toMatch(/^token expired: .*reconnect with a fresh token/);
  });

  it("is already aborted for a token past its expiry (accepted within the clock tolerance)", () => {
    const clock = manualClock(1_000_000);
    expect(credentialExpiry(999_000, clock).signal?.aborted).toBe(true);
  });

  it("chains timers for an expiry beyond the longest Node timer (a 30-day token), never firing early", () => {
    const clock = manualClock(0);
    const thirtyDays = 30 * 86_400_000;
    const expiry = credentialExpiry(thirtyDays, clock);
    expect([...clock.pending.values()][0]!.ms).toBe(2 ** 31 - 1);
    clock.advance(thirtyDays - 1);
    expect(expiry.signal?.aborted).toBe(false);
    clock.advance(1);
    expect(expiry.signal?.aborted).toBe(true);
  });

  it("holds no timer once disposed, and never aborts", () => {
    const clock = manualClock(0);
    const expiry = credentialExpiry(5000, clock);
    expiry.dispose();
    expect(clock.pending.size).toBe(0);
    clock.advance(10_000);
    expect(expiry.signal?.aborted).toBe(false);
  });

  it("gives no signal for a principal without expiry", () => {
    expect(credentialExpiry(undefined).signal).toBeUndefined();
  });
});
