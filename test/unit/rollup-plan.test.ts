import { describe, expect, it } from "vitest";
import { ceilToDay, DAY_MS, FIVE_MINUTES_MS, floorToDay, planWindow, type WindowPlan } from "../../src/rollups/rollup-plan.js";
import { HOUR_MS } from "../../src/util/time-window.js";

const H = HOUR_MS;
const M = 60_000;
const D0 = Date.UTC(2026, 10, 20); // a UTC midnight
const API_LEVELS = [DAY_MS, H, FIVE_MINUTES_MS];

/** Which parts of the plan cover instant `t` (each instant must be covered exactly once). */
function coverers(plan: WindowPlan, t: number): string[] {
  const out: string[] = [];
  plan.raw.forEach((r, i) => {
    if (t >= r.startMs && (r.endInclusive ? t <= r.endMs : t < r.endMs)) out.push(`raw${i}`);
  });
  for (const level of plan.levels) {
    level.ranges.forEach((r, i) => {
      if (t >= r.startMs && t < r.endMsExclusive) out.push(`${level.periodMs}/${i}`);
    });
  }
  return out;
}

describe("day helpers", () => {
  it("floor and ceil to UTC days", () => {
    expect(floorToDay(D0 + 5 * H)).toBe(D0);
    expect(ceilToDay(D0 + 5 * H)).toBe(D0 + DAY_MS);
    expect(ceilToDay(D0)).toBe(D0);
  });
});

describe("planWindow", () => {
  it("serves a 168-hour unaligned window from days, hours, 5-minute periods and two short raw edges", () => {
    const end = D0 + 7 * DAY_MS + 10 * H + 37 * M + 12_345;
    const start = end - 168 * H;
    const plan = planWindow({ startMs: start, endMs: end }, { levels: API_LEVELS });
    expect(plan.widened).toBe(false);
    expect(plan.window).toEqual({ startMs: start, endMs: end });
    expect(plan.raw).toEqual([
      { startMs: start, endMs: D0 + 10 * H + 40 * M, endInclusive: false },
      { startMs: D0 + 7 * DAY_MS + 10 * H + 35 * M, endMs: end, endInclusive: true },
    ]);
    expect(plan.levels).toEqual([
      { periodMs: DAY_MS, ranges: [{ startMs: D0 + DAY_MS, endMsExclusive: D0 + 7 * DAY_MS }] },
      {
        periodMs: H,
        ranges: [
          { startMs: D0 + 11 * H, endMsExclusive: D0 + DAY_MS },
          { startMs: D0 + 7 * DAY_MS, endMsExclusive: D0 + 7 * DAY_MS + 10 * H },
        ],
      },
      {
        periodMs: FIVE_MINUTES_MS,
        ranges: [
          { startMs: D0 + 10 * H + 40 * M, endMsExclusive: D0 + 11 * H },
          { startMs: D0 + 7 * DAY_MS + 10 * H, endMsExclusive: D0 + 7 * DAY_MS + 10 * H + 35 * M },
        ],
      },
    ]);
  });

  it("uses hours only for hour-only rollups", () => {
    const plan = planWindow({ startMs: D0 + 30 * M, endMs: D0 + 3 * DAY_MS }, { levels: [H] });
    expect(plan.levels).toEqual([{ periodMs: H, ranges: [{ startMs: D0 + H, endMsExclusive: D0 + 3 * DAY_MS }] }]);
    expect(plan.raw).toEqual([
      { startMs: D0 + 30 * M, endMs: D0 + H, endInclusive: false },
      { startMs: D0 + 3 * DAY_MS, endMs: D0 + 3 * DAY_MS, endInclusive: true },
    ]);
  });

  it("reads a window without a whole finest period entirely raw", () => {
    const plan = planWindow({ startMs: D0 + 10 * H + 5, endMs: D0 + 11 * H - 5 }, { levels: [H] });
    expect(plan.raw).toEqual([{ startMs: D0 + 10 * H + 5, endMs: D0 + 11 * H - 5, endInclusive: true }]);
    expect(plan.levels).toEqual([{ periodMs: H, ranges: [] }]);
  });

  it("keeps the one-instant tail of a window ending on a boundary", () => {
    const plan = planWindow({ startMs: D0, endMs: D0 + 2 * H }, { levels: API_LEVELS });
    expect(plan.raw).toEqual([{ startMs: D0 + 2 * H, endMs: D0 + 2 * H, endInclusive: true }]);
    expect(plan.levels[1]).toEqual({ periodMs: H, ranges: [{ startMs: D0, endMsExclusive: D0 + 2 * H }] });
  });

  it("widens a start older than the raw watermark to its finest period, and only then", () => {
    const end = D0 + 3 * DAY_MS + 20 * M;
    const start = end - 72 * H; // D0 + 20 min
    const watermark = D0 + 2 * H;
    const plan = planWindow({ startMs: start + 1000, endMs: end }, { levels: [H], rawAvailableFromMs: watermark });
    expect(plan.widened).toBe(true);
    expect(plan.window.startMs).toBe(D0);
    expect(plan.raw).toEqual([{ startMs: D0 + 3 * DAY_MS, endMs: end, endInclusive: true }]);
    expect(plan.levels[0]!.ranges).toEqual([{ startMs: D0, endMsExclusive: D0 + 3 * DAY_MS }]);

    const api = planWindow({ startMs: start + 1000, endMs: end }, { levels: API_LEVELS, rawAvailableFromMs: watermark });
    expect(api.window.startMs).toBe(D0 + 20 * M);

    const notOld = planWindow({ startMs: start, endMs: end }, { levels: [H], rawAvailableFromMs: D0 });
    expect(notOld.widened).toBe(false);
    expect(notOld.raw[0]).toEqual({ startMs: start, endMs: D0 + H, endInclusive: false });
  });

  it("rejects levels that do not divide each other", () => {
    expect(() => planWindow({ startMs: 0, endMs: 1 }, { levels: [H, 7 * M] })).toThrow(RangeError);
    expect(() => planWindow({ startMs: 0, endMs: 1 }, { levels: [] })).toThrow(RangeError);
  });

  it("covers every instant of the window exactly once and nothing outside it (random windows)", () => {
    let seed = 42;
    const rand = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    for (let i = 0; i < 300; i++) {
      const end = D0 + Math.floor(rand() * 30 * DAY_MS);
      const hours = 1 + Math.floor(rand() * 168);
      const start = end - hours * H;
      const watermark = rand() < 0.3 ? Math.floor((start + rand() * 2 * H) / H) * H : undefined;
      const levels = rand() < 0.5 ? API_LEVELS : [H];
      const plan = planWindow({ startMs: start, endMs: end }, { levels, rawAvailableFromMs: watermark });
      const probes = [plan.window.startMs, plan.window.endMs, plan.window.startMs - 1, plan.window.endMs + 1];
      for (const r of plan.raw) probes.push(r.startMs, r.endMs, r.endMs - 1, r.endMs + 1);
      for (const l of plan.levels) for (const r of l.ranges) probes.push(r.startMs, r.startMs - 1, r.endMsExclusive, r.endMsExclusive - 1);
      for (let k = 0; k < 50; k++) probes.push(plan.window.startMs + Math.floor(rand() * (end - plan.window.startMs)));
      for (const t of probes) {
        const inside = t >= plan.window.startMs && t <= plan.window.endMs;
        expect(coverers(plan, t), `t=${t} window=${JSON.stringify(plan.window)}`).toHaveLength(inside ? 1 : 0);
      }
      // Raw edges are shorter than the finest level, and never older than the watermark once widened.
      const finest = levels[levels.length - 1]!;
      for (const r of plan.raw) expect(r.endMs - r.startMs).toBeLessThanOrEqual(finest);
      if (plan.widened) expect(plan.raw.every((r) => r.startMs >= watermark!)).toBe(true);
      for (const l of plan.levels) for (const r of l.ranges) expect(r.startMs % l.periodMs === 0 && r.endMsExclusive % l.periodMs === 0).toBe(true);
    }
  });
});
