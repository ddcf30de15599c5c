import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import {
  DEFAULT_DEDUP_INDEX_MAX_ENTRIES,
  DEFAULT_DEDUP_INTERVAL_MS,
  DedupIndex,
  applyIncrement,
  decideDedup,
  dedupKey,
  dedupReporter,
  type DedupEntry,
} from "../../src/ingest/error-dedup.js";

const INTERVAL = DEFAULT_DEDUP_INTERVAL_MS;
const T0 = Date.UTC(2024, 0, 1, 12, 0, 0);

function stored(overrides: Partial<DedupEntry> = {}): DedupEntry {
  return { id: "err-1", firstSeenAtMs: T0, lastSeenAtMs: T0, resolved: false, ...overrides };
}

describe("dedupKey", () => {
  const base = { deviceId: "dev-1", errorCode: "E42", errorMessage: "disk full" };

  it("is a stable 64-character sha256 hex of the JSON-encoded identity", () => {
    const expected = createHash("sha256").update('["dev-1","E42","disk full"]').digest("hex");
    expect(dedupKey(base)).toBe(expected);
    expect(dedupKey({ ...base })).toBe(dedupKey(base));
    expect(dedupKey(base)).toMatch(/^[0-9a-f]{64}$/);
  });

  it("differs when the device, code or any character of the message differs", () => {
    const keys = [
      dedupKey(base),
      dedupKey({ ...base, deviceId: "dev-2" }),
      dedupKey({ ...base, errorCode: "E43" }),
      dedupKey({ ...base, errorMessage: "Disk full" }),
      dedupKey({ ...base, errorMessage: "disk full " }),
      dedupKey({ ...base, errorMessage: "disk full".normalize("NFD") + "\u0301" }),
    ];
    expect(new Set(keys).size).toBe(keys.length);
  });

  it("cannot be confused by field contents that look like separators", () => {
    expect(dedupKey({ deviceId: "a", errorCode: "b,c", errorMessage: "d" })).not.toBe(
      dedupKey({ deviceId: "a,b", errorCode: "c", errorMessage: "d" }),
    );
    expect(dedupKey({ deviceId: 'a"', errorCode: "", errorMessage: "x" })).not.toBe(
      dedupKey({ deviceId: "a", errorCode: '"', errorMessage: "x" }),
    );
  });

  it("treats a missing device or code like an empty one and ignores the category", () => {
    expect(dedupKey({ errorMessage: "boom" })).toBe(dedupKey({ deviceId: "", errorCode: "", errorMessage: "boom" }));
    expect(dedupKey({ ...base, category: "STORAGE" })).toBe(dedupKey({ ...base, category: "IO" }));
  });

  it("keeps long messages to a fixed-length key", () => {
    const long = "x".repeat(1_000_000);
    expect(dedupKey({ ...base, errorMessage: long })).toHaveLength(64);
    expect(dedupKey({ ...base, errorMessage: long })).not.toBe(dedupKey({ ...base, errorMessage: long + "y" }));
  });
});

describe("reporter scopes (who shares a group)", () => {
  const report = { deviceId: "dev-1", errorCode: "E42", errorMessage: "disk full" };
  const keyFor = (role: "admin" | "service" | "user" | "device", subject: string) =>
    dedupKey({ ...report, reporter: dedupReporter({ role, subject }) });

  it("puts devices, services, admins and calls without a principal in one shared group, keyed as before", () => {
    const shared = createHash("sha256").update('["dev-1","E42","disk full"]').digest("hex");
    expect(keyFor("device", "dev-1")).toBe(shared);
    expect(keyFor("service", "gateway")).toBe(shared);
    expect(keyFor("admin", "ops")).toBe(shared);
    expect(dedupKey({ ...report, reporter: dedupReporter(undefined) })).toBe(shared);
  });

  it("groups what a user reports apart from the shared group and from every other user", () => {
    const shared = keyFor("device", "dev-1");
    const alice = keyFor("user", "alice");
    expect(alice).not.toBe(shared);
    expect(keyFor("user", "bob")).not.toBe(alice);
    expect(keyFor("user", "alice")).toBe(alice);
    expect(alice).toBe(createHash("sha256").update('["dev-1","E42","disk full","user:alice"]').digest("hex"));
  });

  it("cannot be made to collide with a shared key by a user's choice of fields", () => {
    // A user naming a device "dev-1\",\"E42" or a subject that looks like a field still makes a
    // four-element identity, which no three-element one equals.
    const shared = keyFor("device", "dev-1");
    expect(dedupKey({ deviceId: "dev-1", errorCode: "E42", errorMessage: "disk full", reporter: "" })).not.toBe(shared);
    expect(keyFor("user", "")).not.toBe(shared);
  });
});

describe("decideDedup", () => {
  it("inserts when nothing is stored under the key", () => {
    expect(decideDedup(undefined, T0, INTERVAL)).toEqual({ action: "insert" });
  });

  it("increments within the interval measured from last seen, and inserts at exactly the interval", () => {
    const e = stored();
    expect(decideDedup(e, T0, INTERVAL)).toEqual({ action: "increment", id: "err-1", regressed: false });
    expect(decideDedup(e, T0 + INTERVAL - 1, INTERVAL)).toEqual({ action: "increment", id: "err-1", regressed: false });
    expect(decideDedup(e, T0 + INTERVAL, INTERVAL)).toEqual({ action: "insert" });
    expect(decideDedup(e, T0 + INTERVAL + 1, INTERVAL)).toEqual({ action: "insert" });
  });

  it("slides with last seen, so a continuously repeating error stays one row", () => {
    let e = stored();
    // Every 4 minutes for 2 hours: each occurrence is within 5 minutes of the previous one.
    for (let t = T0 + 240_000; t <= T0 + 7_200_000; t += 240_000) {
      const decision = decideDedup(e, t, INTERVAL);
      expect(decision.action).toBe("increment");
      e = applyIncrement(e, t, false);
    }
    expect(e).toEqual(stored({ lastSeenAtMs: T0 + 7_200_000 }));
    // A gap of the full interval after the last sighting starts a new row.
    expect(decideDedup(e, T0 + 7_200_000 + INTERVAL, INTERVAL)).toEqual({ action: "insert" });
  });

  it("uses the configured interval", () => {
    const e = stored();
    expect(decideDedup(e, T0 + 59_999, 60_000).action).toBe("increment");
    expect(decideDedup(e, T0 + 60_000, 60_000).action).toBe("insert");
    expect(decideDedup(e, T0 + 3_599_999, 3_600_000).action).toBe("increment");
  });

  it("inserts every occurrence when the interval is 0", () => {
    const e = stored({ lastSeenAtMs: T0 + 1000 });
    expect(decideDedup(e, T0, 0).action).toBe("insert");
    expect(decideDedup(e, T0 + 500, 0).action).toBe("insert");
    expect(decideDedup(e, T0 + 1000, 0).action).toBe("insert");
  });

  it("increments late (older) occurrences near the stored burst, and inserts ones far before it", () => {
    const e = stored({ firstSeenAtMs: T0, lastSeenAtMs: T0 + 600_000 });
    expect(decideDedup(e, T0 + 300_000, INTERVAL).action).toBe("increment");
    expect(decideDedup(e, T0 - INTERVAL + 1, INTERVAL).action).toBe("increment");
    expect(decideDedup(e, T0 - INTERVAL, INTERVAL).action).toBe("insert");
    expect(decideDedup(e, T0 - 86_400_000, INTERVAL).action).toBe("insert");
  });

  it("marks an occurrence on a resolved error as regressed, inside the window", () => {
    const e = stored({ resolved: true });
    expect(decideDedup(e, T0 + 1000, INTERVAL)).toEqual({ action: "increment", id: "err-1", regressed: true });
    // Outside the window it is a new row; the decision carries no regression flag.
    expect(decideDedup(e, T0 + INTERVAL, INTERVAL)).toEqual({ action: "insert" });
  });

  it("does not call a late report from before the resolution a regression", () => {
    const e = stored({ lastSeenAtMs: T0 + 60_000, resolved: true, resolvedAtMs: T0 + 120_000 });
    expect(decideDedup(e, T0 + 30_000, INTERVAL)).toEqual({ action: "increment", id: "err-1", regressed: false });
    expect(decideDedup(e, T0 + 120_000, INTERVAL)).toEqual({ action: "increment", id: "err-1", regressed: false });
    expect(decideDedup(e, T0 + 120_001, INTERVAL)).toEqual({ action: "increment", id: "err-1", regressed: true });
  });

  it("rejects a negative, NaN or infinite interval and a non-finite time", () => {
    for (const bad of [-1, NaN, Infinity]) expect(() => decideDedup(stored(), T0, bad)).toThrow(RangeError);
    expect(() => decideDedup(undefined, NaN, INTERVAL)).toThrow(RangeError);
  });
});

describe("applyIncrement", () => {
  it("moves last seen forward and never backwards, first seen backwards and never forwards", () => {
    const e = stored({ firstSeenAtMs: T0, lastSeenAtMs: T0 + 10_000 });
    expect(applyIncrement(e, T0 + 20_000, false)).toEqual(stored({ firstSeenAtMs: T0, lastSeenAtMs: T0 + 20_000 }));
    expect(applyIncrement(e, T0 + 5_000, false)).toEqual(e);
    expect(applyIncrement(e, T0 - 5_000, false)).toEqual(stored({ firstSeenAtMs: T0 - 5_000, lastSeenAtMs: T0 + 10_000 }));
  });

  it("reopens on regression and keeps the resolution otherwise", () => {
    const resolved = stored({ resolved: true, resolvedAtMs: T0 + 1 });
    expect(applyIncrement(resolved, T0 + 2, true)).toEqual(stored({ lastSeenAtMs: T0 + 2 }));
    expect(applyIncrement(resolved, T0, false)).toEqual(resolved);
  });
});

describe("DedupIndex", () => {
  it("defaults to 100k entries and rejects a non-positive bound", () => {
    expect(new DedupIndex().maxEntries).toBe(DEFAULT_DEDUP_INDEX_MAX_ENTRIES);
    expect(DEFAULT_DEDUP_INDEX_MAX_ENTRIES).toBe(100_000);
    for (const bad of [0, -1, 1.5, NaN]) expect(() => new DedupIndex({ maxEntries: bad })).toThrow(RangeError);
  });

  it("gets what was set, as a copy", () => {
    const index = new DedupIndex();
    const entry = stored();
    index.set("k", entry);
    entry.lastSeenAtMs = 0;
    const got = index.get("k");
    expect(got).toEqual(stored());
    got!.resolved = true;
    expect(index.get("k")?.resolved).toBe(false);
    expect(index.get("missing")).toBeUndefined();
  });

  it("evicts the least recently used key when full, counting gets as use", () => {
    const index = new DedupIndex({ maxEntries: 2 });
    index.set("a", stored({ id: "1" }));
    index.set("b", stored({ id: "2" }));
    index.get("a");
    index.set("c", stored({ id: "3" }));
    expect(index.size).toBe(2);
    expect(index.get("b")).toBeUndefined();
    expect(index.get("a")?.id).toBe("1");
    expect(index.get("c")?.id).toBe("3");
    // The evicted id no longer resolves to anything.
    expect(index.markResolved("2", true)).toBe(false);
  });

  it("replacing a key (new row after the window) counts as use and drops the old id", () => {
    const index = new DedupIndex({ maxEntries: 2 });
    index.set("a", stored({ id: "1" }));
    index.set("b", stored({ id: "2" }));
    index.set("a", stored({ id: "3" }));
    index.set("c", stored({ id: "4" }));
    expect(index.get("b")).toBeUndefined();
    expect(index.get("a")?.id).toBe("3");
    expect(index.markResolved("1", true)).toBe(false);
    expect(index.markResolved("3", true)).toBe(true);
  });

  it("markResolved updates the cached entry by id, so the next decision sees a regression", () => {
    const index = new DedupIndex();
    index.set("k", stored());
    expect(index.markResolved("err-1", true, T0 + 10)).toBe(true);
    expect(index.get("k")).toEqual(stored({ resolved: true, resolvedAtMs: T0 + 10 }));
    expect(decideDedup(index.get("k"), T0 + 20, INTERVAL)).toEqual({ action: "increment", id: "err-1", regressed: true });
    expect(index.markResolved("err-1", false)).toBe(true);
    expect(index.get("k")).toEqual(stored());
    expect(index.markResolved("unknown", true)).toBe(false);
  });

  it("deletes and clears", () => {
    const index = new DedupIndex();
    index.set("a", stored({ id: "1" }));
    index.set("b", stored({ id: "2" }));
    expect(index.delete("a")).toBe(true);
    expect(index.delete("a")).toBe(false);
    expect(index.get("a")).toBeUndefined();
    expect(index.markResolved("1", true)).toBe(false);
    index.clear();
    expect(index.size).toBe(0);
    expect(index.markResolved("2", true)).toBe(false);
  });

  it("stays bounded under many keys", () => {
    const index = new DedupIndex({ maxEntries: 1000 });
    for (let i = 0; i < 10_000; i++) index.set(`k${i}`, stored({ id: `id${i}` }));
    expect(index.size).toBe(1000);
    expect(index.get("k8999")).toBeUndefined();
    expect(index.get("k9000")?.id).toBe("id9000");
    expect(index.markResolved("id0", true)).toBe(false);
  });
});
