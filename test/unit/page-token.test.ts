import { describe, expect, it } from "vitest";
import { decodeStateHistoryToken, encodeStateHistoryToken, pageTokenWindowProblem } from "../../src/queries/page-token.js";

const token = {
  deviceId: "device-ü-1",
  startUs: 1_795_000_000_123_456n,
  beforeUs: 1_795_000_100_000_001n,
  beforeId: "01937a4e-0000-7000-8000-000000000001",
};

describe("state history page tokens", () => {
  it("round-trips, opaque and URL-safe", () => {
    const text = encodeStateHistoryToken(token);
    expect(text).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(decodeStateHistoryToken(text)).toEqual(token);
  });

  const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString("base64url");
  const good = { v: 1, d: "d", s: "1", b: "2", i: token.beforeId };
  it.each([
    ["empty", ""],
    ["not base64url", "a+b/c="],
    ["not JSON", Buffer.from("{nope").toString("base64url")],
    ["JSON but not an object", b64([1, 2])],
    ["another version", b64({ ...good, v: 2 })],
    ["a number as time", b64({ ...good, s: 1 })],
    ["a fractional time", b64({ ...good, b: "1.5" })],
    ["a time beyond bigint", b64({ ...good, b: "99999999999999999999" })],
    ["a bad id", b64({ ...good, i: "x'; drop table" })],
    ["a missing device", b64({ ...good, d: undefined })],
    ["too long", "A".repeat(5000)],
  ])("rejects %s", (_name, text) => {
    expect(decodeStateHistoryToken(text)).toBeUndefined();
  });
});

describe("pageTokenWindowProblem", () => {
  const NOW = Date.UTC(2026, 10, 28, 10, 0, 0);
  const H = 3_600_000;
  const us = (ms: number) => BigInt(ms) * 1000n;
  const window = (startMs: number, beforeMs = NOW - 1000) => ({ startUs: us(startMs), beforeUs: us(beforeMs) });

  it("accepts a token of the longest window, paged for up to an hour", () => {
    expect(pageTokenWindowProblem(window(NOW - 720 * H), NOW, 720)).toBeUndefined();
    expect(pageTokenWindowProblem(window(NOW - 720 * H - 59 * 60_000), NOW, 720)).toBeUndefined();
    expect(pageTokenWindowProblem(window(NOW - 2 * H), NOW, 720)).toBeUndefined();
  });

  it("refuses a token whose window starts before the longest window plus the paging hour", () => {
    expect(pageTokenWindowProblem(window(NOW - 722 * H), NOW, 720)).toBe(
      "reaches outside the longest window this method allows (720 hours); request the first page again",
    );
    expect(pageTokenWindowProblem(window(0), NOW, 168)).toMatch(/^reaches outside the longest window this method allows \(168 hours\)/);
  });

  it("refuses a window starting in the future and a position outside the window", () => {
    expect(pageTokenWindowProblem(window(NOW + 2 * H, NOW + 3 * H), NOW, 720)).toMatch(/^reaches outside/);
    expect(pageTokenWindowProblem(window(NOW - H, NOW - 2 * H), NOW, 720)).toBe("is not a page token of this query");
    expect(pageTokenWindowProblem(window(NOW - H, NOW + H), NOW, 720)).toBe("is not a page token of this query");
  });

  it("tolerates a minute of clock difference between instances", () => {
    expect(pageTokenWindowProblem(window(NOW - H, NOW + 30_000), NOW, 720)).toBeUndefined();
  });
});
