/**
 * Smart data filter: decides, per device, which telemetry samples are worth storing.
 *
 * Pure and I/O-free. Time comes only from the samples and from the `nowMs` the caller passes in;
 * the filter never reads the clock, so tests and replays are deterministic.
 *
 * @module
 */

/** One telemetry sample as received from a device. */
export interface MetricSample {
  /** Device that produced the sample. */
  readonly deviceId: string;
  /** When the device took the sample, in Unix epoch milliseconds (device clock). */
  readonly occurredAtMs: number;
  /** Metric name to value. A plain object, as protobuf-es decodes `map<string, double>`. */
  readonly metrics: Readonly<Record<string, number>>;
}

/**
 * The metric names of many samples that share them (the columnar form), checked once by
 * {@link SmartDataFilter.metricNames} rather than once per sample.
 */
export interface MetricNames {
  /** The names, in the order of each sample's values. */
  readonly names: readonly string[];
  /**
   * Index of the first name the filter rejects (empty, or longer than `maxIdLength`), or -1. Each
   * sample is rejected for it when the sample gets that far, exactly as the map form would be.
   */
  readonly invalidAt: number;
  /** The options' `maxIdLength` the names were checked against. */
  readonly maxIdLength: number;
}

/**
 * How one metric is judged to have changed.
 * - `relative`: changed when `|new - old| / |old| >= threshold` (inclusive). When `old` is 0 the
 *   ratio is undefined, so `zeroBaselineThreshold` applies instead.
 * - `absolute`: changed when `|new - old| > threshold` (strict). Suits rates and ratios, where
 *   a move from 0.001 to 0.002 is noise even though it doubles.
 */
export interface MetricThreshold {
  readonly kind: "relative" | "absolute";
  readonly threshold: number;
}

/** Configuration of {@link SmartDataFilter}. Defaults: {@link DEFAULT_SMART_DATA_FILTER_OPTIONS}. */
export interface SmartDataFilterOptions {
  /**
   * A sample at least this long after the last stored one is stored regardless (heartbeat).
   * Default 300 000 (5 min).
   */
  readonly snapshotIntervalMs: number;
  /** Relative change, inclusive, that makes a metric significant. Default 0.05 (5 %). */
  readonly changeThreshold: number;
  /** For relative metrics whose stored value is 0: store when `|new|` exceeds this (strict). Default 1.0. */
  readonly zeroBaselineThreshold: number;
  /**
   * Per-metric rules, merged over the defaults metric by metric (so passing `temperature` keeps
   * the `error_rate` rule; to judge `error_rate` relatively, override it). Default:
   * `{ error_rate: { kind: "absolute", threshold: 0.01 } }`.
   */
  readonly metricThresholds: Readonly<Record<string, MetricThreshold>>;
  /** Samples dated further than this ahead of the caller's `nowMs` are rejected. Default 300 000 (5 min). */
  readonly maxFutureSkewMs: number;
  /** Longest accepted device id and metric name, in UTF-16 code units. Default 128. */
  readonly maxIdLength: number;
  /** Most metrics accepted in one sample. Default 256. */
  readonly maxMetricsPerSample: number;
  /** Most devices tracked at once; the least recently seen is evicted beyond it. Default 100 000. */
  readonly maxDevices: number;
  /**
   * Most bytes of state kept, as {@link SmartDataFilter.stateBytes} estimates them; the least
   * recently seen devices are evicted beyond it. A device count alone does not bound memory: with
   * 256 unique 128-character metric names a device costs ~80 KB. Default 512 MiB (the service
   * sets a share of the heap, `ANALYTICS_METRICS_MAX_STATE_MB`).
   */
  readonly maxStateBytes: number;
  /**
   * A device not seen for this long (sample time) is evicted by {@link SmartDataFilter.evictIdle}.
   * Default 3 600 000 (1 h).
   */
  readonly idleEvictionMs: number;
}

/** The defaults documented on {@link SmartDataFilterOptions}. */
export const DEFAULT_SMART_DATA_FILTER_OPTIONS: SmartDataFilterOptions = Object.freeze({
  snapshotIntervalMs: 300_000,
  changeThreshold: 0.05,
  zeroBaselineThreshold: 1.0,
  metricThresholds: Object.freeze({
    error_rate: Object.freeze({ kind: "absolute", threshold: 0.01 } as const),
  }),
  maxFutureSkewMs: 300_000,
  maxIdLength: 128,
  maxMetricsPerSample: 256,
  maxDevices: 100_000,
  maxStateBytes: 512 * 1024 * 1024,
  idleEvictionMs: 3_600_000,
});

/** Why a sample was stored. */
export type StoreReason = "first_contact" | "heartbeat" | "significant_change";

/** Stable, machine-readable reason a sample was rejected. */
export type FilterRejectCode =
  | "missing_device_id"
  | "device_id_too_long"
  | "invalid_timestamp"
  | "future_timestamp"
  | "empty_metrics"
  | "too_many_metrics"
  | "invalid_metric_name"
  | "metric_name_too_long"
  | "non_finite_value";

/** The outcome of {@link SmartDataFilter.decide}. */
export type FilterDecision =
  | { readonly action: "store"; readonly reason: "first_contact" | "heartbeat" }
  | {
      readonly action: "store";
      readonly reason: "significant_change";
      /** First metric found to have changed, appeared or disappeared. */
      readonly changedMetric: string;
    }
  | { readonly action: "filter" }
  | { readonly action: "reject"; readonly code: FilterRejectCode; readonly message: string };

/** Running totals since the filter was created. */
export interface SmartDataFilterCounters {
  readonly stored: number;
  readonly filtered: number;
  readonly rejected: number;
  /**
   * Devices dropped by the `maxDevices` or `maxStateBytes` cap or by {@link SmartDataFilter.evictIdle};
   * `forget` is not counted.
   */
  readonly evicted: number;
}

const OPTION_KEYS = Object.keys(DEFAULT_SMART_DATA_FILTER_OPTIONS) as (keyof SmartDataFilterOptions)[];

/**
 * Fills in defaults and checks that the options make sense.
 *
 * @returns the complete, frozen options.
 * @throws Error listing every problem (unknown keys, negative or non-finite numbers, non-integer
 *   caps, unknown threshold kinds), so a bad configuration fails at start-up with one message.
 */
export function validateFilterOptions(options: Partial<SmartDataFilterOptions> = {}): SmartDataFilterOptions {
  const problems: string[] = [];
  for (const key of Object.keys(options)) {
    if (!(OPTION_KEYS as string[]).includes(key)) problems.push(`unknown option "${key}"`);
  }
  const d = DEFAULT_SMART_DATA_FILTER_OPTIONS;
  const resolved: SmartDataFilterOptions = {
    snapshotIntervalMs: options.snapshotIntervalMs ?? d.snapshotIntervalMs,
    changeThreshold: options.changeThreshold ?? d.changeThreshold,
    zeroBaselineThreshold: options.zeroBaselineThreshold ?? d.zeroBaselineThreshold,
    metricThresholds: Object.freeze({ ...d.metricThresholds, ...options.metricThresholds }),
    maxFutureSkewMs: options.maxFutureSkewMs ?? d.maxFutureSkewMs,
    maxIdLength: options.maxIdLength ?? d.maxIdLength,
    maxMetricsPerSample: options.maxMetricsPerSample ?? d.maxMetricsPerSample,
    maxDevices: options.maxDevices ?? d.maxDevices,
    maxStateBytes: options.maxStateBytes ?? d.maxStateBytes,
    idleEvictionMs: options.idleEvictionMs ?? d.idleEvictionMs,
  };

  const check = (name: string, value: unknown, ok: (v: number) => boolean, want: string): void => {
    if (typeof value !== "number" || Number.isNaN(value) || !ok(value)) {
      problems.push(`${name} must be ${want} (got ${String(value)})`);
    }
  };
  const positiveFinite = (v: number): boolean => Number.isFinite(v) && v > 0;
  const nonNegativeFinite = (v: number): boolean => Number.isFinite(v) && v >= 0;
  const positiveInteger = (v: number): boolean => Number.isSafeInteger(v) && v > 0;

  // A zero interval or a zero relative threshold would store every sample, resends included.
  check("snapshotIntervalMs", resolved.snapshotIntervalMs, positiveFinite, "a positive finite number");
  check("changeThreshold", resolved.changeThreshold, positiveFinite, "a positive finite number");
  check("zeroBaselineThreshold", resolved.zeroBaselineThreshold, nonNegativeFinite, "a finite number >= 0");
  check("maxFutureSkewMs", resolved.maxFutureSkewMs, nonNegativeFinite, "a finite number >= 0");
  check("maxIdLength", resolved.maxIdLength, positiveInteger, "a positive integer");
  check("maxMetricsPerSample", resolved.maxMetricsPerSample, positiveInteger, "a positive integer");
  check("maxDevices", resolved.maxDevices, positiveInteger, "a positive integer");
  check("maxStateBytes", resolved.maxStateBytes, positiveInteger, "a positive integer");
  check("idleEvictionMs", resolved.idleEvictionMs, (v) => v > 0, "a positive number (Infinity disables)");

  const rules: unknown = options.metricThresholds;
  if (rules !== undefined && (typeof rules !== "object" || rules === null || Array.isArray(rules))) {
    problems.push("metricThresholds must be an object of metric name to { kind, threshold }");
  } else {
    for (const [metric, rule] of Object.entries(resolved.metricThresholds) as [string, unknown][]) {
      const where = `metricThresholds["${metric}"]`;
      if (metric.length === 0) problems.push("metricThresholds has an empty metric name");
      if (typeof rule !== "object" || rule === null) {
        problems.push(`${where} must be { kind, threshold }`);
        continue;
      }
      const { kind, threshold } = rule as Partial<MetricThreshold>;
      if (kind === "relative") check(`${where}.threshold`, threshold, positiveFinite, "a positive finite number");
      else if (kind === "absolute") check(`${where}.threshold`, threshold, nonNegativeFinite, "a finite number >= 0");
      else problems.push(`${where}.kind must be "relative" or "absolute" (got ${String(kind)})`);
    }
  }

  if (problems.length > 0) throw new Error(`invalid smart data filter options: ${problems.join("; ")}`);
  // Copied and frozen: rules are resolved once per key set, so a caller mutating its own objects
  // afterwards must not change the filter's behaviour halfway.
  const metricThresholds = Object.freeze(
    Object.fromEntries(
      Object.entries(resolved.metricThresholds).map(([metric, { kind, threshold }]) => [
        metric,
        Object.freeze({ kind, threshold }),
      ]),
    ),
  );
  return Object.freeze({ ...resolved, metricThresholds });
}

/**
 * The metric names of a kept snapshot, interned: every device reporting the same key set shares
 * one Shape, so per device only the values cost memory. Rules are resolved here once, not per sample.
 */
interface Shape {
  /** The sorted key set, so devices sending the same keys in different orders share the Shape. */
  readonly key: string;
  /**
   * In the order of the sample that created the Shape: a fleet usually sends one order, which
   * decide() then matches by position instead of looking each name up in `index`.
   */
  readonly names: readonly string[];
  readonly index: ReadonlyMap<string, number>;
  /** 1 where the metric is judged by an absolute threshold, 0 where relative. */
  readonly absolute: Uint8Array;
  readonly thresholds: Float64Array;
  /** Devices using this Shape; it is dropped at 0 so churning metric names cannot grow memory. */
  refs: number;
  /** Estimated bytes of the Shape (see {@link shapeBytes}), counted once however many devices share it. */
  readonly bytes: number;
}

interface DeviceState {
  readonly deviceId: string;
  shape: Shape;
  /**
   * Aligned with `shape.names`. A plain double array rather than a Float64Array: V8 gives every
   * typed array its own ArrayBuffer and off-heap backing store; for 10 values we measured ~400
   * bytes more RSS per device than for an unboxed double array (~140 bytes of heap).
   */
  values: number[];
  /** Estimated bytes of this state beside its Shape (see {@link deviceBytes}). */
  bytes: number;
  storedAtMs: number;
  /**
   * The filter's clock (latest sample time or caller's now so far) when the device was last seen;
   * non-decreasing along the LRU list.
   */
  seenAtMs: number;
  /** Neighbours in the least-recently-seen list. */
  older: DeviceState | undefined;
  newer: DeviceState | undefined;
}

const FIRST_CONTACT = 0;
const HEARTBEAT = 1;
const COMPARE = 2;
const LATE = 3;
const LATE_HEARTBEAT = 4;
const SAME_TIME = 5;

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
  private readonly devices = new Map<string, DeviceState>();
  // An intrusive list rather than Map delete + set per touch: V8's Map leaves a hole per delete
  // and rebuilds its whole table once holes fill it, measured at 5-7 bytes of garbage per touch
  // with 10k devices and 44 with 100k. Relinking allocates nothing.
  private oldest: DeviceState | undefined;
  private newest: DeviceState | undefined;
  private readonly shapes = new Map<string, Shape>();
  /** Sum of the devices' and the Shapes' estimated bytes, kept as they come and go. */
  private bytes = 0;
  private clockMs = Number.NEGATIVE_INFINITY;
  private storedCount = 0;
  private filteredCount = 0;
  private rejectedCount = 0;
  private evictedCount = 0;

  /** @throws Error when the options are invalid, see {@link validateFilterOptions}. */
  constructor(options: Partial<SmartDataFilterOptions> = {}) {
    this.options = validateFilterOptions(options);
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
    return this.bytes;
  }

  /** A snapshot of the running totals. */
  counters(): SmartDataFilterCounters {
    return {
      stored: this.storedCount,
      filtered: this.filteredCount,
      rejected: this.rejectedCount,
      evicted: this.evictedCount,
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
    const copy = Object.freeze([...names]);
    const maxIdLength = this.options.maxIdLength;
    return Object.freeze({ names: copy, invalidAt: invalidNameAt(copy, maxIdLength), maxIdLength });
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
    let mode: number;
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
      this.admit(deviceId, names, record, values, offset, occurredAtMs);
      this.storedCount++;
      return STORED_FIRST_CONTACT;
    }
    this.touch(state);
    switch (mode) {
      case COMPARE:
        if (changed === undefined) break;
        this.keep(state, names, record, values, offset, sameShape, occurredAtMs);
        this.storedCount++;
        return { action: "store", reason: "significant_change", changedMetric: changed };
      case HEARTBEAT:
        this.keep(state, names, record, values, offset, sameShape, occurredAtMs);
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
    const cutoff = nowMs - this.options.idleEvictionMs;
    let evicted = 0;
    while (this.oldest !== undefined && this.oldest.seenAtMs <= cutoff) {
      this.drop(this.oldest);
      evicted++;
    }
    this.evictedCount += evicted;
    return evicted;
  }

  /**
   * Drops a device's state, e.g. when it is decommissioned; its next sample is a first contact.
   *
   * @returns whether the device was tracked.
   */
  forget(deviceId: string): boolean {
    const state = this.devices.get(deviceId);
    if (state === undefined) return false;
    this.drop(state);
    return true;
  }

  private reject(code: FilterRejectCode, message: string): FilterDecision {
    this.rejectedCount++;
    return { action: "reject", code, message };
  }

  /** The rejection of a name {@link invalidNameAt} found. */
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

  private touch(state: DeviceState): void {
    // The high-water mark rather than the sample's own time: a device with a lagging clock (or
    // uploading a backlog) is still active, and the list stays sorted for evictIdle's early stop.
    state.seenAtMs = this.clockMs;
    if (state === this.newest) return;
    this.unlink(state);
    this.append(state);
  }

  private append(state: DeviceState): void {
    state.older = this.newest;
    state.newer = undefined;
    if (this.newest === undefined) this.oldest = state;
    else this.newest.newer = state;
    this.newest = state;
  }

  private unlink(state: DeviceState): void {
    const { older, newer } = state;
    if (older === undefined) this.oldest = newer;
    else older.newer = newer;
    if (newer === undefined) this.newest = older;
    else newer.older = older;
    state.older = undefined;
    state.newer = undefined;
  }

  private admit(
    deviceId: string,
    names: readonly string[],
    record: Readonly<Record<string, number>> | undefined,
    values: ArrayLike<number>,
    offset: number,
    occurredAtMs: number,
  ): void {
    if (this.devices.size >= this.options.maxDevices && this.oldest !== undefined) {
      this.drop(this.oldest);
      this.evictedCount++;
    }
    const shape = this.intern(names);
    const kept = newValues(shape.names.length);
    copyValues(shape, names, record, values, offset, kept);
    const state: DeviceState = {
      deviceId,
      shape,
      values: kept,
      bytes: deviceBytes(deviceId, kept.length),
      storedAtMs: occurredAtMs,
      seenAtMs: this.clockMs,
      older: undefined,
      newer: undefined,
    };
    this.devices.set(deviceId, state);
    this.append(state);
    this.bytes += state.bytes;
    this.evictOverBytes();
  }

  /**
   * Evicts the least recently seen devices while the state is over `maxStateBytes`, never the
   * newest (the one just stored: its own state must be kept for the decision to hold).
   */
  private evictOverBytes(): void {
    const max = this.options.maxStateBytes;
    while (this.bytes > max && this.oldest !== undefined && this.oldest !== this.newest) {
      this.drop(this.oldest);
      this.evictedCount++;
    }
  }

  private keep(
    state: DeviceState,
    names: readonly string[],
    record: Readonly<Record<string, number>> | undefined,
    values: ArrayLike<number>,
    offset: number,
    sameShape: boolean,
    occurredAtMs: number,
  ): void {
    if (!sameShape) {
      const shape = this.intern(names);
      this.release(state.shape);
      state.shape = shape;
      if (state.values.length !== shape.names.length) {
        state.values = newValues(shape.names.length);
        const bytes = deviceBytes(state.deviceId, shape.names.length);
        this.bytes += bytes - state.bytes;
        state.bytes = bytes;
      }
    }
    copyValues(state.shape, names, record, values, offset, state.values);
    state.storedAtMs = occurredAtMs;
    // Only a new key set can grow the state (a new Shape, more values); `state` is the newest.
    if (!sameShape) this.evictOverBytes();
  }

  private drop(state: DeviceState): void {
    this.devices.delete(state.deviceId);
    this.unlink(state);
    this.release(state.shape);
    this.bytes -= state.bytes;
  }

  private intern(names: readonly string[]): Shape {
    // Length-prefixed so no choice of metric names can make two key sets collide.
    let key = "";
    for (const name of [...names].sort()) key += `${name.length}:${name}`;
    let shape = this.shapes.get(key);
    if (shape === undefined) {
      const rules = this.options.metricThresholds;
      const absolute = new Uint8Array(names.length);
      const thresholds = new Float64Array(names.length);
      names.forEach((name, i) => {
        const rule = Object.hasOwn(rules, name) ? rules[name] : undefined;
        absolute[i] = rule?.kind === "absolute" ? 1 : 0;
        thresholds[i] = rule?.threshold ?? this.options.changeThreshold;
      });
      // Its own copy of the names: the caller's array may be reused.
      const copy = [...names];
      shape = { key, names: copy, index: new Map(names.map((n, i) => [n, i])), absolute, thresholds, refs: 0, bytes: shapeBytes(key, copy) };
      this.shapes.set(key, shape);
      this.bytes += shape.bytes;
    }
    shape.refs++;
    return shape;
  }

  private release(shape: Shape): void {
    if (--shape.refs === 0) {
      this.shapes.delete(shape.key);
      this.bytes -= shape.bytes;
    }
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

/**
 * Index of the first name {@link SmartDataFilter.decide} rejects (empty, or longer than
 * `maxIdLength`), or -1.
 */
function invalidNameAt(names: readonly string[], maxIdLength: number): number {
  for (let j = 0; j < names.length; j++) {
    const name = names[j]!;
    // U+0000: the name is a key of the stored jsonb, which cannot hold it.
    if (name.length === 0 || name.length > maxIdLength || name.includes("\u0000")) return j;
  }
  return -1;
}

/** Copies a sample's values into `into`, aligned with the Shape (which holds every name). */
function copyValues(
  shape: Shape,
  names: readonly string[],
  record: Readonly<Record<string, number>> | undefined,
  values: ArrayLike<number>,
  offset: number,
  into: number[],
): void {
  for (let j = 0; j < names.length; j++) {
    const name = names[j]!;
    let i = j;
    if (shape.names[i] !== name) i = shape.index.get(name)!;
    into[i] = record === undefined ? values[offset + j]! : record[name]!;
  }
}

/*
 * The byte estimate. Sizes are V8's on 64-bit Node without pointer compression (the official
 * builds), rounded up; checked against measured heap by test/unit/smart-data-filter.test.ts
 * ("bytes") and `npm run bench -- filter`. Strings count as held by the filter alone, which they
 * are once the message that carried them is gone.
 */

/** A DeviceState object (10 fields), its entry in the devices Map, and its values array's headers. */
const DEVICE_OVERHEAD_BYTES = 232;
/** A Shape object, its names array, index Map and typed arrays (headers and backing stores). */
const SHAPE_OVERHEAD_BYTES = 640;
/** Per name of a Shape: its slot in `names`, its `index` Map entry, its threshold and flag. */
const SHAPE_PER_NAME_BYTES = 56;

/** Heap bytes of a flat string: a 16-byte header, then 1 byte per character, 2 if any needs 2. */
function stringBytes(text: string): number {
  // Linear, and run only when state is created, never per decision.
  const width = /[^\u0000-\u00ff]/.test(text) ? 2 : 1;
  return (16 + text.length * width + 7) & ~7;
}

/** Estimated bytes of a device's own state: the object, its id and its values (8 bytes each). */
function deviceBytes(deviceId: string, values: number): number {
  return DEVICE_OVERHEAD_BYTES + stringBytes(deviceId) + 8 * values;
}

/** Estimated bytes of a Shape: its key, its own names and the per-name tables. */
function shapeBytes(key: string, names: readonly string[]): number {
  let bytes = SHAPE_OVERHEAD_BYTES + stringBytes(key) + SHAPE_PER_NAME_BYTES * names.length;
  for (const name of names) bytes += stringBytes(name);
  return bytes;
}

const NO_NAMES: readonly string[] = Object.freeze([]);
const NO_VALUES: ArrayLike<number> = Object.freeze([]);

/** Sized exactly and filled with a non-integer, so V8 keeps the values unboxed (8 bytes each). */
function newValues(length: number): number[] {
  return new Array<number>(length).fill(0.5);
}
