import { describe, expect, it } from "vitest";
import { isUuid, uuidV7, writeUuidBytes } from "../../src/util/uuid-v7.js";

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

describe("isUuid and writeUuidBytes", () => {
  const CANONICAL = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
  const good = "0190a4b2-c3d4-7e8f-9a0b-cdef01234567";

  it("accept exactly the canonical form (8-4-4-4-12 hex digits, either case), as the regular expression does", () => {
    // Every single-character change of a good UUID, to characters around the hex ranges and beyond ASCII.
    const swaps = ["0", "9", "a", "f", "A", "F", "g", "G", "/", ":", "@", "`", "-", "_", " ", "\n", "é", "\u0130", "\uff10", "\ud800"];
    const candidates = [good, good.toUpperCase(), "", good.slice(1), good + "0", good + "\n", `{${good}}`, good.replaceAll("-", "")];
    for (let i = 0; i < good.length; i++) for (const c of swaps) candidates.push(good.slice(0, i) + c + good.slice(i + 1));
    for (const s of candidates) {
      expect(isUuid(s), JSON.stringify(s)).toBe(CANONICAL.test(s));
      expect(writeUuidBytes(s, new Uint8Array(16), 0), JSON.stringify(s)).toBe(CANONICAL.test(s));
    }
  });

  it("writeUuidBytes writes the 16 bytes the hex digits spell, at the offset", () => {
    for (const s of [good, good.toUpperCase(), uuidV7(), "00000000-0000-0000-0000-000000000000", "ffffffff-ffff-ffff-ffff-ffffffffffff"]) {
      const out = new Uint8Array(20).fill(0xee);
      expect(writeUuidBytes(s, out, 3)).toBe(true);
      expect(Buffer.from(out.subarray(3, 19)).toString("hex")).toBe(s.replaceAll("-", "").toLowerCase());
      expect([out[2], out[19]]).toEqual([0xee, 0xee]);
    }
  });
});
