import { describe, expect, it } from "vitest";
import {
  HOUR_MS,
  WindowError,
  ceilToHour,
  floorToHour,
  hourlyBuckets,
  resolveWindow,
  splitWindowIntoHours,
  type WindowSplit,
} from "../../src/util/time-window.js";

const H = HOUR_MS;
const MIN = 60_000;
const HOUR_10 = Date.UTC(2024, 2, 10, 10, 0, 0);
const limits = { min: 1, max: 720, default: 24 };

function windowError(fn: () => unknown): WindowError {
  try {
    fn();
  } catch (error) {
    if (error instanceof WindowError) return error;
    throw error;
  }
  throw new Error("expected a WindowError");
}

describe("resolveWindow", () => {
  const now = HOUR_10 + 17 * MIN + 123;

  it("ends at now and starts the requested hours earlier", () => {
    expect(resolveWindow(6, now, limits)).toEqual({ startMs: now - 6 * H, endMs: now });
    expect(resolveWindow(1, now, limits)).toEqual({ startMs: now - H, endMs: now });
    expect(resolveWindow(720, now, limits)).toEqual({ startMs: now - 720 * H, endMs: now });
  });

  it("uses the default when hours is unset", () => {
    expect(resolveWindow(undefined, now, limits)).toEqual({ startMs: now - 24 * H, endMs: now });
  });

  it("accepts fractional hours, rounding the start to a whole millisecond", () => {
    expect(resolveWindow(1.5, now, limits)).toEqual({ startMs: now - 90 * MIN, endMs: now });
    const third = resolveWindow(1 + 1 / 3, now, limits);
    expect(Number.isInteger(third.startMs)).toBe(true);
    expect(third.startMs).toBe(now - 80 * MIN);
  });

  it("rejects hours outside [min, max] with a WindowError naming the field", () => {
    for (const bad of [0, 0.999, -5, 720.001, 100_000]) {
      const error = windowError(() => resolveWindow(bad, now, limits));
      expect(error.field).toBe("hours");
      expect(error.name).toBe("WindowError");
      expect(error.message).toBe(`hours must be between 1 and 720, got ${bad}`);
    }
  });

  it("rejects NaN and infinite hours", () => {
    for (const bad of [NaN, Infinity, -Infinity]) {
      const error = windowError(() => resolveWindow(bad, now, limits));
      expect(error.field).toBe("hours");
      expect(error.message).toBe("hours must be a number between 1 and 720");
    }
  });

  it("treats inconsistent limits and a non-finite now as programming errors", () => {
    expect(() => resolveWindow(1, now, { min: 0, max: 10, default: 5 })).toThrow(RangeError);
    expect(() => resolveWindow(1, now, { min: 2, max: 10, default: 1 })).toThrow(RangeError);
    expect(() => resolveWindow(1, now, { min: 1, max: 10, default: 11 })).toThrow(RangeError);
    expect(() => resolveWindow(1, NaN, limits)).toThrow(RangeError);
    expect(() => resolveWindow(1, NaN, limits)).not.toThrow(WindowError);
  });
});

describe("floorToHour / ceilToHour", () => {
  it("round to UTC hour boundaries, leaving boundaries unchanged", () => {
    expect(floorToHour(HOUR_10)).toBe(HOUR_10);
    expect(ceilToHour(HOUR_10)).toBe(HOUR_10);
    expect(floorToHour(HOUR_10 + 1)).toBe(HOUR_10);
    expect(ceilToHour(HOUR_10 + 1)).toBe(HOUR_10 + H);
    expect(floorToHour(HOUR_10 - 1)).toBe(HOUR_10 - H);
    expect(floorToHour(-1)).toBe(-H);
  });
});

/** Which part of the split claims instant t (µs-fractional ms allowed); every t in the window must hit exactly one. */
function partsContaining(split: WindowSplit, t: number): string[] {
  const parts: string[] = [];
  const { headPartial: head, wholeHours: whole, tailPartial: tail } = split;
  if (head && t >= head.startMs && t < head.endMsExclusive) parts.push("head");
  if (t >= whole.firstHourMs && t < whole.endHourMsExclusive) parts.push("whole");
  if (t >= tail.startMs && t <= tail.endMs) parts.push("tail");
  return parts;
}

function expectPartition(startMs: number, endMs: number): void {
  const split = splitWindowIntoHours(startMs, endMs);
  const probes = new Set<number>([startMs, endMs, startMs - 0.001, endMs + 0.001]);
  for (let h = floorToHour(startMs) - H; h <= endMs + H; h += H) {
    for (const d of [-1, -0.001, 0, 0.001, 1, H / 2]) probes.add(h + d);
  }
  for (const t of probes) {
    const inWindow = t >= startMs && t <= endMs;
    expect(partsContaining(split, t), `t=${t} in [${startMs}, ${endMs}]`).toHaveLength(inWindow ? 1 : 0);
  }
  const { firstHourMs, endHourMsExclusive } = split.wholeHours;
  expect(firstHourMs % H).toBe(0);
  expect(endHourMsExclusive % H).toBe(0);
  expect(firstHourMs).toBeLessThanOrEqual(endHourMsExclusive);
}

describe("splitWindowIntoHours", () => {
  it("splits an unaligned window into head, whole hours and tail", () => {
    const start = HOUR_10 + 17 * MIN;
    const end = start + 6 * H;
    expect(splitWindowIntoHours(start, end)).toEqual({
      headPartial: { startMs: start, endMsExclusive: HOUR_10 + H },
      wholeHours: { firstHourMs: HOUR_10 + H, endHourMsExclusive: HOUR_10 + 6 * H },
      tailPartial: { startMs: HOUR_10 + 6 * H, endMs: end },
    });
    expectPartition(start, end);
  });

  it("has no head when the start is on an hour, and a one-instant tail when the end is", () => {
    expect(splitWindowIntoHours(HOUR_10, HOUR_10 + 3 * H)).toEqual({
      wholeHours: { firstHourMs: HOUR_10, endHourMsExclusive: HOUR_10 + 3 * H },
      tailPartial: { startMs: HOUR_10 + 3 * H, endMs: HOUR_10 + 3 * H },
    });
    expectPartition(HOUR_10, HOUR_10 + 3 * H);
  });

  it("covers exactly one aligned hour", () => {
    expect(splitWindowIntoHours(HOUR_10, HOUR_10 + H)).toEqual({
      wholeHours: { firstHourMs: HOUR_10, endHourMsExclusive: HOUR_10 + H },
      tailPartial: { startMs: HOUR_10 + H, endMs: HOUR_10 + H },
    });
  });

  it("uses only raw rows when no whole hour fits", () => {
    // Inside one hour.
    expect(splitWindowIntoHours(HOUR_10 + 5 * MIN, HOUR_10 + 50 * MIN)).toEqual({
      wholeHours: { firstHourMs: HOUR_10, endHourMsExclusive: HOUR_10 },
      tailPartial: { startMs: HOUR_10 + 5 * MIN, endMs: HOUR_10 + 50 * MIN },
    });
    // Across an hour boundary but shorter than a whole hour on either side.
    const across = splitWindowIntoHours(HOUR_10 + 30 * MIN, HOUR_10 + H + 20 * MIN);
    expect(across.headPartial).toBeUndefined();
    expect(across.tailPartial).toEqual({ startMs: HOUR_10 + 30 * MIN, endMs: HOUR_10 + H + 20 * MIN });
    expect(across.wholeHours.firstHourMs).toBe(across.wholeHours.endHourMsExclusive);
    // An hour long but not aligned: still no whole hour inside.
    expect(splitWindowIntoHours(HOUR_10 + 1, HOUR_10 + H + 1).wholeHours).toEqual({
      firstHourMs: HOUR_10 + H,
      endHourMsExclusive: HOUR_10 + H,
    });
    // Ending one ms before the hour is a partial hour, not a whole one.
    expect(splitWindowIntoHours(HOUR_10, HOUR_10 + H - 1).tailPartial).toEqual({
      startMs: HOUR_10,
      endMs: HOUR_10 + H - 1,
    });
  });

  it("handles a zero-length window", () => {
    expect(splitWindowIntoHours(HOUR_10, HOUR_10)).toEqual({
      wholeHours: { firstHourMs: HOUR_10, endHourMsExclusive: HOUR_10 },
      tailPartial: { startMs: HOUR_10, endMs: HOUR_10 },
    });
    expectPartition(HOUR_10, HOUR_10);
  });

  it("is a disjoint, covering partition for many windows, probed at sub-millisecond resolution", () => {
    const offsets = [0, 1, 17 * MIN, H - 1];
    const lengths = [0, 1, 30 * MIN, H - 1, H, H + 1, 2 * H, 25 * H + 7];
    for (const offset of offsets) {
      for (const length of lengths) expectPartition(HOUR_10 + offset, HOUR_10 + offset + length);
    }
  });

  it("rejects reversed or non-finite windows", () => {
    expect(() => splitWindowIntoHours(HOUR_10 + 1, HOUR_10)).toThrow(RangeError);
    expect(() => splitWindowIntoHours(NaN, HOUR_10)).toThrow(RangeError);
    expect(() => splitWindowIntoHours(HOUR_10, Infinity)).toThrow(RangeError);
  });
});

describe("hourlyBuckets", () => {
  it("lists the hour containing the start through the hour containing the end", () => {
    expect(hourlyBuckets(HOUR_10 + 17 * MIN, HOUR_10 + 3 * H + 17 * MIN)).toEqual([
      HOUR_10,
      HOUR_10 + H,
      HOUR_10 + 2 * H,
      HOUR_10 + 3 * H,
    ]);
  });

  it("includes the hour starting exactly at an aligned end, so n hours give n + 1 buckets either way", () => {
    expect(hourlyBuckets(HOUR_10, HOUR_10 + 2 * H)).toEqual([HOUR_10, HOUR_10 + H, HOUR_10 + 2 * H]);
    const now = HOUR_10 + 5 * MIN;
    const window = resolveWindow(24, now, limits);
    expect(hourlyBuckets(window.startMs, window.endMs)).toHaveLength(25);
  });

  it("returns one bucket for a window inside one hour and for a single instant", () => {
    expect(hourlyBuckets(HOUR_10 + MIN, HOUR_10 + 59 * MIN)).toEqual([HOUR_10]);
    expect(hourlyBuckets(HOUR_10, HOUR_10)).toEqual([HOUR_10]);
    expect(hourlyBuckets(HOUR_10 - 1, HOUR_10)).toEqual([HOUR_10 - H, HOUR_10]);
  });

  it("gives every instant of the window a bucket, and the split's whole hours are among them", () => {
    const start = HOUR_10 + 17 * MIN;
    const end = start + 5 * H;
    const buckets = hourlyBuckets(start, end);
    for (const t of [start, start + H, end - 1, end]) expect(buckets).toContain(floorToHour(t));
    const { firstHourMs, endHourMsExclusive } = splitWindowIntoHours(start, end).wholeHours;
    for (let h = firstHourMs; h < endHourMsExclusive; h += H) expect(buckets).toContain(h);
  });

  it("rejects reversed or non-finite windows", () => {
    expect(() => hourlyBuckets(HOUR_10 + 1, HOUR_10)).toThrow(RangeError);
    expect(() => hourlyBuckets(0, Infinity)).toThrow(RangeError);
  });
});
