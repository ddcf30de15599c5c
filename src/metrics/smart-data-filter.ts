/**
 * Smart data filter: decides, per device, which telemetry samples are worth storing.
 *
 * Pure and I/O-free. Time comes only from the samples and from the `nowMs` the caller passes in;
 * the filter never reads the clock, so tests and replays are deterministic.
 *
 * This module holds the decision rules; beside it are what they take and give
 * (`smart-data-filter-types.ts`), the options (`smart-data-filter-options.ts`), the name checks
 * (`metric-names.ts`), the per-device state with its LRU (`device-state-lru.ts`), the interned
 * metric shapes (`metric-shapes.ts`) and the byte accounting (`filter-state-bytes.ts`).
 *
 * @module
 */
import { DeviceStateLru } from "./device-state-lru.js";
import { MetricShapes } from "./metric-shapes.js";
import { checkMetricNames, invalidNameAt, type MetricNames } from "./metric-names.js";
import { validateFilterOptions, type SmartDataFilterOptions } from "./smart-data-filter-options.js";
import type { FilterDecision, FilterRejectCode, MetricSample, SmartDataFilterCounters } from "./smart-data-filter-types.js";

export {
  DEFAULT_SMART_DATA_FILTER_OPTIONS,
  validateFilterOptions,
  type MetricThreshold,
  type SmartDataFilterOptions,
} from "./smart-data-filter-options.js";
export type { MetricNames } from "./metric-names.js";
export type {
  FilterDecision,
  FilterRejectCode,
  MetricSample,
  SmartDataFilterCounters,
  StoreReason,
} from "./smart-data-filter-types.js";

/*
 * How a sample stands against the device's kept snapshot, settled once per sample. Small integers
 * behind names, not strings: `mode` is compared inside the per-metric loop of every decision.
 */
const FIRST_CONTACT = 0;
const HEARTBEAT = 1;
const COMPARE = 2;
const LATE = 3;
const LATE_HEARTBEAT = 4;
const SAME_TIME = 5;
type Mode =
  | typeof FIRST_CONTACT
  | typeof HEARTBEAT
  | typeof COMPARE
  | typeof LATE
  | typeof LATE_HEARTBEAT
  | typeof SAME_TIME;

// Shared so the filtered path allocates nothing.
const FILTERED: FilterDecision = Object.freeze({ action: "filter" });
const STORED_FIRST_CONTACT: FilterDecision = Object.freeze({ action: "store", reason: "first_contact" });
const STORED_HEARTBEAT: FilterDecision = Object.freeze({ action: "store", reason: "heartbeat" });

/**
 * Keeps, per device, the last stored sample and decides for each new sample whether to store it.
 *
 * Rules, in order:
 * 1. First sample from a device since start-up or since its state was evicted: store (`first_contact`).
 * 2. At least `snapshotIntervalMs` after the last stored sample: store (`heartbeat`).
 * 3. Any metric changed significantly against the last *stored* value (so slow drift is caught),
 *    or a metric appeared or disappeared: store (`significant_change`).
 * 4. Otherwise filter.
 * Every store replaces the kept snapshot, except for late samples (below).
 *
 * Late samples (dated before the last stored one): comparing them with a newer snapshot says
 * nothing about change, so only the interval rule applies, with the gap taken symmetrically. A
 * late sample is stored as a `heartbeat` when it is at least `snapshotIntervalMs` older than the
 * kept snapshot, otherwise filtered, and it never replaces the kept snapshot, which stays the newer
 * one. Consequence: the filter does not remember what it stored before the kept snapshot, so a
 * backlog (or a resend) older than the interval is stored sample by sample; storage should be
 * idempotent on (device, time).
 *
 * Same-time samples: a sample dated exactly at the kept snapshot is filtered, whatever its
 * metrics. Storage identifies a sample by (device, time), so it is a resend of the stored sample
 * (or a second reading in the same millisecond, which storage could not hold beside the first);
 * storing it would make the kept snapshot differ from the stored row.
 *
 * State is bounded by `maxDevices` and `maxStateBytes` (least recently seen evicted first) and by
 * {@link SmartDataFilter.evictIdle}. An evicted device's next sample is a first contact. Rejected
 * samples never create state.
 */
export class SmartDataFilter {
  /** The resolved options in effect. */
  readonly options: SmartDataFilterOptions;
  private readonly devices: DeviceStateLru;
  private clockMs = Number.NEGATIVE_INFINITY;
  private storedCount = 0;
  private filteredCount = 0;
  private rejectedCount = 0;

  /** @throws Error when the options are invalid, see {@link validateFilterOptions}. */
  constructor(options: Partial<SmartDataFilterOptions> = {}) {
    this.options = validateFilterOptions(options);
    const shapes = new MetricShapes(this.options.metricThresholds, this.options.changeThreshold);
    this.devices = new DeviceStateLru(this.options, shapes);
  }

  /** Number of devices currently tracked. */
  get size(): number {
    return this.devices.size;
  }

  /**
   * Estimated heap bytes of the state kept (devices, their values and the interned metric
   * names), held at most `maxStateBytes`. An estimate kept as state comes and goes, never a walk:
   * it slightly exceeds what V8 measures (`npm run bench -- filter`, and the unit test that
   * measures it), so the cap errs on the safe side.
   */
  get stateBytes(): number {
    return this.devices.bytes;
  }

  /** A snapshot of the running totals. */
  counters(): SmartDataFilterCounters {
    return {
      stored: this.storedCount,
      filtered: this.filteredCount,
      rejected: this.rejectedCount,
      evicted: this.devices.evicted,
    };
  }

  /**
   * Decides what to do with one sample, and updates the device's state accordingly.
   *
   * @param nowMs the caller's current time (epoch ms): samples dated more than `maxFutureSkewMs`
   *   ahead are rejected, and the device counts as seen at the later of it and the sample time.
   * @throws RangeError when `nowMs` is not finite (a caller bug, not a bad sample).
   */
  decide(sample: MetricSample, nowMs: number): FilterDecision {
    const { deviceId, occurredAtMs, metrics } = sample;
    // Not a plain `for in`: the one decision path below reads the names as an array, the same
    // path the columnar form takes, so both forms decide alike by construction.
    const names = metrics === null || typeof metrics !== "object" ? NO_NAMES : Object.keys(metrics);
    return this.decideOne(deviceId, occurredAtMs, names, invalidNameAt(names, this.options.maxIdLength), metrics, NO_VALUES, 0, nowMs);
  }

  /**
   * Checks the names shared by the samples of a columnar message once, for
   * {@link SmartDataFilter.decideValues}. Invalid names do not throw: each sample is then
   * rejected for them, as it would be in the map form.
   */
  metricNames(names: readonly string[]): MetricNames {
    return checkMetricNames(names, this.options.maxIdLength);
  }

  /**
   * {@link SmartDataFilter.decide} for a sample given as values aligned with shared names: sample
   * values `values[offset + j]` for `names.names[j]`, so a whole columnar message is decided
   * without building an object per sample. The decision, the kept state and the rejection codes
   * and messages are those `decide` gives the same sample as a map, provided the names are
   * distinct (the map form cannot repeat a name; callers reject such messages as a whole).
   *
   * @throws RangeError when `nowMs` is not finite, or `names` was checked by a filter with
   *   another `maxIdLength`.
   */
  decideValues(
    deviceId: string,
    occurredAtMs: number,
    names: MetricNames,
    values: ArrayLike<number>,
    offset: number,
    nowMs: number,
  ): FilterDecision {
    if (names.maxIdLength !== this.options.maxIdLength) {
      throw new RangeError("metric names were checked with another maxIdLength; use this filter's metricNames()");
    }
    return this.decideOne(deviceId, occurredAtMs, names.names, names.invalidAt, undefined, values, offset, nowMs);
  }

  /**
   * The one decision path. A sample's metrics are `names` with their values either in `record`
   * (the map form) or at `values[offset + j]` (the columnar form, `record` undefined).
   */
  private decideOne(
    deviceId: string,
    occurredAtMs: number,
    names: readonly string[],
    invalidAt: number,
    record: Readonly<Record<string, number>> | undefined,
    values: ArrayLike<number>,
    offset: number,
    nowMs: number,
  ): FilterDecision {
    if (!Number.isFinite(nowMs)) throw new RangeError(`nowMs must be a finite number (got ${nowMs})`);
    const o = this.options;

    if (typeof deviceId !== "string" || deviceId.length === 0) {
      return this.reject("missing_device_id", "device_id is missing or empty");
    }
    if (deviceId.length > o.maxIdLength) {
      return this.reject(
        "device_id_too_long",
        `device_id is ${deviceId.length} characters long; the limit is ${o.maxIdLength}`,
      );
    }
    if (typeof occurredAtMs !== "number" || !Number.isFinite(occurredAtMs) || occurredAtMs < 0) {
      return this.reject(
        "invalid_timestamp",
        `occurred_at must be a time from 1970-01-01 on (got ${String(occurredAtMs)} ms)`,
      );
    }
    if (occurredAtMs - nowMs > o.maxFutureSkewMs) {
      return this.reject(
        "future_timestamp",
        `occurred_at is ${occurredAtMs - nowMs} ms ahead of the server clock; the limit is ${o.maxFutureSkewMs} ms`,
      );
    }

    const state = this.devices.get(deviceId);
    let mode: Mode;
    if (state === undefined) {
      mode = FIRST_CONTACT;
    } else {
      const gap = occurredAtMs - state.storedAtMs;
      if (gap >= o.snapshotIntervalMs) mode = HEARTBEAT;
      else if (gap > 0) mode = COMPARE;
      else if (gap === 0) mode = SAME_TIME;
      else mode = -gap >= o.snapshotIntervalMs ? LATE_HEARTBEAT : LATE;
    }

    // One pass validates every metric and, while the key set still matches the kept Shape,
    // maps each to its stored value. The Shape match also lets a store overwrite values in place.
    // The checks keep the map form's order per metric: name, value, count.
    const count = names.length;
    const tooManyAt = count > o.maxMetricsPerSample ? o.maxMetricsPerSample : -1;
    let sameShape = state !== undefined && (mode === COMPARE || mode === HEARTBEAT);
    let changed: string | undefined;
    for (let j = 0; j < count; j++) {
      const name = names[j]!;
      if (j === invalidAt) return this.rejectName(name);
      const value = record === undefined ? values[offset + j] : record[name];
      if (typeof value !== "number" || !Number.isFinite(value)) {
        return this.reject("non_finite_value", `metric "${name}" is ${String(value)}, not a finite number`);
      }
      if (j === tooManyAt) {
        return this.reject("too_many_metrics", `more than ${o.maxMetricsPerSample} metrics in one sample`);
      }
      if (sameShape && state !== undefined) {
        const shape = state.shape;
        let i = j;
        // A device usually repeats one key order, most often the Shape's: try the position first.
        if (shape.names[i] !== name) i = shape.index.get(name) ?? -1;
        if (i < 0) {
          sameShape = false;
          changed ??= name;
        } else if (
          changed === undefined &&
          mode === COMPARE &&
          isSignificant(shape.absolute[i] === 1, shape.thresholds[i]!, o.zeroBaselineThreshold, state.values[i]!, value)
        ) {
          changed = name;
        }
      }
    }
    if (count === 0) return this.reject("empty_metrics", "the sample has no metrics");
    if (sameShape && state !== undefined && count !== state.shape.names.length) {
      sameShape = false;
      changed ??= firstMissing(state.shape.names, names);
    }

    // The clock that orders the least-recently-seen list is the latest of the sample times and
    // the caller's now: a device uploading an old backlog is active, not idle.
    const seenAtMs = occurredAtMs > nowMs ? occurredAtMs : nowMs;
    if (seenAtMs > this.clockMs) this.clockMs = seenAtMs;
    if (state === undefined) {
      this.devices.admit(deviceId, names, record, values, offset, occurredAtMs, this.clockMs);
      this.storedCount++;
      return STORED_FIRST_CONTACT;
    }
    // The high-water mark rather than the sample's own time: a device with a lagging clock (or
    // uploading a backlog) is still active, and the list stays sorted for evictIdle's early stop.
    this.devices.touch(state, this.clockMs);
    switch (mode) {
      case COMPARE:
        if (changed === undefined) break;
        this.devices.keep(state, names, record, values, offset, sameShape, occurredAtMs);
        this.storedCount++;
        return { action: "store", reason: "significant_change", changedMetric: changed };
      case HEARTBEAT:
        this.devices.keep(state, names, record, values, offset, sameShape, occurredAtMs);
        this.storedCount++;
        return STORED_HEARTBEAT;
      case LATE_HEARTBEAT:
        this.storedCount++;
        return STORED_HEARTBEAT;
    }
    this.filteredCount++;
    return FILTERED;
  }

  /**
   * Evicts devices not seen for `idleEvictionMs`, measured on the filter's clock (the latest sample
   * time or `nowMs` passed to {@link SmartDataFilter.decide}). Meant for a timer.
   * Cost is proportional to the number evicted: devices are kept in least-recently-seen order, so
   * the walk stops at the first one still active.
   *
   * @param nowMs current time on the samples' clock (the server's epoch ms).
   * @returns how many devices were evicted.
   * @throws RangeError when `nowMs` is NaN.
   */
  evictIdle(nowMs: number): number {
    // A NaN cutoff compares false with everything: evicting nothing, silently, would hide the bug.
    if (Number.isNaN(nowMs)) throw new RangeError("nowMs must be a number (got NaN)");
    return this.devices.evictIdle(nowMs - this.options.idleEvictionMs);
  }

  /**
   * Drops a device's state, e.g. when it is decommissioned; its next sample is a first contact.
   *
   * @returns whether the device was tracked.
   */
  forget(deviceId: string): boolean {
    return this.devices.forget(deviceId);
  }

  private reject(code: FilterRejectCode, message: string): FilterDecision {
    this.rejectedCount++;
    return { action: "reject", code, message };
  }

  /** The rejection of a name `invalidNameAt` (`metric-names.ts`) found. */
  private rejectName(name: string): FilterDecision {
    if (name.length === 0) return this.reject("invalid_metric_name", "a metric name is empty");
    if (name.length > this.options.maxIdLength) {
      return this.reject(
        "metric_name_too_long",
        `metric name "${name.slice(0, 32)}…" is ${name.length} characters long; the limit is ${this.options.maxIdLength}`,
      );
    }
    return this.reject("invalid_metric_name", "a metric name contains the NUL character (U+0000)");
  }
}

function isSignificant(
  absolute: boolean,
  threshold: number,
  zeroBaseline: number,
  old: number,
  value: number,
): boolean {
  if (absolute) return Math.abs(value - old) > threshold;
  if (old === 0) return Math.abs(value) > zeroBaseline;
  return Math.abs(value - old) / Math.abs(old) >= threshold;
}

function firstMissing(kept: readonly string[], names: readonly string[]): string | undefined {
  return kept.find((name) => !names.includes(name));
}

const NO_NAMES: readonly string[] = Object.freeze([]);
const NO_VALUES: ArrayLike<number> = Object.freeze([]);
