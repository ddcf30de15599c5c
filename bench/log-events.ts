/**
 * Durable events per second through `LogEvents` batches of 500 over gRPC (16 batches in flight,
 * each event a device state change with a jsonb payload and a client event_id, as the SDK sends
 * them; the client in its own process), against raw COPY of the same rows into the same emptied
 * table, round by round.
 *
 * The headline client sends requests encoded before its clock starts (`pre-encoded`: protobuf-es
 * bytes over @grpc/grpc-js), so the figure is the server's and not the encoding cost of a client
 * sharing the server's two cores; in production the callers encode on their own machines. The
 * SDK's own client (connect-node, encoding as it sends) is measured once more in the same run.
 * Each round also measures a ceiling: the same server with a `LogEvents` handler that stores
 * nothing and answers a canned response of the same size (`ratio_to_canned_handler` = real ÷
 * canned), i.e. what Connect, HTTP/2 and protobuf-es alone allow on this machine.
 *
 * Run: `npm run bench -- log-events [--events 100000] [--in-flight 16] [--rounds 3]`.
 * Last line: `{"events_per_s", "copy_per_s", "ratio_to_copy", "events_per_s_sdk_client",
 * "server_cpu_us_per_event", "events_per_s_canned_handler", "ratio_to_canned_handler",
 * "server_cpu_us_per_event_canned_handler"}` (medians over rounds).
 */
import { create } from "@bufbuild/protobuf";
import { randomUUID } from "node:crypto";
import { EventResultSchema, LogEventsResponseSchema, type LogEventsRequest } from "../sdk/src/gen/analytics/v1/analytics_service_pb.js";
import { WriteOutcome } from "../sdk/src/gen/analytics/v1/common_pb.js";
import { tableSpecs } from "../src/storage/table-specs.js";
import { uuidV7 } from "../src/util/uuid-v7.js";
import { copyRowsPerSecond, median, numberArg, printResult } from "./_support.js";
import { runBenchClient, serviceToken, startBenchServer } from "./_server.js";

const EVENTS = numberArg("events", 100_000);
const BATCH = 500;
const IN_FLIGHT = numberArg("in-flight", 16);
const ROUNDS = numberArg("rounds", 3);

type Sent = { kind: { value: { deviceId: string; previousState: string; newState: string; changedBy: string; reason: string; extraData: unknown; eventId: string } } };

const bench = await startBenchServer("log-events", { analyticsEnabled: false });
// The ceiling: the same server (port, protocols, interceptors, auth) with a LogEvents handler that
// stores nothing and answers every event STORED with a canned id, so the response is as big as
// the real one. What is left is Connect, HTTP/2 and protobuf-es decoding and encoding.
const cannedIds = Array.from({ length: BATCH }, () => randomUUID());
const canned = await startBenchServer("log-events-canned", { analyticsEnabled: false }, {
  databaseUrl: bench.databaseUrl,
  analyticsOverrides: {
    logEvents: (req: LogEventsRequest) =>
      create(LogEventsResponseSchema, {
        results: req.events.map((_, i) => create(EventResultSchema, { outcome: WriteOutcome.STORED, id: cannedIds[i]! })),
        storedCount: req.events.length,
      }),
  },
});
try {
  const token = await serviceToken(bench.server);
  const cannedToken = await serviceToken(canned.server); // its own data directory, its own signing secret
  const spec = tableSpecs(bench.server.db.orm).device_state_history;
  const truncate = () => bench.server.db.orm.em.fork().getConnection().execute(`truncate "device_state_history"`);
  const count = async () =>
    ((await bench.server.db.orm.em.fork().getConnection().execute(`select count(*)::int as n from "device_state_history"`)) as { n: number }[])[0]!.n;

  /** One client run into the emptied table; the server's CPU per event; the events sent. */
  const logEvents = async (client: "pre-encoded" | "connect", target: "real" | "canned" = "real") => {
    await truncate();
    const result = await runBenchClient<{ events_per_s: number; stored: number; server_cpu_s: number; client_cpu_s: number; events: Sent[] }>({
      kind: "log-events",
      baseUrl: (target === "real" ? bench : canned).server.url(),
      token: target === "real" ? token : cannedToken,
      events: EVENTS,
      batch: BATCH,
      inFlight: IN_FLIGHT,
      client,
      serverPid: process.pid,
    });
    const rows = target === "real" ? await count() : EVENTS;
    if (result.stored !== EVENTS || rows !== EVENTS) throw new Error(`${client}: ${result.stored} acknowledged, ${rows} rows, ${EVENTS} sent`);
    return { ...result, cpuUsPerEvent: (result.server_cpu_s * 1e6) / EVENTS, clientUsPerEvent: (result.client_cpu_s * 1e6) / EVENTS };
  };

  /** Raw COPY of the rows the server stored for `events`, into the emptied table. */
  const copy = async (events: Sent[]) => {
    await truncate();
    const now = Date.now();
    const rows = events.map(({ kind: { value: e } }, i) => {
      const row: Record<string, unknown> = {
        id: uuidV7(now + i),
        event_id: e.eventId,
        occurred_at: new Date(now + i),
        device_id: e.deviceId,
        previous_state: e.previousState,
        new_state: e.newState,
        changed_by: e.changedBy,
        reason: e.reason,
        extra_data: e.extraData,
      };
      return spec.columns.map((c) => row[c.name] ?? null);
    });
    return copyRowsPerSecond(bench.databaseUrl, "device_state_history", spec.columns.map((c) => c.name), rows);
  };

  const rates: number[] = [];
  const copies: number[] = [];
  const ratios: number[] = [];
  const cpus: number[] = [];
  const cannedRates: number[] = [];
  const cannedRatios: number[] = [];
  const cannedCpus: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const run = await logEvents("pre-encoded");
    const copyPerS = await copy(run.events);
    const ceiling = await logEvents("pre-encoded", "canned");
    rates.push(run.events_per_s);
    copies.push(copyPerS);
    ratios.push(run.events_per_s / copyPerS);
    cpus.push(run.cpuUsPerEvent);
    cannedRates.push(ceiling.events_per_s);
    cannedRatios.push(run.events_per_s / ceiling.events_per_s);
    cannedCpus.push(ceiling.cpuUsPerEvent);
    console.log(
      `round ${r + 1}: LogEvents ${Math.round(run.events_per_s)} events/s (server ${run.cpuUsPerEvent.toFixed(1)} µs/event, client ${run.clientUsPerEvent.toFixed(1)}), ` +
        `COPY ${Math.round(copyPerS)} rows/s, ratio ${ratios.at(-1)!.toFixed(3)}; canned-response handler ${Math.round(ceiling.events_per_s)} events/s ` +
        `(server ${ceiling.cpuUsPerEvent.toFixed(1)} µs/event), ratio ${cannedRatios.at(-1)!.toFixed(3)}`,
    );
  }
  const sdk = await logEvents("connect");
  console.log(`SDK client (connect-node): ${Math.round(sdk.events_per_s)} events/s`);
  printResult({
    events_per_s: Math.round(median(rates)),
    copy_per_s: Math.round(median(copies)),
    ratio_to_copy: Number(median(ratios).toFixed(3)),
    events_per_s_sdk_client: Math.round(sdk.events_per_s),
    server_cpu_us_per_event: Number(median(cpus).toFixed(1)),
    events_per_s_canned_handler: Math.round(median(cannedRates)),
    ratio_to_canned_handler: Number(median(cannedRatios).toFixed(3)),
    server_cpu_us_per_event_canned_handler: Number(median(cannedCpus).toFixed(1)),
  });
} finally {
  await canned.close();
  await bench.close();
}
