/**
 * Durable events per second through `LogEvents` batches of 500 over gRPC (4 batches in flight,
 * each event with a client event_id as the SDK sends them), against raw COPY of the same rows into
 * the same table in the same run.
 *
 * Run: `npm run bench -- log-events [--events 100000]`.
 * Last line: `{"events_per_s": number, "copy_per_s": number, "ratio_to_copy": number}`.
 */
import { createClient } from "@connectrpc/connect";
import { randomUUID } from "node:crypto";
import { AnalyticsService } from "../sdk/src/gen/analytics/v1/analytics_service_pb.js";
import { tableSpecs } from "../src/storage/table-specs.js";
import { uuidV7 } from "../src/util/uuid-v7.js";
import { copyRowsPerSecond, numberArg, printResult } from "./_support.js";
import { startBenchServer } from "./_server.js";

const EVENTS = numberArg("events", 100_000);
const BATCH = 500;
const IN_FLIGHT = 4;

const bench = await startBenchServer("log-events", { analyticsEnabled: false });
try {
  const client = createClient(AnalyticsService, bench.transport);
  const makeEvent = (i: number) => ({
    deviceId: `device-${i % 5000}`,
    previousState: "online",
    newState: i % 2 ? "offline" : "online",
    changedBy: "scheduler",
    reason: "heartbeat missed",
    extraData: { attempt: i % 3, region: "eu-west" },
    eventId: randomUUID(),
  });
  const batches = Array.from({ length: Math.ceil(EVENTS / BATCH) }, (_, b) =>
    Array.from({ length: Math.min(BATCH, EVENTS - b * BATCH) }, (_, i) => ({ kind: { case: "deviceStateChange" as const, value: makeEvent(b * BATCH + i) } })),
  );
  const started = performance.now();
  let next = 0;
  let stored = 0;
  await Promise.all(
    Array.from({ length: IN_FLIGHT }, async () => {
      while (next < batches.length) {
        const res = await client.logEvents({ events: batches[next++]! });
        stored += res.storedCount;
      }
    }),
  );
  const eventsPerS = stored / ((performance.now() - started) / 1000);
  console.log(`LogEvents: ${stored} events stored, ${Math.round(eventsPerS)} events/s`, JSON.stringify(bench.server.writer.stats()));

  // The same rows by raw COPY, into the same (emptied) table.
  const spec = tableSpecs(bench.server.db.orm).device_state_history;
  await bench.server.db.orm.em.fork().getConnection().execute(`truncate "device_state_history"`);
  const now = Date.now();
  const rows = batches.flat().map(({ kind: { value: e } }, i) => {
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
