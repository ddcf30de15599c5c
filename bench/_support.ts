/**
 * Shared pieces of the benchmark programs: a throwaway PostgreSQL database, argument parsing,
 * raw COPY as the baseline every write benchmark is compared with, and result printing.
 */
import { readdir, readFile } from "node:fs/promises";
import { pipeline } from "node:stream/promises";
import { Readable } from "node:stream";
import pg from "pg";
import { from as copyFrom } from "pg-copy-streams";
import { copyText } from "../src/wire/copy-text.js";

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

/** `--name value` from argv, as given; undefined when absent. */
export function stringArg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i < 0 ? undefined : process.argv[i + 1];
}

/** `--name value` from argv, as a number. */
export function numberArg(name: string, fallback: number): number {
  const given = stringArg(name);
  if (given === undefined) return fallback;
  const v = Number(given);
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
  const fields = await statFields(pid);
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (USER_HZ = 100)
}

/** The fields of /proc/PID/stat after the command name (which is in parentheses and may hold spaces). */
async function statFields(pid: number | string): Promise<string[]> {
  const stat = await readFile(`/proc/${pid}/stat`, "utf8");
  return stat.slice(stat.lastIndexOf(")") + 2).split(" ");
}

/**
 * CPU seconds the local PostgreSQL server has used: every process named `postgres` (the
 * postmaster, backends, WAL writer, checkpointer, autovacuum), plus what the postmaster's
 * children used before they exited (a COPY's connection ends with its backend). Undefined when
 * the server is not on this machine. The difference over a window is PostgreSQL's share of it:
 * with the service's own CPU it tells whether a write path is bound by the machine's cores.
 */
export async function postgresCpuSeconds(): Promise<number | undefined> {
  const processes = new Map<string, string[]>();
  for (const pid of await readdir("/proc").catch(() => [] as string[])) {
    if (!/^\d+$/.test(pid)) continue;
    // `comm` is "postgres" for every server process (their titles are set in argv, not comm).
    if (!(await readFile(`/proc/${pid}/comm`, "utf8").catch(() => "")).startsWith("postgres")) continue;
    const fields = await statFields(pid).catch(() => undefined);
    if (fields !== undefined) processes.set(pid, fields);
  }
  if (processes.size === 0) return undefined;
  let ticks = 0;
  for (const fields of processes.values()) {
    ticks += Number(fields[11]) + Number(fields[12]); // utime, stime
    // The postmaster (whose parent is not a server process) also holds what its exited children used.
    if (!processes.has(fields[1]!)) ticks += Number(fields[13]) + Number(fields[14]); // cutime, cstime
  }
  return ticks / 100;
}

/** The machine's CPU time in clock ticks from /proc/stat: all of it, and what the hypervisor stole. */
export interface MachineTicks {
  readonly total: number;
  readonly steal: number;
}

/** The machine's CPU ticks now (Linux), or undefined elsewhere. */
export async function machineTicks(): Promise<MachineTicks | undefined> {
  const stat = await readFile("/proc/stat", "utf8").catch(() => undefined);
  const cpu = stat?.split("\n", 1)[0]?.split(/\s+/).slice(1).map(Number);
  if (cpu === undefined || cpu.length < 8) return undefined;
  // user nice system idle iowait irq softirq steal (guest time is already in user and nice).
  return { total: cpu.slice(0, 8).reduce((a, b) => a + b, 0), steal: cpu[7]! };
}

/**
 * The share of the machine's CPU time the hypervisor gave to other guests between `from` and `to`
 * (null off Linux): on a shared virtual machine a high share means the run was slowed from outside,
 * unevenly between the runs a ratio compares.
 */
export function stealShare(from: MachineTicks | undefined, to: MachineTicks | undefined): number | null {
  if (from === undefined || to === undefined || to.total === from.total) return null;
  return (to.steal - from.steal) / (to.total - from.total);
}
