/**
 * Unary Log* calls per second over gRPC with 64 in flight, against the real server, and the same
 * server with an empty LogDeviceStateChange handler (same port, protocols, interceptors, auth) in
 * the same run: `ratio_to_empty` is what storing durably costs on top of Connect's own per-call work.
 *
 * Run: `npm run bench -- unary [--seconds 5] [--rounds 2]`.
 * Last line: `{"calls_per_s": number, "calls_per_s_empty": number, "ratio_to_empty": number}`.
 */
import { create } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { AnalyticsService, LogDeviceStateChangeResponseSchema } from "../sdk/src/gen/analytics/v1/analytics_service_pb.js";
import { callsPerSecond, numberArg, printResult } from "./_support.js";
import { startBenchServer } from "./_server.js";

const SECONDS = numberArg("seconds", 5);
const ROUNDS = numberArg("rounds", 2);
const IN_FLIGHT = 64;

const real = await startBenchServer("unary");
const empty = await startBenchServer("unary-empty", {}, {
  databaseUrl: real.databaseUrl,
  analyticsOverrides: { logDeviceStateChange: () => create(LogDeviceStateChangeResponseSchema, {}) },
});
try {
  let n = 0;
  const call = (transport: typeof real.transport) => {
    const client = createClient(AnalyticsService, transport);
    return () => client.logDeviceStateChange({ deviceId: `device-${n++ % 1000}`, previousState: "online", newState: "offline", reason: "bench" });
  };
  let best = 0;
  let bestEmpty = 0;
  for (let r = 0; r < ROUNDS; r++) {
    bestEmpty = Math.max(bestEmpty, await callsPerSecond(SECONDS, IN_FLIGHT, call(empty.transport)));
    best = Math.max(best, await callsPerSecond(SECONDS, IN_FLIGHT, call(real.transport)));
    console.log(`round ${r + 1}: real ${Math.round(best)} calls/s, empty ${Math.round(bestEmpty)} calls/s (best so far)`);
  }
  printResult({ calls_per_s: Math.round(best), calls_per_s_empty: Math.round(bestEmpty), ratio_to_empty: Number((best / bestEmpty).toFixed(3)) });
} finally {
  await empty.close();
  await real.close();
}
