/**
 * Unary Log* calls per second over gRPC with 64 in flight, against the real server, and the same
 * server with an empty LogDeviceStateChange handler (same port, protocols, interceptors, auth) in
 * the same run: `ratio_to_empty` is what storing durably costs on top of the per-call work of
 * Connect and our interceptors. The client runs in its own process (bench/_client.ts).
 *
 * Run: `npm run bench -- unary [--seconds 5] [--rounds 2]`.
 * Last line: `{"calls_per_s": number, "calls_per_s_empty": number, "ratio_to_empty": number}`.
 */
import { create } from "@bufbuild/protobuf";
import { LogDeviceStateChangeResponseSchema } from "../sdk/src/gen/analytics/v1/analytics_service_pb.js";
import { numberArg, printResult } from "./_support.js";
import { runBenchClient, serviceToken, startBenchServer } from "./_server.js";

const SECONDS = numberArg("seconds", 5);
const ROUNDS = numberArg("rounds", 2);

const real = await startBenchServer("unary");
const empty = await startBenchServer("unary-empty", {}, {
  databaseUrl: real.databaseUrl,
  analyticsOverrides: { logDeviceStateChange: () => create(LogDeviceStateChangeResponseSchema, {}) },
});
try {
  const measure = async (s: typeof real) =>
    (await runBenchClient<{ calls_per_s: number }>({ kind: "unary", baseUrl: s.server.url(), token: await serviceToken(s.server), seconds: SECONDS, inFlight: 64 }))
      .calls_per_s;
  let best = 0;
  let bestEmpty = 0;
  for (let r = 0; r < ROUNDS; r++) {
    bestEmpty = Math.max(bestEmpty, await measure(empty));
    best = Math.max(best, await measure(real));
    console.log(`round ${r + 1}: real ${Math.round(best)} calls/s, empty ${Math.round(bestEmpty)} calls/s (best so far)`);
  }
  printResult({ calls_per_s: Math.round(best), calls_per_s_empty: Math.round(bestEmpty), ratio_to_empty: Number((best / bestEmpty).toFixed(3)) });
} finally {
  await empty.close();
  await real.close();
}
