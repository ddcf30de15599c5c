import { describe, expect, it } from "vitest";
import { isUuid, uuidV7 } from "../../src/util/uuid-v7.js";

describe("uuidV7", () => {
  it("is a canonical version-7 UUID whose first 48 bits are the given milliseconds", () => {
    for (const ms of [0, 1, 1_700_000_000_123, 2 ** 48 - 1]) {
      const id = uuidV7(ms);
      expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      expect(Number.parseInt(id.slice(0, 8) + id.slice(9, 13), 16)).toBe(ms);
      expect(isUuid(id)).toBe(true);
    }
  });

  it("gives distinct ids across refills of its random pool, ordered by time across milliseconds", () => {
    const ids = Array.from({ length: 5_000 }, (_, i) => uuidV7(1_700_000_000_000 + Math.floor(i / 10)));
    expect(new Set(ids).size).toBe(ids.length);
    for (let i = 10; i < ids.length; i += 10) expect(ids[i]! > ids[i - 1]!).toBe(true);
    // the random tail is not constant (the pool is really refilled)
    expect(new Set(ids.map((id) => id.slice(19))).size).toBe(ids.length);
  });
});
