/**
 * Which parts of a query window come from raw rows and which from rollups, free of I/O.
 *
 * A window `[start, end]` (both ends inclusive) is split by `splitWindowIntoHours` into a raw head
 * `[start, firstHour)`, whole hours `[firstHour, endHour)` and a raw tail `[endHour, end]`. Whole
 * hours are then served from the daily rollup where they cover whole UTC days, and from the hourly
 * rollup around them, so a 168-hour window merges ~29 rollup rows per key instead of 168.
 *
 * Raw retention: rows older than the retention watermark may be deleted. A head older than the
 * watermark is therefore not read raw; the window is widened to the start of that hour, which the
 * hourly rollup still holds, and the widened window is what the answer reports. The watermark is
 * always an hour boundary, so either the whole head lies before it or none of it does.
 */
import { floorToHour, HOUR_MS, splitWindowIntoHours, type TimeWindow } from "./time-window.js";

/** One UTC day in milliseconds. */
export const DAY_MS = 24 * HOUR_MS;

/** Start of the UTC day containing `ms`. */
export function floorToDay(ms: number): number {
  return Math.floor(ms / DAY_MS) * DAY_MS;
}

/** `ms` if it is a day start, else the start of the next day. */
export function ceilToDay(ms: number): number {
  return Math.ceil(ms / DAY_MS) * DAY_MS;
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

/** How to answer a window. */
export interface WindowPlan {
  /** The window the answer covers: the request's, or widened at the start (see module doc). */
  readonly window: TimeWindow;
  /** True when the start was moved back to an hour boundary because raw rows there may be gone. */
  readonly widened: boolean;
  /** Raw rows to read (the partial hours at the edges); at most two ranges, disjoint. */
  readonly raw: readonly RawRange[];
  /** Hourly rollup ranges (hour-aligned), at most two. */
  readonly hours: readonly HalfOpenRange[];
  /** Daily rollup range (day-aligned), at most one. */
  readonly days: readonly HalfOpenRange[];
}

/** Options of {@link planWindow}. */
export interface PlanOptions {
  /**
   * Raw rows before this instant (an hour boundary) may have been deleted by retention;
   * undefined when retention never ran.
   */
  readonly rawAvailableFromMs?: number | undefined;
  /** Serve whole days from the daily rollup (only the API rollups have one). */
  readonly useDays: boolean;
}

/**
 * Plans `window`: every instant of the (possibly widened) window is covered by exactly one raw
 * range, hourly range or daily range.
 *
 * @throws RangeError when the window is not finite or `startMs > endMs`.
 */
export function planWindow(window: TimeWindow, options: PlanOptions): WindowPlan {
  let startMs = window.startMs;
  const widened = options.rawAvailableFromMs !== undefined && startMs < options.rawAvailableFromMs && startMs !== floorToHour(startMs);
  if (widened) startMs = floorToHour(startMs);
  const split = splitWindowIntoHours(startMs, window.endMs);
  const raw: RawRange[] = [];
  if (split.headPartial) raw.push({ startMs: split.headPartial.startMs, endMs: split.headPartial.endMsExclusive, endInclusive: false });
  raw.push({ startMs: split.tailPartial.startMs, endMs: split.tailPartial.endMs, endInclusive: true });

  const { firstHourMs, endHourMsExclusive } = split.wholeHours;
  const hours: HalfOpenRange[] = [];
  const days: HalfOpenRange[] = [];
  const firstDay = ceilToDay(firstHourMs);
  const endDay = floorToDay(endHourMsExclusive);
  if (options.useDays && firstDay < endDay) {
    if (firstHourMs < firstDay) hours.push({ startMs: firstHourMs, endMsExclusive: firstDay });
    days.push({ startMs: firstDay, endMsExclusive: endDay });
    if (endDay < endHourMsExclusive) hours.push({ startMs: endDay, endMsExclusive: endHourMsExclusive });
  } else if (firstHourMs < endHourMsExclusive) {
    hours.push({ startMs: firstHourMs, endMsExclusive: endHourMsExclusive });
  }
  return { window: { startMs, endMs: window.endMs }, widened, raw, hours, days };
}
