/**
 * Cost of the request-log interceptor: LogDeviceStateChange calls per second over gRPC with 64 in
 * flight against two servers in the same process and database, one with request logging on
 * (every call becomes an `api_request_logs` row) and one with it off (`ANALYTICS_ENABLED=false`).
 *
 * Run: `npm run bench -- interceptor [--seconds 5] [--rounds 2]`.
 * Last line: `{"calls_per_s_on": number, "calls_per_s_off": number, "ratio": number}`.
 */
import { createClient } from "@connectrpc/connect";
import { AnalyticsService } from "../sdk/src/gen/analytics/v1/analytics_service_pb.js";
import { callsPerSecond, numberArg, printResult } from "./_support.js";
import { startBenchServer } from "./_server.js";

const SECONDS = numberArg("seconds", 5);
const ROUNDS = numberArg("rounds", 2);

const on = await startBenchServer("interceptor");
const off = await startBenchServer("interceptor-off", { analyticsEnabled: false }, { databaseUrl: on.databaseUrl });
try {
  let n = 0;
  const call = (transport: typeof on.transport) => {
    const client = createClient(AnalyticsService, transport);
    return () => client.logDeviceStateChange({ deviceId: `device-${n++ % 1000}`, newState: "online" });
  };
  let bestOn = 0;
  let bestOff = 0;
  for (let r = 0; r < ROUNDS; r++) {
    bestOff = Math.max(bestOff, await callsPerSecond(SECONDS, 64, call(off.transport)));
    bestOn = Math.max(bestOn, await callsPerSecond(SECONDS, 64, call(on.transport)));
    console.log(`round ${r + 1}: on ${Math.round(bestOn)} calls/s, off ${Math.round(bestOff)} calls/s (best so far)`);
  }
  await on.server.writer.flush();
  const [logged] = await on.server.db.orm.em.fork().getConnection().execute<{ n: number }[]>(`select count(*)::int as n from api_request_logs`);
  console.log(`request-log rows written: ${logged!.n}; dropped: ${on.server.writer.stats().droppedOffers}`);
  printResult({ calls_per_s_on: Math.round(bestOn), calls_per_s_off: Math.round(bestOff), ratio: Number((bestOn / bestOff).toFixed(3)) });
} finally {
  await off.close();
  await on.close();
}
