/**
 * Cost of the request-log interceptor: LogDeviceStateChange calls per second over gRPC with 64 in
 * flight against two servers in the same process and database, one with request logging on
 * (every call becomes an `api_request_logs` row) and one with it off (`ANALYTICS_ENABLED=false`),
 * measured alternately. The client runs in its own process (bench/_client.ts).
 *
 * Run: `npm run bench -- interceptor [--seconds 5] [--rounds 3]`.
 * Last line: `{"calls_per_s_on": number, "calls_per_s_off": number, "ratio": number}`.
 */
import { numberArg, printResult } from "./_support.js";
import { runBenchClient, serviceToken, startBenchServer } from "./_server.js";

const SECONDS = numberArg("seconds", 5);
const ROUNDS = numberArg("rounds", 3);

const on = await startBenchServer("interceptor");
const off = await startBenchServer("interceptor-off", { analyticsEnabled: false }, { databaseUrl: on.databaseUrl });
try {
  const measure = async (s: typeof on) =>
    (await runBenchClient<{ calls_per_s: number }>({ kind: "unary", baseUrl: s.server.url(), token: await serviceToken(s.server), seconds: SECONDS, inFlight: 64 }))
      .calls_per_s;
  const onRuns: number[] = [];
  const offRuns: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    offRuns.push(await measure(off));
    onRuns.push(await measure(on));
    console.log(`round ${r + 1}: on ${Math.round(onRuns.at(-1)!)} calls/s, off ${Math.round(offRuns.at(-1)!)} calls/s`);
  }
  await on.server.writer.flush();
  const [logged] = await on.server.db.orm.em.fork().getConnection().execute<{ n: number }[]>(`select count(*)::int as n from api_request_logs`);
  console.log(`request-log rows written: ${logged!.n}; dropped: ${on.server.writer.stats().droppedOffers}`);
  // Medians of alternating rounds: one noisy round does not decide the ratio.
  const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  printResult({ calls_per_s_on: Math.round(med(onRuns)), calls_per_s_off: Math.round(med(offRuns)), ratio: Number((med(onRuns) / med(offRuns)).toFixed(3)) });
} finally {
  await off.close();
  await on.close();
}
