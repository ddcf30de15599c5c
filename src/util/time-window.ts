/**
 * Time windows for metrics queries, free of I/O.
 *
 * A window is `[startMs, endMs]` with BOTH ends inclusive: `occurred_at >= start AND occurred_at <= end`.
 * Hours are UTC hours (epoch-ms multiples of {@link HOUR_MS}), the unit of the hourly rollups; an
 * hourly rollup row for hour `H` covers `[H, H + 1h)`.
 *
 * Naming: a field called `endMs` is inclusive, one ending in `Exclusive` is exclusive.
 */

/** One hour in milliseconds. */
export const HOUR_MS = 3_600_000;

/** Thrown for an invalid window request; the handler maps it to `InvalidArgument`. */
export class WindowError extends Error {
  override readonly name = "WindowError";
  /** The request field at fault. */
  readonly field: "hours";

  /** @param message safe to show to the client: it only restates their input and the limits. */
  constructor(field: "hours", message: string) {
    super(message);
    this.field = field;
  }
}

/** Limits for the `hours` request field. */
export interface WindowLimits {
  /** Smallest accepted value (inclusive). */
  min: number;
  /** Largest accepted value (inclusive). */
  max: number;
  /** Used when the request leaves `hours` unset. */
  default: number;
}

/** A window `[startMs, endMs]`, both ends inclusive. */
export interface TimeWindow {
  startMs: number;
  endMs: number;
}

/**
 * The window covering the last `hours` hours up to `nowMs`: `[nowMs - hours, nowMs]`.
 *
 * `undefined` means unset and takes `limits.default`. 0 is validated like any other number; with
 * proto3 an unset `int32 hours` arrives as 0, so either declare the field `optional` or map 0 to
 * `undefined` in the handler. Fractional hours are accepted; the start is rounded to a whole ms.
 *
 * @throws WindowError (field `hours`) when `hours` is not a finite number within `[min, max]`.
 * @throws RangeError when the limits themselves are inconsistent (a programming error).
 */
export function resolveWindow(hours: number | undefined, nowMs: number, limits: WindowLimits): TimeWindow {
  const { min, max } = limits;
  if (!(Number.isFinite(min) && Number.isFinite(max) && min > 0 && min <= limits.default && limits.default <= max)) {
    throw new RangeError(`window limits must satisfy 0 < min <= default <= max, got ${JSON.stringify(limits)}`);
  }
  if (!Number.isFinite(nowMs)) throw new RangeError(`nowMs must be finite, got ${nowMs}`);
  const value = hours ?? limits.default;
  if (!Number.isFinite(value)) {
    throw new WindowError("hours", `hours must be a number between ${min} and ${max}`);
  }
  if (value < min || value > max) {
    throw new WindowError("hours", `hours must be between ${min} and ${max}, got ${value}`);
  }
  return { startMs: nowMs - Math.round(value * HOUR_MS), endMs: nowMs };
}

/** Start of the UTC hour containing `ms`. */
export function floorToHour(ms: number): number {
  return Math.floor(ms / HOUR_MS) * HOUR_MS;
}

/** `ms` if it is an hour start, else the start of the next hour. */
export function ceilToHour(ms: number): number {
  return Math.ceil(ms / HOUR_MS) * HOUR_MS;
}

/** A window split into raw-row edges and whole hours served by the hourly rollups. */
export interface WindowSplit {
  /**
   * Raw rows before the first whole hour: `occurred_at >= startMs AND occurred_at < endMsExclusive`.
   * Absent when the window starts on an hour boundary or has no whole hour.
   */
  headPartial?: { startMs: number; endMsExclusive: number };
  /**
   * Rollup hours `hour >= firstHourMs AND hour < endHourMsExclusive`. Empty (both equal) when no
   * whole hour fits in the window.
   */
  wholeHours: { firstHourMs: number; endHourMsExclusive: number };
  /**
   * Raw rows after the last whole hour: `occurred_at >= startMs AND occurred_at <= endMs`. Always
   * present because the window end is inclusive: a window ending exactly on an hour boundary still
   * has the one-instant tail `[end, end]` (rows stamped exactly at the end belong to the next hour's
   * rollup). When no whole hour fits it is the entire window.
   */
  tailPartial: { startMs: number; endMs: number };
}

function checkWindow(startMs: number, endMs: number): void {
  if (!Number.isFinite(startMs) || !Number.isFinite(endMs) || startMs > endMs) {
    throw new RangeError(`window must have finite startMs <= endMs, got [${startMs}, ${endMs}]`);
  }
}

/**
 * Splits the inclusive window `[startMs, endMs]` into parts that are disjoint and together cover it
 * exactly: `[start, firstHour)`, whole hours `[firstHour, endHour)`, `[endHour, end]`.
 *
 * The split is at millisecond or finer resolution alike (PostgreSQL stores microseconds): every
 * boundary is a half-open edge, so no instant between two parts can fall through.
 *
 * @throws RangeError when `startMs > endMs` or either is not finite.
 */
export function splitWindowIntoHours(startMs: number, endMs: number): WindowSplit {
  checkWindow(startMs, endMs);
  const firstHourMs = ceilToHour(startMs);
  const endHourMsExclusive = floorToHour(endMs);
  if (firstHourMs >= endHourMsExclusive) {
    // No whole hour: one raw range is cheaper and simpler than two around an hour boundary.
    return {
      wholeHours: { firstHourMs: endHourMsExclusive, endHourMsExclusive },
      tailPartial: { startMs, endMs },
    };
  }
  const split: WindowSplit = {
    wholeHours: { firstHourMs, endHourMsExclusive },
    tailPartial: { startMs: endHourMsExclusive, endMs },
  };
  if (startMs < firstHourMs) split.headPartial = { startMs, endMsExclusive: firstHourMs };
  return split;
}

/**
 * Start of every UTC hour that has at least one instant in `[startMs, endMs]`, ascending, for a
 * zero-filled hourly timeline: from the hour containing the start to the hour containing the end.
 * A window ending exactly on an hour boundary includes that hour, which holds only the rows
 * stamped exactly at the end, so `hours` whole hours always yield `hours + 1` buckets whether or not
 * the window is aligned.
 *
 * @throws RangeError when `startMs > endMs` or either is not finite.
 */
export function hourlyBuckets(startMs: number, endMs: number): number[] {
  checkWindow(startMs, endMs);
  const hours: number[] = [];
  for (let hour = floorToHour(startMs); hour <= endMs; hour += HOUR_MS) hours.push(hour);
  return hours;
}
