/**
 * Cost of the request-log interceptor: LogDeviceStateChange calls per second over gRPC with 64 in
 * flight against two servers in the same process and database, one with request logging on
 * (every call becomes an `api_request_logs` row) and one with it off (`ANALYTICS_ENABLED=false`),
 * measured alternately. The client runs in its own process (bench/_client.ts).
 *
 * Run: `npm run bench -- interceptor [--seconds 5] [--rounds 5]`.
 * The server's CPU per call is reported too (see bench/unary.ts for why).
 * Last line: `{"calls_per_s_on", "calls_per_s_off", "ratio", "server_cpu_us_per_call_on",
 * "server_cpu_us_per_call_off", "cpu_ratio"}`.
 */
import { numberArg, printResult } from "./_support.js";
import { runBenchClient, serviceToken, startBenchServer } from "./_server.js";

const SECONDS = numberArg("seconds", 5);
const ROUNDS = numberArg("rounds", 5);

const on = await startBenchServer("interceptor");
const off = await startBenchServer("interceptor-off", { analyticsEnabled: false }, { databaseUrl: on.databaseUrl });
try {
  /** Calls/s, and the server process's CPU per call (robust to a client-bound run). */
  const measure = async (s: typeof on) => {
    const token = await serviceToken(s.server);
    const cpu0 = process.cpuUsage();
    const r = await runBenchClient<{ calls_per_s: number; total_calls: number; timed_calls: number; client_cpu_s: number }>({ kind: "unary", baseUrl: s.server.url(), token, seconds: SECONDS, inFlight: 64 });
    const cpu = process.cpuUsage(cpu0);
    return { perS: r.calls_per_s, serverUsPerCall: (cpu.user + cpu.system) / r.total_calls, clientUsPerCall: (r.client_cpu_s * 1e6) / r.timed_calls };
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
  await on.server.writer.flush();
  const [logged] = await on.server.db.orm.em.fork().getConnection().execute<{ n: number }[]>(`select count(*)::int as n from api_request_logs`);
  console.log(`request-log rows written: ${logged!.n}; dropped: ${on.server.writer.stats().droppedOffers}`);
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
