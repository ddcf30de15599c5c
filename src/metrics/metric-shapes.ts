/**
 * Interning of the metric key sets the smart data filter keeps: every device reporting the same
 * key set shares one {@link Shape}, so per device only the values cost memory.
 *
 * @module
 */
import { shapeBytes } from "./filter-state-bytes.js";
import type { MetricThreshold } from "./smart-data-filter-options.js";

/**
 * The metric names of a kept snapshot, interned. Rules are resolved here once, not per sample.
 */
export interface Shape {
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

/** The Shapes in use, each counted by the devices holding it. */
export class MetricShapes {
  private readonly byKey = new Map<string, Shape>();
  private readonly rules: Readonly<Record<string, MetricThreshold>>;
  private readonly changeThreshold: number;
  private totalBytes = 0;

  /**
   * @param rules the filter's per-metric rules.
   * @param changeThreshold the relative threshold of metrics without a rule.
   */
  constructor(rules: Readonly<Record<string, MetricThreshold>>, changeThreshold: number) {
    this.rules = rules;
    this.changeThreshold = changeThreshold;
  }

  /** Estimated bytes of the Shapes in use. */
  get bytes(): number {
    return this.totalBytes;
  }

  /** The Shape of `names`, created if none is in use; one more reference to it. */
  intern(names: readonly string[]): Shape {
    // Length-prefixed so no choice of metric names can make two key sets collide.
    let key = "";
    for (const name of [...names].sort()) key += `${name.length}:${name}`;
    let shape = this.byKey.get(key);
    if (shape === undefined) {
      const rules = this.rules;
      const absolute = new Uint8Array(names.length);
      const thresholds = new Float64Array(names.length);
      names.forEach((name, i) => {
        const rule = Object.hasOwn(rules, name) ? rules[name] : undefined;
        absolute[i] = rule?.kind === "absolute" ? 1 : 0;
        thresholds[i] = rule?.threshold ?? this.changeThreshold;
      });
      // Its own copy of the names: the caller's array may be reused.
      const copy = [...names];
      shape = { key, names: copy, index: new Map(names.map((n, i) => [n, i])), absolute, thresholds, refs: 0, bytes: shapeBytes(key, copy) };
      this.byKey.set(key, shape);
      this.totalBytes += shape.bytes;
    }
    shape.refs++;
    return shape;
  }

  /** Drops one reference to `shape`, and the Shape itself with the last one. */
  release(shape: Shape): void {
    if (--shape.refs === 0) {
      this.byKey.delete(shape.key);
      this.totalBytes -= shape.bytes;
    }
  }
}

/** Copies a sample's values into `into`, aligned with the Shape (which holds every name). */
export function copyValues(
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
