import { afterEach, describe, expect, it, vi } from "vitest";
import { NO_WRITER_STATS, type WriterStats } from "../../src/storage/batch-writer.js";
import { startWriterStatsLog, writerStatsReport } from "../../src/storage/writer-stats-log.js";

const zero: WriterStats = NO_WRITER_STATS;

describe("writerStatsReport", () => {
  it("says nothing for an idle writer", () => {
    expect(writerStatsReport(zero, { ...zero })).toBeUndefined();
  });

  it("reports counters as changes over the interval and the buffer as it is now", () => {
    const before = { ...zero, storedRows: 1000, flushes: 10 };
    const after = { ...before, storedRows: 1500, flushes: 12, copyFallbacks: 1, bufferedRows: 7, bufferedBytes: 900 };
    expect(writerStatsReport(before, after)).toEqual({
      fields: { storedRows: 500, flushes: 2, copyFallbacks: 1, bufferedRows: 7, bufferedBytes: 900 },
      warn: false,
    });
  });

  it("reports a buffer that holds rows even when no counter moved (a stuck writer)", () => {
    expect(writerStatsReport({ ...zero, bufferedRows: 5 }, { ...zero, bufferedRows: 5, bufferedBytes: 320 })).toEqual({
      fields: { bufferedRows: 5, bufferedBytes: 320 },
      warn: false,
    });
  });

  it.each(["droppedOffers", "shedOffers", "rejectedFull", "failedUnavailable", "failedPermanent"] as const)("warns when %s grows", (key) => {
    const report = writerStatsReport(zero, { ...zero, [key]: 3 });
    expect(report).toEqual({ fields: { [key]: 3, bufferedRows: 0, bufferedBytes: 0 }, warn: true });
  });
});

describe("startWriterStatsLog", () => {
  afterEach(() => vi.useRealTimers());

  it("logs once per interval when something changed, as a warning when rows were dropped, and stops", () => {
    vi.useFakeTimers();
    let stats = { ...zero };
    const lines: [string, string, Record<string, unknown> | undefined][] = [];
    const log = {
      debug() {},
      info: (msg: string, f?: Record<string, unknown>) => void lines.push(["info", msg, f]),
      warn: (msg: string, f?: Record<string, unknown>) => void lines.push(["warn", msg, f]),
      error() {},
    };
    const stop = startWriterStatsLog({ stats: () => ({ ...stats }) }, log, 1000);
    vi.advanceTimersByTime(1000);
    expect(lines).toEqual([]); // idle
    stats = { ...stats, storedRows: 40, flushes: 2 };
    vi.advanceTimersByTime(1000);
    stats = { ...stats, droppedOffers: 3 };
    vi.advanceTimersByTime(1000);
    expect(lines).toEqual([
      ["info", "writer stats", { intervalSeconds: 1, storedRows: 40, flushes: 2, bufferedRows: 0, bufferedBytes: 0 }],
      ["warn", "writer stats: rows were dropped, refused or failed", { intervalSeconds: 1, droppedOffers: 3, bufferedRows: 0, bufferedBytes: 0 }],
    ]);
    stop();
    stats = { ...stats, storedRows: 99 };
    vi.advanceTimersByTime(5000);
    expect(lines).toHaveLength(2);
  });
});
