import { describe, expect, it } from "vitest";
import { decodeStateHistoryToken, encodeStateHistoryToken } from "../../src/queries/page-token.js";

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
