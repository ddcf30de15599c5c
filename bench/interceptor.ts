/**
 * Cost of the request-log interceptor: LogDeviceStateChange calls per second over gRPC with 64 in
 * flight against two servers on the same database, one with request logging on (every call
 * becomes an `api_request_logs` row, and its rollups) and one with it off
 * (`ANALYTICS_ENABLED=false`). The client runs in its own process (bench/_client.ts).
 *
 * Run: `npm run bench -- interceptor [--method interleaved|rounds] [--processes 0|1] [--slices 24]
 * [--seconds N] [--rounds 5] [--control 1]`.
 * - `interleaved` (default): one client calls the servers in turn, in 2-second slices ordered
 *   A B B A A B ..., with 300 ms idle after each; `ratio` is on's calls per second over all its
 *   slices against off's. A neighbour's load that comes and goes on this shared machine lands on
 *   both servers alike (`rounds` gave 0.91-1.06 for the same code on one day).
 * - `rounds`: the method of sessions 1-9, kept to compare with their figures: a new client
 *   process per server per round, `--rounds` rounds of `--seconds` (5) each; medians.
 * - `--control 1`: the "on" server starts with request logging off too: an A/A run, whose ratio
 *   shows the method's own noise (a ratio of 1 but for it).
 * - `--processes 1` (default for `interleaved`): each server in a process of its own, started as
 *   `npm start` starts it, its CPU read from /proc; `--processes 0` (default for `rounds`): both
 *   servers in the benchmark's process, sharing its heap and garbage collections.
 * The server's CPU per call is reported too (see bench/unary.ts for why).
 * Last line: `{"calls_per_s_on", "calls_per_s_off", "ratio", "server_cpu_us_per_call_on",
 * "server_cpu_us_per_call_off", "cpu_ratio"}`, and for `interleaved` the spread of the
 * ratios of the A B / B A pairs (`pair_ratio_p25`, `pair_ratio_median`, `pair_ratio_p75`).
 */
import pg from "pg";
import { benchDatabase, numberArg, printResult, stringArg } from "./_support.js";
import { runBenchClient, serviceToken, startBenchServer, startServerProcess } from "./_server.js";

const METHOD = stringArg("method") ?? "interleaved";
if (METHOD !== "interleaved" && METHOD !== "rounds") throw new Error("--method is interleaved or rounds");
const SECONDS = numberArg("seconds", METHOD === "rounds" ? 5 : 2);
const ROUNDS = numberArg("rounds", 5);
const SLICES = numberArg("slices", 24);
const PROCESSES = numberArg("processes", METHOD === "rounds" ? 0 : 1) !== 0;
const CONTROL = numberArg("control", 0) !== 0;
/** The "on" server's settings: request logging on, unless this is a control run. */
const ON_CONFIG = CONTROL ? { analyticsEnabled: false } : {};

/** A server to call: its URL, a service token, and (in its own process) its pid. */
interface Target {
  readonly url: string;
  readonly token: string;
  readonly pid: number;
  readonly loggedRows: () => Promise<{ written: number; dropped: number | null }>;
  close(): Promise<void>;
}

async function inProcess(): Promise<[Target, Target]> {
  const on = await startBenchServer("interceptor", ON_CONFIG);
  const off = await startBenchServer("interceptor-off", { analyticsEnabled: false }, { databaseUrl: on.databaseUrl });
  const target = async (s: typeof on): Promise<Target> => ({
    url: s.server.url(),
    token: await serviceToken(s.server),
    pid: process.pid,
    loggedRows: async () => {
      await s.server.writer.flush();
      const [logged] = await s.server.db.orm.em.fork().getConnection().execute<{ n: number }[]>(`select count(*)::int as n from api_request_logs`);
      return { written: logged!.n, dropped: s.server.writer.stats().droppedOffers };
    },
    close: () => s.close(),
  });
  return [await target(on), await target(off)];
}

async function ownProcesses(): Promise<[Target, Target]> {
  const database = await benchDatabase("interceptor");
  const on = await startServerProcess("interceptor", database.url, ON_CONFIG);
  const off = await startServerProcess("interceptor-off", database.url, { analyticsEnabled: false });
  const sql = new pg.Client({ connectionString: database.url });
  await sql.connect();
  return [
    {
      ...on,
      loggedRows: async () => {
        await new Promise((r) => setTimeout(r, 500)); // the request log flushes every 200 ms
        return { written: (await sql.query<{ n: number }>(`select count(*)::int as n from api_request_logs`)).rows[0]!.n, dropped: null };
      },
      close: async () => {
        await on.close();
        await sql.end();
        await database.drop();
      },
    },
    { ...off, loggedRows: async () => ({ written: 0, dropped: null }), close: () => off.close() },
  ];
}

const [on, off] = PROCESSES ? await ownProcesses() : await inProcess();
/** The median and quartiles of `xs`. */
const quantile = (xs: number[], q: number) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) * q)]!;
try {
  const figures = METHOD === "interleaved" ? await interleaved() : await rounds();
  const logged = await on.loggedRows();
  console.log(`request-log rows written: ${logged.written}; dropped: ${logged.dropped ?? "(not known: another process)"}`);
  printResult(figures);
} finally {
  await off.close();
  await on.close();
}

async function interleaved(): Promise<Record<string, number>> {
  type Slice = { target: number; calls: number; seconds: number; server_cpu_s: number };
  const { slices } = await runBenchClient<{ slices: Slice[] }>({
    kind: "unary-interleaved",
    targets: [off, on].map((t) => ({ baseUrl: t.url, token: t.token, serverPid: t.pid })),
    slices: SLICES,
    seconds: SECONDS,
    inFlight: 64,
    gapMs: 300,
  });
  const of = (target: number) => slices.filter((x) => x.target === target);
  const total = (xs: Slice[], k: "calls" | "seconds" | "server_cpu_s") => xs.reduce((a, x) => a + x[k], 0);
  const [offS, onS] = [of(0), of(1)];
  const pairRatios: number[] = [];
  for (let i = 0; i + 1 < slices.length; i += 2) {
    const [a, b] = [slices[i]!, slices[i + 1]!];
    const [o, f] = a.target === 1 ? [a, b] : [b, a];
    pairRatios.push(o.calls / o.seconds / (f.calls / f.seconds));
    console.log(
      `pair ${i / 2 + 1}: on ${Math.round(o.calls / o.seconds)} calls/s (server ${((o.server_cpu_s * 1e6) / o.calls).toFixed(0)} µs CPU/call), ` +
        `off ${Math.round(f.calls / f.seconds)} calls/s (server ${((f.server_cpu_s * 1e6) / f.calls).toFixed(0)} µs CPU/call)`,
    );
  }
  const onPerS = total(onS, "calls") / total(onS, "seconds");
  const offPerS = total(offS, "calls") / total(offS, "seconds");
  const onUs = (total(onS, "server_cpu_s") * 1e6) / total(onS, "calls");
  const offUs = (total(offS, "server_cpu_s") * 1e6) / total(offS, "calls");
  return {
    ...figures(onPerS, offPerS, onUs, offUs),
    pair_ratio_p25: Number(quantile(pairRatios, 0.25).toFixed(3)),
    pair_ratio_median: Number(quantile(pairRatios, 0.5).toFixed(3)),
    pair_ratio_p75: Number(quantile(pairRatios, 0.75).toFixed(3)),
  };
}

async function rounds(): Promise<Record<string, number>> {
  /** Calls/s, and the server's CPU per call (robust to a client-bound run). */
  const measure = async (s: Target) => {
    const cpu0 = process.cpuUsage();
    const r = await runBenchClient<{ calls_per_s: number; total_calls: number; timed_calls: number; client_cpu_s: number; server_cpu_s: number | null }>({
      kind: "unary",
      baseUrl: s.url,
      token: s.token,
      seconds: SECONDS,
      inFlight: 64,
      ...(PROCESSES ? { serverPid: s.pid } : {}),
    });
    const cpu = process.cpuUsage(cpu0);
    const serverUsPerCall = r.server_cpu_s === null ? (cpu.user + cpu.system) / r.total_calls : (r.server_cpu_s * 1e6) / r.timed_calls;
    return { perS: r.calls_per_s, serverUsPerCall, clientUsPerCall: (r.client_cpu_s * 1e6) / r.timed_calls };
  };
  const onRuns: { perS: number; serverUsPerCall: number }[] = [];
  const offRuns: { perS: number; serverUsPerCall: number }[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    offRuns.push(await measure(off));
    onRuns.push(await measure(on));
    const [a, b] = [onRuns.at(-1)!, offRuns.at(-1)!];
    console.log(
      `round ${r + 1}: on ${Math.round(a.perS)} calls/s (server ${a.serverUsPerCall.toFixed(0)} µs CPU/call), ` +
        `off ${Math.round(b.perS)} calls/s (server ${b.serverUsPerCall.toFixed(0)} µs CPU/call)`,
    );
  }
  // Medians of alternating rounds: one noisy round does not decide the ratio.
  const med = (xs: number[]) => quantile(xs, 0.5);
  const onPerS = med(onRuns.map((x) => x.perS));
  const offPerS = med(offRuns.map((x) => x.perS));
  const onUs = med(onRuns.map((x) => x.serverUsPerCall));
  const offUs = med(offRuns.map((x) => x.serverUsPerCall));
  return figures(onPerS, offPerS, onUs, offUs);
}

/** The figures both methods report, from calls per second and server CPU µs per call. */
function figures(onPerS: number, offPerS: number, onUs: number, offUs: number): Record<string, number> {
  return {
    calls_per_s_on: Math.round(onPerS),
    calls_per_s_off: Math.round(offPerS),
    ratio: Number((onPerS / offPerS).toFixed(3)),
    server_cpu_us_per_call_on: Math.round(onUs),
    server_cpu_us_per_call_off: Math.round(offUs),
    cpu_ratio: Number((offUs / onUs).toFixed(3)),
  };
}
