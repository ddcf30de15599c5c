/**
 * Insert strategies on real PostgreSQL, all on the same rows of `job_outcomes` (13 columns, a
 * jsonb among them, three indexes), each into an emptied table:
 * - `multi-row`: 1000-row `INSERT ... VALUES` statements with the idempotency clause, one
 *   transaction per batch (what the writer does with `ANALYTICS_WRITER_STRATEGY=multi-row`);
 * - `unnest`: the same batches as `INSERT ... SELECT FROM unnest(...)`;
 * - `writer`: the BatchWriter itself with its strategy on a real server (COPY per flush, redone
 *   with `unnest` only when a row is already stored), fed 1000-row durable writes, 8 in flight;
 * - `writer-unnest`: the same with `unnest`, the strategy on the embedded database;
 * - `copy`: raw COPY through pg-copy-streams, the baseline (no idempotency, no RETURNING).
 * `copy_ratio` = the median over rounds of writer / copy, each round measuring both back to back;
 * `rows_per_s` holds each strategy's median.
 *
 * Run: `npm run bench -- writer [--rows 100000] [--repeat 5] [--batch 1000] [--concurrency 2]`
 * (the last two tune the writer under test; the raw strategies always use 1000-row batches).
 * Last line: `{"rows_per_s": {...}, "copy_ratio": number}`.
 */
import { openDatabase } from "../src/db/database.js";
import { loadConfig, writerStrategyOf } from "../src/config.js";
import { BatchWriter, DEFAULT_WRITER_OPTIONS, type Row } from "../src/storage/batch-writer.js";
import { ormConnectionSource } from "../src/db/sql-runner.js";
import { insertStatements, type InsertStrategy } from "../src/storage/insert-sql.js";
import { tableSpecs } from "../src/storage/table-specs.js";
import { silentLogger } from "../src/util/logger.js";
import { uuidV7 } from "../src/util/uuid-v7.js";
import { benchDatabase, copyRowsPerSecond, median, numberArg, printResult } from "./_support.js";

const ROWS = numberArg("rows", 100_000);
const REPEAT = numberArg("repeat", 5);
const WRITER_BATCH = numberArg("batch", DEFAULT_WRITER_OPTIONS.batchRows);
const WRITER_CONCURRENCY = numberArg("concurrency", DEFAULT_WRITER_OPTIONS.flushConcurrency);
const BATCH = 1000;

const bench = await benchDatabase("writer");
const db = await openDatabase({ ...loadConfig({}), databaseUrl: bench.url, dbPoolMax: 10 }, silentLogger);
try {
  const spec = tableSpecs(db.orm).job_outcomes;
  const source = ormConnectionSource(db.orm.em);
  const base = Date.now() - 3600_000;
  const rows: Row[] = Array.from({ length: ROWS }, (_, i) => ({
    id: uuidV7(base + i),
    event_id: null,
    occurred_at: new Date(base + i),
    job_id: `job-${i}`,
    job_type: ["restart", "firmware_update", "config_push", "diagnostics"][i % 4],
    status: i % 10 === 0 ? "failed" : "success",
    device_id: `device-${i % 5000}`,
    duration_ms: (i * 37) % 60_000,
    error_code: i % 10 === 0 ? "E_TIMEOUT" : null,
    error_message: i % 10 === 0 ? "device did not answer in time" : null,
    retry_count: i % 3,
    initiated_by: "scheduler",
    extra_data: { attempt: i % 3, region: "eu-west" },
  }));
  const values = rows.map((r) => spec.columns.map((c) => (c.json && r[c.name] != null ? JSON.stringify(r[c.name]) : (r[c.name] ?? c.fallback))));

  const truncate = async () => {
    await db.orm.em.fork().getConnection().execute(`truncate "job_outcomes"`);
  };

  const raw = (strategy: Exclude<InsertStrategy, "copy">) => async () => {
    await truncate();
    const client = await source.acquire();
    try {
      const started = performance.now();
      for (let i = 0; i < values.length; i += BATCH) {
        await client.query("begin");
        for (const stmt of insertStatements(spec, values.slice(i, i + BATCH), strategy)) await client.query(stmt.sql, stmt.params);
        await client.query("commit");
      }
      return ROWS / ((performance.now() - started) / 1000);
    } finally {
      await source.release(client);
    }
  };

  const viaWriter = (strategy: InsertStrategy) => async () => {
    await truncate();
    const writer = new BatchWriter({
      specs: tableSpecs(db.orm),
      source,
      log: silentLogger,
      options: { maxBufferedRows: 1_000_000, batchRows: WRITER_BATCH, flushConcurrency: WRITER_CONCURRENCY, strategy },
    });
    const started = performance.now();
    const inFlight = new Set<Promise<unknown>>();
    for (let i = 0; i < rows.length; i += BATCH) {
      const p = writer.write("job_outcomes", rows.slice(i, i + BATCH)).finally(() => inFlight.delete(p));
      inFlight.add(p);
      if (inFlight.size >= 8) await Promise.race(inFlight);
    }
    await Promise.all(inFlight);
    const rate = ROWS / ((performance.now() - started) / 1000);
    await writer.close();
    return rate;
  };

  const copy = async () => {
    await truncate();
    return copyRowsPerSecond(bench.url, "job_outcomes", spec.columns.map((c) => c.name), values);
  };

  const runs: Record<string, number[]> = {};
  const ratios: number[] = [];
  // Alternate strategies round by round, COPY right before the writer, so a noisy neighbour
  // hurts both sides of each round's ratio alike; report medians.
  for (let r = 0; r < REPEAT; r++) {
    for (const [name, run] of [
      ["copy", copy],
      ["writer", viaWriter(writerStrategyOf({ writerStrategy: undefined, databaseUrl: bench.url }))],
      ["multi-row", raw("multi-row")],
      ["unnest", raw("unnest")],
      ["writer-unnest", viaWriter("unnest")],
    ] as const) {
      const rate = await run();
      (runs[name] ??= []).push(rate);
      console.log(`round ${r + 1} ${name}: ${Math.round(rate)} rows/s`);
    }
    ratios.push(runs.writer!.at(-1)! / runs.copy!.at(-1)!);
    console.log(`round ${r + 1} writer / copy: ${ratios.at(-1)!.toFixed(3)}`);
  }
  const rowsPerS = Object.fromEntries(Object.entries(runs).map(([k, v]) => [k, Math.round(median(v))]));
  printResult({ rows_per_s: rowsPerS, copy_ratio: Number(median(ratios).toFixed(3)) });
} finally {
  await db.close();
  await bench.drop();
}
