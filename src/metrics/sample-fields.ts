/**
 * Checks every sample form shares (map, compact, columnar), so each answers the same thing the
 * same way. Pure.
 *
 * @module
 */
import type { Timestamp } from "@bufbuild/protobuf/wkt";
import type { FilterDecision } from "./smart-data-filter.js";

/**
 * Epoch milliseconds of a sample time, or the rejection for it (`field` names it in the
 * message: `occurred_at`, `columns.base_time`). Milliseconds: the filter's unit and a JavaScript
 * Date's. Two readings of a device within one millisecond share the storage key
 * (device_id, occurred_at): the first is kept.
 */
export function sampleTimeMs(ts: Timestamp | undefined, field: string): number | FilterDecision {
  if (ts === undefined) return { action: "reject", code: "invalid_timestamp", message: `${field} is missing` };
  if (!Number.isInteger(ts.nanos) || ts.nanos < 0 || ts.nanos > 999_999_999) {
    return { action: "reject", code: "invalid_timestamp", message: `${field} has invalid nanos ${ts.nanos}` };
  }
  return Number(ts.seconds) * 1000 + Math.floor(ts.nanos / 1_000_000);
}

/** The first metric name given more than once, or undefined when they are distinct. */
export function repeatedName(names: readonly string[]): string | undefined {
  if (new Set(names).size === names.length) return undefined;
  const seen = new Set<string>();
  return names.find((n) => (seen.has(n) ? true : (seen.add(n), false)));
}
