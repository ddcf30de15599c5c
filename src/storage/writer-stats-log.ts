/**
 * The batch writer's counters as a periodic log line, so operators see what the writer did:
 * rows stored, request-log rows dropped (`droppedOffers`: buffer full; `shedOffers`: unauthenticated
 * calls' rows over their share), durable writes refused or failed, COPY batches redone,
 * and what is buffered now. One line per interval, only when something changed; at `warn` when
 * rows were dropped, refused or failed.
 */
import type { Logger } from "../util/logger.js";
import type { WriterStats } from "./batch-writer.js";

/** Counters that only grow; reported as the change over the interval. */
const COUNTERS = [
  "storedRows",
  "flushes",
  "retries",
  "copyFallbacks",
  "droppedOffers",
  "shedOffers",
  "rejectedFull",
  "failedUnavailable",
  "failedPermanent",
] as const satisfies readonly (keyof WriterStats)[];

/** Counters whose growth means data was refused or lost: the line is a warning. */
const TROUBLE = new Set<keyof WriterStats>(["droppedOffers", "shedOffers", "rejectedFull", "failedUnavailable", "failedPermanent"]);

/** One interval's report: the counters' changes and the buffer now, and whether it warns. */
export interface WriterStatsReport {
  readonly fields: Record<string, number>;
  readonly warn: boolean;
}

/**
 * What changed between two snapshots (pure). Counters are deltas over the interval; the buffer
 * (`bufferedRows`, `bufferedBytes`) is its current size. `undefined` when no counter moved and the
 * buffer is empty: an idle server writes no line.
 */
export function writerStatsReport(previous: WriterStats, current: WriterStats): WriterStatsReport | undefined {
  const fields: Record<string, number> = {};
  let warn = false;
  for (const key of COUNTERS) {
    const delta = current[key] - previous[key];
    if (delta === 0) continue;
    fields[key] = delta;
    if (TROUBLE.has(key)) warn = true;
  }
  if (Object.keys(fields).length === 0 && current.bufferedRows === 0) return undefined;
  fields.bufferedRows = current.bufferedRows;
  fields.bufferedBytes = current.bufferedBytes;
  return { fields, warn };
}

/** Logs `writerStatsReport` every `intervalMs`; returns the function that stops it. */
export function startWriterStatsLog(writer: { stats(): WriterStats }, log: Logger, intervalMs: number): () => void {
  let previous = writer.stats();
  const timer = setInterval(() => {
    const current = writer.stats();
    const report = writerStatsReport(previous, current);
    previous = current;
    if (!report) return;
    const fields = { intervalSeconds: intervalMs / 1000, ...report.fields };
    if (report.warn) log.warn("writer stats: rows were dropped, refused or failed", fields);
    else log.info("writer stats", fields);
  }, intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}
