/**
 * The smart data filter's estimate of the heap its state takes (`SmartDataFilter.stateBytes`),
 * kept as state comes and goes rather than measured by a walk.
 *
 * Sizes are V8's on 64-bit Node without pointer compression (the official builds), rounded up;
 * checked against measured heap by test/unit/smart-data-filter.test.ts ("bytes") and
 * `npm run bench -- filter`. Strings count as held by the filter alone, which they are once the
 * message that carried them is gone.
 *
 * @module
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
export function deviceBytes(deviceId: string, values: number): number {
  return DEVICE_OVERHEAD_BYTES + stringBytes(deviceId) + 8 * values;
}

/** Estimated bytes of a Shape: its key, its own names and the per-name tables. */
export function shapeBytes(key: string, names: readonly string[]): number {
  let bytes = SHAPE_OVERHEAD_BYTES + stringBytes(key) + SHAPE_PER_NAME_BYTES * names.length;
  for (const name of names) bytes += stringBytes(name);
  return bytes;
}
