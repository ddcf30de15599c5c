/**
 * Which parts of a query window come from raw rows and which from rollups, free of I/O.
 *
 * Rollups exist at a few period lengths (levels), each dividing the next: for API requests 5
 * minutes, 1 hour and 1 UTC day; for errors and jobs 1 hour. A window `[start, end]` (both ends
 * inclusive) is read as:
 *
 * - raw rows of the partial finest period at each edge: `[start, ceil(start))` and
 *   `[floor(end), end]` (the tail always exists because the end is inclusive: a window ending on a
 *   boundary has the one-instant tail `[end, end]`, whose rows belong to the next period);
 * - whole periods in between, taken greedily from the longest level down, so a 168-hour window
 *   reads 6 days, at most 46 hours and at most 22 five-minute periods per key instead of 168 hours;
 * - a window holding no whole finest period is read entirely raw.
 *
 * Raw retention: raw rows older than the retention watermark may be deleted. A head older than the
 * watermark is therefore not read raw; the window is widened to the start of its finest period,
 * which the rollups still hold, and the widened window is what the answer reports. The watermark is
 * an hour boundary (a multiple of every level), so either the whole head lies before it or none of
 * it does.
 */
import { HOUR_MS, type TimeWindow } from "../util/time-window.js";

/** One UTC day in milliseconds. */
export const DAY_MS = 24 * HOUR_MS;

/** Five minutes in milliseconds: the finest API rollup level. */
export const FIVE_MINUTES_MS = 5 * 60_000;

/** Start of the UTC day containing `ms`. */
export function floorToDay(ms: number): number {
  return floorTo(ms, DAY_MS);
}

/** `ms` if it is a day start, else the start of the next day. */
export function ceilToDay(ms: number): number {
  return ceilTo(ms, DAY_MS);
}

/** Start of the `periodMs`-long period (aligned to the epoch) containing `ms`. */
export function floorTo(ms: number, periodMs: number): number {
  return Math.floor(ms / periodMs) * periodMs;
}

/** `ms` if it starts a `periodMs`-long period, else the start of the next one. */
export function ceilTo(ms: number, periodMs: number): number {
  return Math.ceil(ms / periodMs) * periodMs;
}

/** A half-open range `[startMs, endMsExclusive)`. */
export interface HalfOpenRange {
  readonly startMs: number;
  readonly endMsExclusive: number;
}

/** A raw-row range; `endInclusive` says whether `endMs` itself belongs to it. */
export interface RawRange {
  readonly startMs: number;
  readonly endMs: number;
  readonly endInclusive: boolean;
}

/** Whole periods of one level to read from its rollup table. */
export interface LevelRanges {
  readonly periodMs: number;
  /** Aligned to `periodMs`, disjoint, ascending; at most two (one for the longest level). */
  readonly ranges: readonly HalfOpenRange[];
}

/** How to answer a window. */
export interface WindowPlan {
  /** The window the answer covers: the request's, or widened at the start (see module doc). */
  readonly window: TimeWindow;
  /** True when the start was moved back to a period boundary because raw rows there may be gone. */
  readonly widened: boolean;
  /** Raw rows to read (the partial periods at the edges); at most two ranges, disjoint. */
  readonly raw: readonly RawRange[];
  /** One entry per level, longest first, in the order of `PlanOptions.levels`. */
  readonly levels: readonly LevelRanges[];
}

/** Options of {@link planWindow}. */
export interface PlanOptions {
  /** Rollup period lengths, longest first; each must be a multiple of the next. */
  readonly levels: readonly number[];
  /**
   * Raw rows before this instant (an hour boundary) may have been deleted by retention;
   * undefined when retention never ran.
   */
  readonly rawAvailableFromMs?: number | undefined;
}

function checkLevels(levels: readonly number[]): void {
  if (levels.length === 0) throw new RangeError("at least one rollup level is needed");
  levels.forEach((p, i) => {
    if (!Number.isSafeInteger(p) || p <= 0) throw new RangeError(`level ${p} must be a positive integer (ms)`);
    const next = levels[i + 1];
    if (next !== undefined && p % next !== 0) throw new RangeError(`level ${p} must be a multiple of ${next}`);
  });
}

/** Decomposes the aligned range `[a, b)` greedily over `levels` (longest first) into `out`. */
function decompose(a: number, b: number, levels: readonly number[], index: number, out: HalfOpenRange[][]): void {
  if (a >= b) return;
  const period = levels[index]!;
  if (index === levels.length - 1) {
    out[index]!.push({ startMs: a, endMsExclusive: b });
    return;
  }
  const first = ceilTo(a, period);
  const last = floorTo(b, period);
  if (first >= last) {
    decompose(a, b, levels, index + 1, out);
    return;
  }
  decompose(a, first, levels, index + 1, out);
  out[index]!.push({ startMs: first, endMsExclusive: last });
  decompose(last, b, levels, index + 1, out);
}

/**
 * Plans `window`: every instant of the (possibly widened) window is covered by exactly one raw
 * range or rollup range.
 *
 * @throws RangeError when the window is not finite, `startMs > endMs`, or the levels are invalid.
 */
export function planWindow(window: TimeWindow, options: PlanOptions): WindowPlan {
  const { levels } = options;
  checkLevels(levels);
  if (!Number.isFinite(window.startMs) || !Number.isFinite(window.endMs) || window.startMs > window.endMs) {
    throw new RangeError(`window must have finite startMs <= endMs, got [${window.startMs}, ${window.endMs}]`);
  }
  const finest = levels[levels.length - 1]!;
  let startMs = window.startMs;
  const widened = options.rawAvailableFromMs !== undefined && startMs < options.rawAvailableFromMs && startMs !== floorTo(startMs, finest);
  if (widened) startMs = floorTo(startMs, finest);
  const endMs = window.endMs;

  const firstWhole = ceilTo(startMs, finest);
  const endWhole = floorTo(endMs, finest);
  const raw: RawRange[] = [];
  const ranges: HalfOpenRange[][] = levels.map(() => []);
  if (firstWhole >= endWhole) {
    // No whole period: one raw range is cheaper and simpler than two around a boundary.
    raw.push({ startMs, endMs, endInclusive: true });
  } else {
    if (startMs < firstWhole) raw.push({ startMs, endMs: firstWhole, endInclusive: false });
    raw.push({ startMs: endWhole, endMs, endInclusive: true });
    decompose(firstWhole, endWhole, levels, 0, ranges);
  }
  return {
    window: { startMs, endMs },
    widened,
    raw,
    levels: levels.map((periodMs, i) => ({ periodMs, ranges: ranges[i]!.sort((a, b) => a.startMs - b.startMs) })),
  };
}
