/**
 * Unary Log* calls per second over gRPC with 64 in flight, against the real server, and the same
 * server with an empty LogDeviceStateChange handler (same port, protocols, interceptors, auth) in
 * the same run: `ratio_to_empty` is what storing durably costs on top of the per-call work of
 * Connect and our interceptors. The client runs in its own process (bench/_client.ts).
 *
 * Run: `npm run bench -- unary [--seconds 5] [--rounds 5] [--writer-delay-ms 5]`.
 * The server's CPU per call is reported too: when one client process cannot saturate the server,
 * throughput compares clients, and the CPU ratio is what the server pays for the real handler.
 * Last line: `{"calls_per_s", "calls_per_s_empty", "ratio_to_empty", "server_cpu_us_per_call",
 * "server_cpu_us_per_call_empty", "cpu_ratio_to_empty"}`.
 */
import { create } from "@bufbuild/protobuf";
import { LogDeviceStateChangeResponseSchema } from "../sdk/src/gen/analytics/v1/analytics_service_pb.js";
import { numberArg, printResult } from "./_support.js";
import { runBenchClient, serviceToken, startBenchServer } from "./_server.js";

const SECONDS = numberArg("seconds", 5);
const ROUNDS = numberArg("rounds", 5);
const DELAY = numberArg("writer-delay-ms", 5);

const real = await startBenchServer("unary", { writerMaxDelayMs: DELAY });
const empty = await startBenchServer("unary-empty", {}, {
  databaseUrl: real.databaseUrl,
  analyticsOverrides: { logDeviceStateChange: () => create(LogDeviceStateChangeResponseSchema, {}) },
});
try {
  /** Calls/s, and the server process's CPU per call (robust to a client-bound run). */
  const measure = async (s: typeof real) => {
    const token = await serviceToken(s.server);
    const cpu0 = process.cpuUsage();
    const r = await runBenchClient<{ calls_per_s: number; total_calls: number; timed_calls: number; client_cpu_s: number }>({ kind: "unary", baseUrl: s.server.url(), token, seconds: SECONDS, inFlight: 64 });
    const cpu = process.cpuUsage(cpu0);
    return { perS: r.calls_per_s, serverUsPerCall: (cpu.user + cpu.system) / r.total_calls, clientUsPerCall: (r.client_cpu_s * 1e6) / r.timed_calls };
  };
  const realRuns: Awaited<ReturnType<typeof measure>>[] = [];
  const emptyRuns: Awaited<ReturnType<typeof measure>>[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const e = await measure(empty);
    const x = await measure(real);
    emptyRuns.push(e);
    realRuns.push(x);
    console.log(
      `round ${r + 1}: real ${Math.round(x.perS)} calls/s (server ${x.serverUsPerCall.toFixed(0)} µs CPU/call), ` +
        `empty ${Math.round(e.perS)} calls/s (server ${e.serverUsPerCall.toFixed(0)} µs CPU/call); client ${x.clientUsPerCall.toFixed(0)} µs CPU/call`,
    );
  }
  // Medians of alternating rounds: one noisy round does not decide the ratio.
  const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const perS = med(realRuns.map((x) => x.perS));
  const perSEmpty = med(emptyRuns.map((x) => x.perS));
  const us = med(realRuns.map((x) => x.serverUsPerCall));
  const usEmpty = med(emptyRuns.map((x) => x.serverUsPerCall));
  printResult({
    calls_per_s: Math.round(perS),
    calls_per_s_empty: Math.round(perSEmpty),
    ratio_to_empty: Number((perS / perSEmpty).toFixed(3)),
    server_cpu_us_per_call: Math.round(us),
    server_cpu_us_per_call_empty: Math.round(usEmpty),
    cpu_ratio_to_empty: Number((usEmpty / us).toFixed(3)),
  });
} finally {
  await empty.close();
  await real.close();
}
