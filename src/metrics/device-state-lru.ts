/**
 * The smart data filter's per-device state: the last stored sample of each device, held in
 * least-recently-seen order so the device seen longest ago is evicted first (over the device or
 * byte cap, or idle) without a search.
 *
 * @module
 */
import { deviceBytes } from "./filter-state-bytes.js";
import { copyValues, type MetricShapes, type Shape } from "./metric-shapes.js";

/** What the filter keeps about one device: its last stored sample and its place in the order. */
export interface DeviceState {
  readonly deviceId: string;
  shape: Shape;
  /**
   * Aligned with `shape.names`. A plain double array rather than a Float64Array: V8 gives every
   * typed array its own ArrayBuffer and off-heap backing store, which costs more per device than
   * an unboxed double array (docs/BENCHMARKS.md, "Tried and rejected").
   */
  values: number[];
  /** Estimated bytes of this state beside its Shape (see `deviceBytes`). */
  bytes: number;
  storedAtMs: number;
  /**
   * The filter's clock (latest sample time or caller's now so far) when the device was last seen;
   * non-decreasing along the list.
   */
  seenAtMs: number;
  /** Neighbours in the least-recently-seen list. */
  older: DeviceState | undefined;
  newer: DeviceState | undefined;
}

/** The caps {@link DeviceStateLru} evicts at (the filter's options of the same names). */
export interface DeviceStateCaps {
  readonly maxDevices: number;
  readonly maxStateBytes: number;
}

/**
 * Device states by id, linked from the least to the most recently seen, with their Shapes and
 * estimated bytes. A sample's metrics are `names` with their values either in `record` (the map
 * form) or at `values[offset + j]` (the columnar form, `record` undefined).
 */
export class DeviceStateLru {
  private readonly byId = new Map<string, DeviceState>();
  // An intrusive list rather than Map delete + set per touch: V8's Map leaves a hole per delete
  // and rebuilds its whole table once holes fill it, garbage on every decision; relinking
  // allocates nothing (docs/BENCHMARKS.md, "Tried and rejected").
  private oldest: DeviceState | undefined;
  private newest: DeviceState | undefined;
  private readonly caps: DeviceStateCaps;
  private readonly shapes: MetricShapes;
  /** Sum of the devices' estimated bytes (the Shapes count theirs), kept as they come and go. */
  private deviceBytes = 0;
  private evictedCount = 0;

  constructor(caps: DeviceStateCaps, shapes: MetricShapes) {
    this.caps = caps;
    this.shapes = shapes;
  }

  /** Number of devices held. */
  get size(): number {
    return this.byId.size;
  }

  /** Estimated bytes of the devices and the Shapes they use. */
  get bytes(): number {
    return this.deviceBytes + this.shapes.bytes;
  }

  /** Devices evicted by a cap or by {@link DeviceStateLru.evictIdle}; `forget` is not counted. */
  get evicted(): number {
    return this.evictedCount;
  }

  get(deviceId: string): DeviceState | undefined {
    return this.byId.get(deviceId);
  }

  /** Marks a device seen at `seenAtMs`, which must not be before any other device's. */
  touch(state: DeviceState, seenAtMs: number): void {
    state.seenAtMs = seenAtMs;
    if (state === this.newest) return;
    this.unlink(state);
    this.append(state);
  }

  /** Keeps the first sample of a device not held, as the newest; evicts others over the caps. */
  admit(
    deviceId: string,
    names: readonly string[],
    record: Readonly<Record<string, number>> | undefined,
    values: ArrayLike<number>,
    offset: number,
    storedAtMs: number,
    seenAtMs: number,
  ): void {
    if (this.byId.size >= this.caps.maxDevices && this.oldest !== undefined) {
      this.drop(this.oldest);
      this.evictedCount++;
    }
    const shape = this.shapes.intern(names);
    const kept = newValues(shape.names.length);
    copyValues(shape, names, record, values, offset, kept);
    const state: DeviceState = {
      deviceId,
      shape,
      values: kept,
      bytes: deviceBytes(deviceId, kept.length),
      storedAtMs,
      seenAtMs,
      older: undefined,
      newer: undefined,
    };
    this.byId.set(deviceId, state);
    this.append(state);
    this.deviceBytes += state.bytes;
    this.evictOverBytes();
  }

  /**
   * Replaces the kept sample of `state`, the newest device. `sameShape`: the sample has exactly
   * the key set of the kept one, so its values are overwritten in place.
   */
  keep(
    state: DeviceState,
    names: readonly string[],
    record: Readonly<Record<string, number>> | undefined,
    values: ArrayLike<number>,
    offset: number,
    sameShape: boolean,
    storedAtMs: number,
  ): void {
    if (!sameShape) {
      const shape = this.shapes.intern(names);
      this.shapes.release(state.shape);
      state.shape = shape;
      if (state.values.length !== shape.names.length) {
        state.values = newValues(shape.names.length);
        const bytes = deviceBytes(state.deviceId, shape.names.length);
        this.deviceBytes += bytes - state.bytes;
        state.bytes = bytes;
      }
    }
    copyValues(state.shape, names, record, values, offset, state.values);
    state.storedAtMs = storedAtMs;
    // Only a new key set can grow the state (a new Shape, more values); `state` is the newest.
    if (!sameShape) this.evictOverBytes();
  }

  /**
   * Evicts the devices last seen at or before `cutoffMs`. Cost is proportional to the number
   * evicted: the walk stops at the first device seen later.
   *
   * @returns how many devices were evicted.
   */
  evictIdle(cutoffMs: number): number {
    let evicted = 0;
    while (this.oldest !== undefined && this.oldest.seenAtMs <= cutoffMs) {
      this.drop(this.oldest);
      evicted++;
    }
    this.evictedCount += evicted;
    return evicted;
  }

  /** Drops a device's state; @returns whether the device was held. */
  forget(deviceId: string): boolean {
    const state = this.byId.get(deviceId);
    if (state === undefined) return false;
    this.drop(state);
    return true;
  }

  /**
   * Evicts the least recently seen devices while the state is over `maxStateBytes`, never the
   * newest (the one just stored: its own state must be kept for the decision to hold).
   */
  private evictOverBytes(): void {
    const max = this.caps.maxStateBytes;
    while (this.deviceBytes + this.shapes.bytes > max && this.oldest !== undefined && this.oldest !== this.newest) {
      this.drop(this.oldest);
      this.evictedCount++;
    }
  }

  private drop(state: DeviceState): void {
    this.byId.delete(state.deviceId);
    this.unlink(state);
    this.shapes.release(state.shape);
    this.deviceBytes -= state.bytes;
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
}

/** Sized exactly and filled with a non-integer, so V8 keeps the values unboxed (8 bytes each). */
function newValues(length: number): number[] {
  return new Array<number>(length).fill(0.5);
}
