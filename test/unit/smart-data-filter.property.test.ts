import { describe, expect, it } from "vitest";
import {
  SmartDataFilter,
  type FilterDecision,
  type SmartDataFilterOptions,
} from "../../src/metrics/smart-data-filter.js";
import { seededRandom as prng } from "../support/seeded-random.js";

// Property tests over random device streams. The expected decisions are recomputed here from the
// written rules, independently of the filter's code, and a failure names the seed to replay.

const SEEDS = [1, 2, 3, 42, 20_240_601];
const SEQUENCES_PER_SEED = 1_500;
const T0 = 1_700_000_000_000;


type Metrics = Record<string, number>;
interface Received {
  readonly deviceId: string;
  readonly occurredAtMs: number;
  readonly metrics: Metrics;
}

const METRIC_POOL = ["cpu", "mem", "temp", "error_rate", "queue", "grid"];

/** Random options per sequence, so the properties hold for configurations other than the defaults. */
function randomOptions(random: () => number): Partial<SmartDataFilterOptions> {
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
  return {
    snapshotIntervalMs: pick([60_000, 300_000, 300_000]),
    changeThreshold: pick([0.02, 0.05, 0.05, 0.1]),
    zeroBaselineThreshold: pick([0.5, 1, 1]),
    metricThresholds:
      random() < 0.3 ? { temp: { kind: "relative", threshold: 0.1 }, queue: { kind: "absolute", threshold: 2 } } : {},
  };
}

/** Time-ordered samples of 1-3 interleaved devices with random gaps and random metric walks. */
function randomStream(random: () => number): Received[] {
  const devices = Array.from({ length: 1 + Math.floor(random() * 3) }, (_, d) => {
    const metrics: Metrics = {};
    for (const name of METRIC_POOL) if (random() < 0.6) metrics[name] = initial(name, random);
    if (Object.keys(metrics).length === 0) metrics.cpu = 50;
    return { deviceId: `dev-${d}`, atMs: T0 + Math.floor(random() * 10_000), metrics };
  });
  const stream: Received[] = [];
  const length = 20 + Math.floor(random() * 40);
  for (let n = 0; n < length; n++) {
    const device = devices[Math.floor(random() * devices.length)]!;
    device.atMs += randomGap(random);
    device.metrics = walk(device.metrics, random);
    stream.push({ deviceId: device.deviceId, occurredAtMs: device.atMs, metrics: { ...device.metrics } });
  }
  return stream;
}

function randomGap(random: () => number): number {
  const r = random();
  if (r < 0.05) return 0; // resend or same-millisecond sample
  if (r < 0.12) return [60_000, 100_000, 150_000][Math.floor(random() * 3)]!; // lands on interval boundaries
  if (r < 0.8) return 1 + Math.floor(random() * 30_000);
  if (r < 0.95) return 30_000 + Math.floor(random() * 200_000);
  return 200_000 + Math.floor(random() * 500_000);
}

function initial(name: string, random: () => number): number {
  switch (name) {
    case "error_rate":
      return random() < 0.5 ? 0 : random() * 0.05;
    case "temp":
      return (random() - 0.5) * 80; // negative values too
    case "grid":
      return 100;
    case "queue":
      return Math.floor(random() * 3);
    default:
      return random() * 100;
  }
}

function walk(metrics: Metrics, random: () => number): Metrics {
  const next: Metrics = {};
  let left = Object.keys(metrics).length;
  for (const [name, value] of Object.entries(metrics)) {
    if (random() < 0.03 && left > 1) {
      left--; // disappears, but never the last one
      continue;
    }
    next[name] = step(name, value, random);
  }
  if (random() < 0.03) {
    const name = METRIC_POOL[Math.floor(random() * METRIC_POOL.length)]!;
    next[name] ??= initial(name, random); // appears
  }
  return next;
}

function step(name: string, value: number, random: () => number): number {
  const r = random();
  switch (name) {
    case "error_rate":
      // Sometimes on a grid where differences of exactly 0.01 occur (0.02 - 0.01 === 0.01).
      if (r < 0.2) return [0, 0.01, 0.02, 0.04][Math.floor(random() * 4)]!;
      return Math.max(0, value + (random() - 0.5) * 0.016);
    case "grid":
      // Integers around 100 hit the 5 % boundary exactly (e.g. 100 -> 105, 100 -> 95).
      return r < 0.1 ? 0 : 95 + Math.floor(random() * 11);
    case "queue":
      return Math.floor(random() * 3); // 0, 1, 2: the zero-baseline boundary exactly
    default:
      if (r < 0.03) return 0;
      if (r < 0.08) return value === 0 ? 10 : value * (1 + (random() - 0.5) * 0.5); // jump
      return value * (1 + (random() - 0.5) * 0.06); // noise of up to ±3 %
  }
}

/** How often the streams hit each case, to show the properties were not checked vacuously. */
type Tally = Record<string, number>;
const count = (tally: Tally, key: string): void => {
  tally[key] = (tally[key] ?? 0) + 1;
};

/** The change rules as written in the specification, recomputed independently of the filter. */
function changedMetrics(stored: Metrics, received: Metrics, options: SmartDataFilterOptions, tally: Tally): string[] {
  const changed: string[] = [];
  for (const name of new Set([...Object.keys(stored), ...Object.keys(received)])) {
    const old = stored[name];
    const value = received[name];
    if (old === undefined || value === undefined) {
      changed.push(name);
      continue;
    }
    const rule = options.metricThresholds[name];
    if (rule?.kind === "absolute") {
      const difference = Math.abs(value - old);
      if (difference === rule.threshold) count(tally, "absolute threshold hit exactly");
      if (difference > rule.threshold) changed.push(name);
    } else if (old === 0) {
      if (Math.abs(value) === options.zeroBaselineThreshold) count(tally, "zero baseline hit exactly");
      if (Math.abs(value) > options.zeroBaselineThreshold) changed.push(name);
    } else {
      const ratio = Math.abs(value - old) / Math.abs(old);
      const threshold = rule?.threshold ?? options.changeThreshold;
      if (ratio === threshold) count(tally, "relative threshold hit exactly");
      if (ratio >= threshold) changed.push(name);
    }
  }
  return changed;
}

const outcome = (decision: FilterDecision): string => (decision.action === "store" ? decision.reason : decision.action);
const changedMetric = (decision: FilterDecision): string | undefined =>
  decision.action === "store" && decision.reason === "significant_change" ? decision.changedMetric : undefined;

describe.each(SEEDS)("SmartDataFilter properties, seed %i", (seed) => {
  it("stores exactly first contacts, heartbeats and significant changes; gaps stay within interval + gap", () => {
    const random = prng(seed);
    const tally: Tally = {};
    for (let sequence = 0; sequence < SEQUENCES_PER_SEED; sequence++) {
      const filter = new SmartDataFilter(randomOptions(random));
      const { snapshotIntervalMs } = filter.options;
      const lastStored = new Map<string, Received>();
      const lastReceived = new Map<string, number>();

      for (const [n, sample] of randomStream(random).entries()) {
        // Built only on failure: formatting every sample would dominate the run time.
        const context = () => `seed ${seed}, sequence ${sequence}, sample ${n}: ${JSON.stringify(sample)}`;
        const decision = filter.decide(sample, sample.occurredAtMs);
        const stored = lastStored.get(sample.deviceId);
        const previousAt = lastReceived.get(sample.deviceId);

        let expected: string;
        let changed: string[] = [];
        if (stored === undefined) expected = "first_contact";
        else if (sample.occurredAtMs === stored.occurredAtMs) {
          // Same storage key (device, time) as the stored sample: a resend, never a second row.
          expected = "filter";
          count(tally, "same time as stored");
        } else if (sample.occurredAtMs - stored.occurredAtMs >= snapshotIntervalMs) {
          expected = "heartbeat";
          if (sample.occurredAtMs - stored.occurredAtMs === snapshotIntervalMs) count(tally, "interval hit exactly");
        } else {
          changed = changedMetrics(stored.metrics, sample.metrics, filter.options, tally);
          // (b) nothing within threshold of the last stored sample is stored, and nothing beyond it is dropped
          expected = changed.length === 0 ? "filter" : "significant_change";
        }
        count(tally, expected);
        if (outcome(decision) !== expected) expect(outcome(decision), context()).toBe(expected);
        if (decision.action === "store" && decision.reason === "significant_change") {
          if (!changed.includes(decision.changedMetric)) expect(changed, context()).toContain(decision.changedMetric);
        }

        if (decision.action === "store") {
          // (a) consecutive stores are at most one interval plus the last received gap apart
          if (stored !== undefined && previousAt !== undefined) {
            const storedGap = sample.occurredAtMs - stored.occurredAtMs;
            const receivedGap = sample.occurredAtMs - previousAt;
            if (storedGap > snapshotIntervalMs + receivedGap) {
              expect(storedGap, context()).toBeLessThanOrEqual(snapshotIntervalMs + receivedGap);
            }
          }
          lastStored.set(sample.deviceId, sample);
        }
        lastReceived.set(sample.deviceId, sample.occurredAtMs);
      }
    }
    for (const key of [
      "first_contact",
      "heartbeat",
      "significant_change",
      "filter",
      "interval hit exactly",
      "same time as stored",
      "relative threshold hit exactly",
      "absolute threshold hit exactly",
      "zero baseline hit exactly",
    ]) {
      expect(tally[key], key).toBeGreaterThan(50);
    }
  });

  it("decides in-order samples alike despite late ones; stores a late one only an interval back", () => {
    const random = prng(seed ^ 0x5eed);
    const tally: Tally = {};
    for (let sequence = 0; sequence < SEQUENCES_PER_SEED; sequence++) {
      const options = randomOptions(random);
      const reference = new SmartDataFilter(options);
      const disturbed = new SmartDataFilter(options);
      const { snapshotIntervalMs } = reference.options;
      const lastStoredAt = new Map<string, number>();

      for (const [n, sample] of randomStream(random).entries()) {
        const context = () => `seed ${seed}, sequence ${sequence}, sample ${n}`;
        const storedAt = lastStoredAt.get(sample.deviceId);
        if (storedAt !== undefined && random() < 0.3) {
          const lag = random() < 0.2 ? snapshotIntervalMs : 1 + Math.floor(random() * 2 * snapshotIntervalMs);
          const late = { ...sample, occurredAtMs: storedAt - lag, metrics: walk(sample.metrics, random) };
          const expected = lag >= snapshotIntervalMs ? "heartbeat" : "filter";
          const actual = outcome(disturbed.decide(late, sample.occurredAtMs));
          count(tally, `late ${expected}`);
          if (actual !== expected) expect(actual, `${context()}, late by ${lag}`).toBe(expected);
        }
        const expected = reference.decide(sample, sample.occurredAtMs);
        const actual = disturbed.decide(sample, sample.occurredAtMs);
        if (outcome(actual) !== outcome(expected) || changedMetric(actual) !== changedMetric(expected)) {
          expect(actual, context()).toEqual(expected);
        }
        if (expected.action === "store") lastStoredAt.set(sample.deviceId, sample.occurredAtMs);
      }
    }
    expect(tally["late heartbeat"]).toBeGreaterThan(50);
    expect(tally["late filter"]).toBeGreaterThan(50);
  });
});

describe.each(SEEDS)("SmartDataFilter columnar form, seed %i", (seed) => {
  it("decides a sample given as values at an offset exactly as the same sample as a map", () => {
    const random = prng(seed ^ 0xc01);
    const tally: Tally = {};
    const shuffled = (names: string[]): string[] => {
      const out = [...names];
      for (let i = out.length - 1; i > 0; i--) {
        const j = Math.floor(random() * (i + 1));
        [out[i], out[j]] = [out[j]!, out[i]!];
      }
      return out;
    };
    for (let sequence = 0; sequence < SEQUENCES_PER_SEED / 3; sequence++) {
      const options = randomOptions(random);
      const byMap = new SmartDataFilter(options);
      const byValues = new SmartDataFilter(options);
      for (const [n, sample] of randomStream(random).entries()) {
        // A device may send its names in any order, and the order decides which changed metric
        // is reported first: both forms see the same order.
        let names = random() < 0.3 ? shuffled(Object.keys(sample.metrics)) : Object.keys(sample.metrics);
        const row = names.map((name) => sample.metrics[name]!);
        if (random() < 0.05) row[Math.floor(random() * row.length)] = random() < 0.5 ? Number.NaN : Number.NEGATIVE_INFINITY;
        if (random() < 0.03) names = [...names.slice(0, -1), random() < 0.5 ? "" : "m".repeat(filterNameLimit + 1)];
        const metrics: Metrics = {};
        names.forEach((name, j) => (metrics[name] = row[j]!));
        // The sample's row among others of the same message, so a wrong offset shows.
        const rows = 3;
        const at = Math.floor(random() * rows);
        const values = Array.from({ length: rows * names.length }, () => random() * 1000);
        values.splice(at * names.length, names.length, ...row);

        const expected = byMap.decide({ deviceId: sample.deviceId, occurredAtMs: sample.occurredAtMs, metrics }, sample.occurredAtMs);
        const actual = byValues.decideValues(
          sample.deviceId,
          sample.occurredAtMs,
          byValues.metricNames(names),
          values,
          at * names.length,
          sample.occurredAtMs,
        );
        count(tally, expected.action === "reject" ? expected.code : outcome(expected));
        if (JSON.stringify(actual) !== JSON.stringify(expected)) {
          expect(actual, `seed ${seed}, sequence ${sequence}, sample ${n}: ${JSON.stringify(names)} ${JSON.stringify(row)}`).toEqual(expected);
        }
      }
      expect(byValues.counters()).toEqual(byMap.counters());
      expect(byValues.size).toBe(byMap.size);
    }
    for (const key of ["first_contact", "heartbeat", "significant_change", "filter", "non_finite_value", "invalid_metric_name", "metric_name_too_long"]) {
      expect(tally[key], key).toBeGreaterThan(5);
    }
  });
});

const filterNameLimit = new SmartDataFilter().options.maxIdLength;
