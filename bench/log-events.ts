/**
 * Durable events per second through `LogEvents` batches of 500 over gRPC (16 batches in flight,
 * each event with a client event_id as the SDK sends them; the client in its own process), against
 * raw COPY of the same rows into the same table in the same run.
 *
 * Run: `npm run bench -- log-events [--events 100000] [--in-flight 16] [--grpc-js]`.
 * Last line: `{"events_per_s": number, "copy_per_s": number, "ratio_to_copy": number}`.
 */
import { tableSpecs } from "../src/storage/table-specs.js";
import { uuidV7 } from "../src/util/uuid-v7.js";
import { copyRowsPerSecond, numberArg, printResult } from "./_support.js";
import { runBenchClient, serviceToken, startBenchServer } from "./_server.js";

const EVENTS = numberArg("events", 100_000);
const BATCH = 500;
const IN_FLIGHT = numberArg("in-flight", 16);
/** `--grpc-js`: send with @grpc/grpc-js instead of connect-node (as the SDK does). */
const CLIENT = process.argv.includes("--grpc-js") ? "grpc-js" : "connect";

const bench = await startBenchServer("log-events", { analyticsEnabled: false });
try {
  type Sent = { kind: { value: { deviceId: string; previousState: string; newState: string; changedBy: string; reason: string; extraData: unknown; eventId: string } } };
  const result = await runBenchClient<{ events_per_s: number; stored: number; events: Sent[] }>({
    kind: "log-events",
    baseUrl: bench.server.url(),
    token: await serviceToken(bench.server),
    events: EVENTS,
    batch: BATCH,
    inFlight: IN_FLIGHT,
    client: CLIENT,
  });
  const eventsPerS = result.events_per_s;
  console.log(`LogEvents (${CLIENT} client): ${result.stored} events stored, ${Math.round(eventsPerS)} events/s`);

  // The same rows by raw COPY, into the same (emptied) table.
  const spec = tableSpecs(bench.server.db.orm).device_state_history;
  await bench.server.db.orm.em.fork().getConnection().execute(`truncate "device_state_history"`);
  const now = Date.now();
  const rows = result.events.map(({ kind: { value: e } }, i) => {
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
  const copyPerS = await copyRowsPerSecond(bench.databaseUrl, "device_state_history", spec.columns.map((c) => c.name), rows);
  console.log(`COPY: ${Math.round(copyPerS)} rows/s`);
  printResult({ events_per_s: Math.round(eventsPerS), copy_per_s: Math.round(copyPerS), ratio_to_copy: Number((eventsPerS / copyPerS).toFixed(3)) });
} finally {
  await bench.close();
}
