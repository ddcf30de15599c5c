/**
 * Benchmark of the smart data filter (`src/metrics/smart-data-filter.ts`):
 * - decisions per second on a realistic mix: 10k devices round-robin, 10 metrics each, mostly
 *   small noise, occasional jumps, heartbeats; compared with a baseline loop that only finds the
 *   device and reads every value, the least any filter must do;
 * - heap allocated per filtered decision, next to what merely reading the sample allocates;
 * - bytes per tracked device with 100k devices x 10 metrics (heap + array buffers, after a full GC).
 *
 * Run: `npm run bench -- filter [--seconds N]`. Heap figures need `--expose-gc`; without it the
 * benchmark re-runs itself as `node --expose-gc --import tsx bench/filter.ts`.
 * Last line: `{"decisions_per_s": number, "bytes_per_device": number}`.
 */
import { spawnSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import { fileURLToPath } from "node:url";
import { SmartDataFilter, type MetricSample } from "../src/metrics/smart-data-filter.js";
import { seededRandom as prng } from "../test/support/seeded-random.js";

const exposedGc = (globalThis as { gc?: () => void }).gc;
if (exposedGc === undefined) {
  if (process.env.BENCH_FILTER_RESPAWNED) {
    throw new Error("global.gc is still missing after re-running with --expose-gc");
  }
  const child = spawnSync(
    process.execPath,
    ["--expose-gc", "--import", import.meta.resolve("tsx"), fileURLToPath(import.meta.url), ...process.argv.slice(2)],
    { stdio: "inherit", env: { ...process.env, BENCH_FILTER_RESPAWNED: "1" } },
  );
  process.exit(child.status ?? 1);
}
const gc: () => void = exposedGc;

const secondsArg = process.argv.indexOf("--seconds");
const MEASURE_MS = secondsArg > 0 ? Number(process.argv[secondsArg + 1]) * 1000 : 3000;
const DEVICES = 10_000;
const ROUNDS = 20; // samples per device per pass
const ROUND_MS = 10_000;
const MEMORY_DEVICES = 100_000;
const T0 = 1_700_000_000_000;

const NAMES = [
  "cpu",
  "mem",
  "disk",
  "net_in",
  "net_out",
  "temperature",
  "error_rate",
  "queue_depth",
  "latency_p50",
  "latency_p99",
] as const;

const random = prng(7);

function baseValues(): number[] {
  return NAMES.map((name) => {
    if (name === "error_rate") return random() * 0.02;
    if (name === "queue_depth") return 0;
    return 1 + random() * 1000;
  });
}

/** Values around a device's base: noise of ±1 %, 2 % of samples with one metric jumping 20 %. */
function metricsAround(base: readonly number[]): Record<string, number> {
  const metrics: Record<string, number> = {};
  const jump = random() < 0.02 ? Math.floor(random() * NAMES.length) : -1;
  NAMES.forEach((name, i) => {
    const b = base[i]!;
    let value: number;
    if (name === "error_rate") value = Math.max(0, b + (random() - 0.5) * 0.004);
    else if (name === "queue_depth") value = random() < 0.1 ? 1 : 0;
    else value = b * (1 + (random() - 0.5) * 0.02);
    metrics[name] = i === jump ? value * 1.2 + 1 : value;
  });
  return metrics;
}

interface MutableSample {
  deviceId: string;
  occurredAtMs: number;
  metrics: Record<string, number>;
}

function line(label: string, value: string): void {
  console.log(`${label.padEnd(44)} ${value}`);
}
const fmt = (n: number): string => Math.round(n).toLocaleString("en-US");

const decoder = new TextDecoder();
const encoder = new TextEncoder();
/**
 * A device id as the RPC layer hands it over: decoded from bytes, hence one flat string.
 * randomUUID() itself returns a rope of string pieces that costs ~400 bytes more per id.
 */
const deviceIdFromWire = (): string => decoder.decode(encoder.encode(randomUUID()));

// --- decisions per second -------------------------------------------------------------------

const deviceIds = Array.from({ length: DEVICES }, deviceIdFromWire);
const bases = deviceIds.map(() => baseValues());
const samples: MutableSample[] = [];
for (let round = 0; round < ROUNDS; round++) {
  for (let d = 0; d < DEVICES; d++) {
    samples.push({
      deviceId: deviceIds[d]!,
      occurredAtMs: T0 + round * ROUND_MS + Math.floor((d / DEVICES) * ROUND_MS),
      metrics: metricsAround(bases[d]!),
    });
  }
}

/** Moves the whole stream one pass later, so replaying it looks like new samples to the filter. */
function advance(): void {
  for (const sample of samples) sample.occurredAtMs += ROUNDS * ROUND_MS;
}

function timeFilter(filter: SmartDataFilter): { perSecond: number; stored: number; decisions: number } {
  let decisions = 0;
  let stored = 0;
  let elapsed = 0;
  while (elapsed < MEASURE_MS) {
    advance();
    const start = performance.now();
    for (const sample of samples) {
      if (filter.decide(sample, sample.occurredAtMs).action === "store") stored++;
    }
    elapsed += performance.now() - start;
    decisions += samples.length;
  }
  return { perSecond: (decisions / elapsed) * 1000, stored, decisions };
}

function timeBaseline(): number {
  const seen = new Map<string, number>(deviceIds.map((id, i) => [id, i]));
  let sink = 0;
  let decisions = 0;
  let elapsed = 0;
  while (elapsed < MEASURE_MS) {
    const start = performance.now();
    for (const sample of samples) {
      sink += seen.get(sample.deviceId) ?? 0;
      const metrics = sample.metrics;
      for (const name in metrics) sink += metrics[name]!;
    }
    elapsed += performance.now() - start;
    decisions += samples.length;
  }
  if (sink === 42) console.log(""); // keeps the loop from being optimised away
  return (decisions / elapsed) * 1000;
}

const filter = new SmartDataFilter();
timeFilter(new SmartDataFilter()); // warm-up: let the JIT settle on decide()
const result = timeFilter(filter);
const baseline = timeBaseline();

console.log(`smart data filter: ${DEVICES.toLocaleString("en-US")} devices round-robin, ${NAMES.length} metrics`);
line("decisions/s", fmt(result.perSecond));
line("baseline (device lookup + read values)/s", fmt(baseline));
line("filter cost relative to baseline", `${(baseline / result.perSecond).toFixed(2)}x`);
line("stored share of the mix", `${((result.stored / result.decisions) * 100).toFixed(1)} %`);

// --- allocation on the filtered path -------------------------------------------------------

/**
 * Heap bytes allocated per call of `decideOne` (which must not throw) over the first round of
 * samples, after a full GC. Each sample is re-sent 1 ms later with the same values, so a filter
 * that has seen the round takes the filtered path every time.
 */
function allocationPer(decideOne: (sample: MutableSample) => void, n: number): number {
  const round = samples.slice(0, DEVICES);
  const probe: MutableSample = { deviceId: "", occurredAtMs: 0, metrics: {} };
  gc();
  const before = process.memoryUsage().heapUsed;
  for (let i = 0; i < n; i++) {
    const sample = round[i % DEVICES]!;
    probe.deviceId = sample.deviceId;
    probe.occurredAtMs = sample.occurredAtMs + 1;
    probe.metrics = sample.metrics;
    decideOne(probe);
  }
  return (process.memoryUsage().heapUsed - before) / n;
}

const steady = new SmartDataFilter();
for (const sample of samples.slice(0, DEVICES)) steady.decide(sample, sample.occurredAtMs);
const decideFiltered = (sample: MutableSample): void => {
  if (steady.decide(sample, sample.occurredAtMs).action !== "filter") throw new Error("expected the filtered path");
};
let readSink = 0;
const readOnly = (sample: MutableSample): void => {
  for (const name in sample.metrics) readSink += sample.metrics[name]!;
};
// Warm-up first: an unoptimised loop boxes its own numbers.
for (const run of [decideFiltered, readOnly]) allocationPer(run, 200_000);
line("heap allocated per filtered decision", `${allocationPer(decideFiltered, 1_000_000).toFixed(2)} bytes`);
line("  of which reading the sample (baseline)", `${allocationPer(readOnly, 1_000_000).toFixed(2)} bytes`);
if (readSink === 42) console.log("");

// --- memory per tracked device -------------------------------------------------------------

samples.length = 0;
function heapBytes(): number {
  gc();
  gc();
  const usage = process.memoryUsage();
  return usage.heapUsed + usage.arrayBuffers;
}
const before = heapBytes();
const full = new SmartDataFilter();
for (let d = 0; d < MEMORY_DEVICES; d++) {
  const sample: MetricSample = { deviceId: deviceIdFromWire(), occurredAtMs: T0, metrics: metricsAround(baseValues()) };
  full.decide(sample, T0);
}
const after = heapBytes();
const bytesPerDevice = (after - before) / full.size;

console.log(`memory: ${fmt(full.size)} devices x ${NAMES.length} metrics, 36-character device ids`);
line("bytes per tracked device (heap + buffers)", fmt(bytesPerDevice));
line("goal", "<= 2,048");

console.log(
  JSON.stringify({ decisions_per_s: Math.round(result.perSecond), bytes_per_device: Math.round(bytesPerDevice) }),
);
