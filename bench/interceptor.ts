/**
 * Cost of the request-log interceptor: LogDeviceStateChange calls per second over gRPC with 64 in
 * flight against two servers in the same process and database, one with request logging on
 * (every call becomes an `api_request_logs` row) and one with it off (`ANALYTICS_ENABLED=false`),
 * measured alternately. The client runs in its own process (bench/_client.ts).
 *
 * Run: `npm run bench -- interceptor [--seconds 5] [--rounds 5] [--processes 1]`.
 * The server's CPU per call is reported too (see bench/unary.ts for why).
 * Last line: `{"calls_per_s_on", "calls_per_s_off", "ratio", "server_cpu_us_per_call_on",
 * "server_cpu_us_per_call_off", "cpu_ratio"}`.
 */
import pg from "pg";
import { benchDatabase, numberArg, printResult } from "./_support.js";
import { runBenchClient, serviceToken, startBenchServer, startServerProcess } from "./_server.js";

const SECONDS = numberArg("seconds", 5);
const ROUNDS = numberArg("rounds", 5);
/**
 * `--processes 1`: each server in a process of its own, started as `npm start` starts it (as
 * `log-events` runs them), its CPU read from /proc over the timed calls only. By default both
 * servers share the benchmark's process, heap and garbage collections, as in every earlier run.
 */
const PROCESSES = numberArg("processes", 0) !== 0;

/** A server to call: its URL, a service token, and (in its own process) its pid. */
interface Target {
  readonly url: string;
  readonly token: string;
  readonly pid?: number;
  readonly loggedRows: () => Promise<{ written: number; dropped: number | null }>;
  close(): Promise<void>;
}

async function inProcess(): Promise<[Target, Target]> {
  const on = await startBenchServer("interceptor");
  const off = await startBenchServer("interceptor-off", { analyticsEnabled: false }, { databaseUrl: on.databaseUrl });
  const target = async (s: typeof on): Promise<Target> => ({
    url: s.server.url(),
    token: await serviceToken(s.server),
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
  const on = await startServerProcess("interceptor", database.url);
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
try {
  /** Calls/s, and the server's CPU per call (robust to a client-bound run). */
  const measure = async (s: Target) => {
    const cpu0 = process.cpuUsage();
    const r = await runBenchClient<{ calls_per_s: number; total_calls: number; timed_calls: number; client_cpu_s: number; server_cpu_s: number | null }>({
      kind: "unary",
      baseUrl: s.url,
      token: s.token,
      seconds: SECONDS,
      inFlight: 64,
      ...(s.pid === undefined ? {} : { serverPid: s.pid }),
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
  const logged = await on.loggedRows();
  console.log(`request-log rows written: ${logged.written}; dropped: ${logged.dropped ?? "(not known: another process)"}`);
  // Medians of alternating rounds: one noisy round does not decide the ratio.
  const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const onPerS = med(onRuns.map((x) => x.perS));
  const offPerS = med(offRuns.map((x) => x.perS));
  const onUs = med(onRuns.map((x) => x.serverUsPerCall));
  const offUs = med(offRuns.map((x) => x.serverUsPerCall));
  printResult({
    calls_per_s_on: Math.round(onPerS),
    calls_per_s_off: Math.round(offPerS),
    ratio: Number((onPerS / offPerS).toFixed(3)),
    server_cpu_us_per_call_on: Math.round(onUs),
    server_cpu_us_per_call_off: Math.round(offUs),
    cpu_ratio: Number((offUs / onUs).toFixed(3)),
  });
} finally {
  await off.close();
  await on.close();
}
