/**
 * Shared pieces of the benchmark programs: a throwaway PostgreSQL database, argument parsing,
 * raw COPY as the baseline every write benchmark is compared with, and result printing.
 */
import { readFile } from "node:fs/promises";
import { pipeline } from "node:stream/promises";
import { Readable } from "node:stream";
import pg from "pg";
import { from as copyFrom } from "pg-copy-streams";
import { copyText } from "../src/storage/copy-text.js";

/** The PostgreSQL server benchmarks run against (`DATABASE_URL`, else the local one). */
export const BENCH_SERVER_URL = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";

/** Creates a fresh database for one benchmark run; `drop()` removes it. */
export async function benchDatabase(name: string): Promise<{ url: string; drop(): Promise<void> }> {
  const db = `analytics_bench_${name.replace(/\W/g, "_")}_${process.pid}`;
  const admin = new pg.Client({ connectionString: BENCH_SERVER_URL });
  await admin.connect();
  await admin.query(`drop database if exists "${db}" with (force)`);
  await admin.query(`create database "${db}"`);
  await admin.end();
  const url = new URL(BENCH_SERVER_URL);
  url.pathname = `/${db}`;
  return {
    url: url.toString(),
    async drop() {
      const c = new pg.Client({ connectionString: BENCH_SERVER_URL });
      await c.connect();
      await c.query(`drop database if exists "${db}" with (force)`);
      await c.end();
    },
  };
}

/** `--name value` from argv, as a number. */
export function numberArg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return fallback;
  const v = Number(process.argv[i + 1]);
  if (!Number.isFinite(v)) throw new Error(`--${name} needs a number`);
  return v;
}

/**
 * Raw COPY of `rows` (values in `columns` order) into `table` through node-postgres and
 * pg-copy-streams: the fastest way to load rows from Node, our baseline. Returns rows/s.
 */
export async function copyRowsPerSecond(url: string, table: string, columns: readonly string[], rows: readonly (readonly unknown[])[]): Promise<number> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const started = performance.now();
    const stream = client.query(copyFrom(`copy "${table}" (${columns.map((c) => `"${c}"`).join(", ")}) from stdin`));
    const chunkRows = 1000;
    async function* lines() {
      for (let i = 0; i < rows.length; i += chunkRows) {
        yield copyText(rows.slice(i, i + chunkRows));
      }
    }
    await pipeline(Readable.from(lines()), stream);
    return rows.length / ((performance.now() - started) / 1000);
  } finally {
    await client.end();
  }
}

/** Median of a list of numbers. */
export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Prints the figures as the last line (the contract of every benchmark). */
export function printResult(figures: Record<string, unknown>): void {
  console.log(JSON.stringify(figures));
}

/** Keeps `inFlight` calls running for `seconds`; returns completed calls per second. */
export async function callsPerSecond(seconds: number, inFlight: number, call: () => Promise<unknown>): Promise<number> {
  const deadline = performance.now() + seconds * 1000;
  let done = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (performance.now() < deadline) {
        await call();
        done++;
      }
    }),
  );
  return done / ((performance.now() - started) / 1000);
}

/**
 * CPU seconds (user + system) process `pid` has used, from /proc (Linux): on a shared machine the
 * wall-clock rate moves with the neighbours' load, the CPU cost per item much less.
 */
export async function processCpuSeconds(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, "utf8");
  // Fields after the command name, which is in parentheses and may contain spaces.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (USER_HZ = 100)
}
