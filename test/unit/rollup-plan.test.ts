import { describe, expect, it } from "vitest";
import { ceilToDay, DAY_MS, floorToDay, planWindow, type WindowPlan } from "../../src/queries/rollup-plan.js";
import { HOUR_MS } from "../../src/queries/time-window.js";

const H = HOUR_MS;
const D0 = Date.UTC(2026, 10, 20); // a UTC midnight

/** Which part of the plan covers instant `t` (each instant must be covered exactly once). */
function coverers(plan: WindowPlan, t: number): string[] {
  const out: string[] = [];
  plan.raw.forEach((r, i) => {
    if (t >= r.startMs && (r.endInclusive ? t <= r.endMs : t < r.endMs)) out.push(`raw${i}`);
  });
  plan.hours.forEach((r, i) => {
    if (t >= r.startMs && t < r.endMsExclusive) out.push(`hours${i}`);
  });
  plan.days.forEach((r, i) => {
    if (t >= r.startMs && t < r.endMsExclusive) out.push(`days${i}`);
  });
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
  it("serves a 168-hour unaligned window from 2 raw edges, 2 hour ranges and one day range", () => {
    const end = D0 + 7 * DAY_MS + 10 * H + 37 * 60_000 + 12_345;
    const start = end - 168 * H;
    const plan = planWindow({ startMs: start, endMs: end }, { useDays: true });
    expect(plan.widened).toBe(false);
    expect(plan.window).toEqual({ startMs: start, endMs: end });
    expect(plan.raw).toEqual([
      { startMs: start, endMs: D0 + 11 * H, endInclusive: false },
      { startMs: D0 + 7 * DAY_MS + 10 * H, endMs: end, endInclusive: true },
    ]);
    expect(plan.hours).toEqual([
      { startMs: D0 + 11 * H, endMsExclusive: D0 + DAY_MS },
      { startMs: D0 + 7 * DAY_MS, endMsExclusive: D0 + 7 * DAY_MS + 10 * H },
    ]);
    expect(plan.days).toEqual([{ startMs: D0 + DAY_MS, endMsExclusive: D0 + 7 * DAY_MS }]);
    // 13 + 10 hourly rows and 6 daily rows per key, instead of 168.
  });

  it("uses hours only when asked not to use days", () => {
    const plan = planWindow({ startMs: D0 + 30 * 60_000, endMs: D0 + 3 * DAY_MS }, { useDays: false });
    expect(plan.days).toEqual([]);
    expect(plan.hours).toEqual([{ startMs: D0 + H, endMsExclusive: D0 + 3 * DAY_MS }]);
  });

  it("reads a window without a whole hour entirely raw", () => {
    const plan = planWindow({ startMs: D0 + 10 * H + 5, endMs: D0 + 11 * H - 5 }, { useDays: true });
    expect(plan.raw).toEqual([{ startMs: D0 + 10 * H + 5, endMs: D0 + 11 * H - 5, endInclusive: true }]);
    expect(plan.hours).toEqual([]);
    expect(plan.days).toEqual([]);
  });

  it("keeps the one-instant tail of a window ending on an hour boundary", () => {
    const plan = planWindow({ startMs: D0, endMs: D0 + 2 * H }, { useDays: true });
    expect(plan.raw).toEqual([{ startMs: D0 + 2 * H, endMs: D0 + 2 * H, endInclusive: true }]);
    expect(plan.hours).toEqual([{ startMs: D0, endMsExclusive: D0 + 2 * H }]);
  });

  it("widens a start older than the raw watermark to its hour, and only then", () => {
    const end = D0 + 3 * DAY_MS + 20 * 60_000;
    const start = end - 72 * H; // D0 + 20 min
    const watermark = D0 + 2 * H;
    const plan = planWindow({ startMs: start, endMs: end }, { useDays: false, rawAvailableFromMs: watermark });
    expect(plan.widened).toBe(true);
    expect(plan.window.startMs).toBe(D0);
    expect(plan.raw).toEqual([{ startMs: D0 + 3 * DAY_MS, endMs: end, endInclusive: true }]);
    expect(plan.hours).toEqual([{ startMs: D0, endMsExclusive: D0 + 3 * DAY_MS }]);

    const notOld = planWindow({ startMs: start, endMs: end }, { useDays: false, rawAvailableFromMs: D0 });
    expect(notOld.widened).toBe(false);
    expect(notOld.raw[0]).toEqual({ startMs: start, endMs: D0 + H, endInclusive: false });
  });

  it("covers every instant of the window exactly once and nothing outside it (random windows)", () => {
    let seed = 42;
    const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    for (let i = 0; i < 300; i++) {
      const end = D0 + Math.floor(rand() * 30 * DAY_MS);
      const hours = 1 + Math.floor(rand() * 168);
      const start = end - hours * H;
      const watermark = rand() < 0.3 ? Math.floor((start + rand() * 2 * H) / H) * H : undefined;
      const plan = planWindow({ startMs: start, endMs: end }, { useDays: rand() < 0.7, rawAvailableFromMs: watermark });
      const probes = [plan.window.startMs, plan.window.endMs, plan.window.startMs - 1, plan.window.endMs + 1];
      for (const r of [...plan.raw]) probes.push(r.startMs, r.endMs, r.endMs - 1, r.endMs + 1);
      for (const r of [...plan.hours, ...plan.days]) probes.push(r.startMs, r.startMs - 1, r.endMsExclusive, r.endMsExclusive - 1);
      for (let k = 0; k < 50; k++) probes.push(plan.window.startMs + Math.floor(rand() * (end - plan.window.startMs)));
      for (const t of probes) {
        const inside = t >= plan.window.startMs && t <= plan.window.endMs;
        expect(coverers(plan, t), `t=${t} window=${JSON.stringify(plan.window)}`).toHaveLength(inside ? 1 : 0);
      }
      if (watermark !== undefined) {
        // No raw range reaches before the watermark.
        for (const r of plan.raw) expect(r.startMs).toBeGreaterThanOrEqual(Math.min(watermark, plan.window.startMs));
        if (plan.widened) expect(plan.raw.every((r) => r.startMs >= watermark)).toBe(true);
      }
    }
  });
});
