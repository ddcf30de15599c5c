/**
 * Measures the heap the smart data filter's state really takes, next to what it accounts
 * (`stateBytes`). Run as a child with `node --expose-gc --import tsx`, so a full GC can be forced
 * before each reading; prints one JSON line. Used by test/unit/smart-data-filter.test.ts.
 *
 * Argument: a JSON object { devices, metrics, nameLength, uniqueNames, idLength, maxStateBytes? }.
 */
import { SmartDataFilter } from "../../src/metrics/smart-data-filter.js";

interface ProbeInput {
  /** Devices fed, one sample each. */
  readonly devices: number;
  /** Metrics per sample. */
  readonly metrics: number;
  /** Length of each metric name. */
  readonly nameLength: number;
  /** Every device its own metric names (one Shape per device) or all sharing one set. */
  readonly uniqueNames: boolean;
  /** Length of each device id. */
  readonly idLength: number;
  readonly maxStateBytes?: number;
}

/** What the probe prints. */
export interface ProbeOutput {
  readonly tracked: number;
  readonly evicted: number;
  readonly stateBytes: number;
  /** Growth of heap used plus array buffers across the feeding, after full GCs. */
  readonly measuredBytes: number;
}

const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) throw new Error("run with --expose-gc");

function used(): number {
  for (let i = 0; i < 3; i++) gc!();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

const input = JSON.parse(process.argv[2] ?? "{}") as ProbeInput;
const T0 = 1_700_000_000_000;
/** A name of exactly `length` characters, distinct for each (device, index) or each index. */
const nameOf = (device: number, index: number): string => {
  const stem = input.uniqueNames ? `d${device}m${index}_` : `m${index}_`;
  return stem.padEnd(input.nameLength, "x").slice(0, Math.max(input.nameLength, stem.length));
};
const idOf = (device: number): string => `dev-${device}-`.padEnd(input.idLength, "0");

const filter = new SmartDataFilter(input.maxStateBytes === undefined ? {} : { maxStateBytes: input.maxStateBytes, maxDevices: 10_000_000 });
const before = used();
for (let d = 0; d < input.devices; d++) {
  // Built afresh per sample, as a decoded message's would be, and released after the decision.
  const metrics: Record<string, number> = {};
  for (let j = 0; j < input.metrics; j++) metrics[nameOf(d, j)] = j + 0.25;
  const decision = filter.decide({ deviceId: idOf(d), occurredAtMs: T0 + d, metrics }, T0 + d);
  if (decision.action !== "store") throw new Error(`device ${d}: ${JSON.stringify(decision)}`);
}
const after = used();
const output: ProbeOutput = {
  tracked: filter.size,
  evicted: filter.counters().evicted,
  stateBytes: filter.stateBytes,
  measuredBytes: after - before,
};
console.log(JSON.stringify(output));
