/**
 * Durable events per second through `LogEvents` batches of 500 over gRPC (16 batches in flight,
 * each event a device state change with a jsonb payload and a client event_id, as the SDK sends
 * them; the client in its own process), against raw COPY of the same rows into the same emptied
 * table, round by round.
 *
 * The headline client (`h2`) sends gRPC requests framed before its clock starts over a bare
 * `node:http2` session and reads only the answer's counts, as a load generator (h2load, ghz)
 * would: the figure is the server's, not the encoding cost of a client sharing the server's two
 * cores (in production the callers encode on their own machines). Each round also measures the
 * same server with the binary fast path off (`protobuf_es_path`: events decoded and results
 * encoded by protobuf-es, as before the compiled decoder), the same-run baseline of that change.
 * One warm-up run of each server comes first, not counted. Once per run: the same pre-encoded
 * bytes sent by @grpc/grpc-js, and the SDK's own client (connect-node, encoding as it sends).
 *
 * Run: `npm run bench -- log-events [--events 100000] [--in-flight 16] [--rounds 5] [--writer-batch-rows N]`.
 * Last line: `{"events_per_s", "copy_per_s", "ratio_to_copy", "server_cpu_us_per_event",
 * "client_cpu_us_per_event", "events_per_s_protobuf_es_path", "server_cpu_us_per_event_protobuf_es_path",
 * "fast_path_speedup", "events_per_s_grpc_js_client", "events_per_s_sdk_client"}` (medians over rounds).
 */
import { tableSpecs } from "../src/storage/table-specs.js";
import { uuidV7 } from "../src/util/uuid-v7.js";
import { benchBatches, type BenchEvent } from "./_events.js";
import { copyRowsPerSecond, median, numberArg, printResult } from "./_support.js";
import { runBenchClient, serviceToken, startBenchServer } from "./_server.js";

const EVENTS = numberArg("events", 100_000);
const BATCH = 500;
const IN_FLIGHT = numberArg("in-flight", 16);
const ROUNDS = numberArg("rounds", 5);
/** The writer's flush size (`ANALYTICS_WRITER_BATCH_ROWS`) for both servers; the default when absent. */
const WRITER_BATCH_ROWS = numberArg("writer-batch-rows", 0) || undefined;
const serverConfig = { analyticsEnabled: false, ...(WRITER_BATCH_ROWS ? { writerBatchRows: WRITER_BATCH_ROWS } : {}) };


const bench = await startBenchServer("log-events", serverConfig);
// The same-run baseline: the same server and database with binary LogEvents calls decoded and
// answered by protobuf-es (the path Connect JSON calls still take).
const generic = await startBenchServer("log-events-generic", serverConfig, { databaseUrl: bench.databaseUrl, binaryLogEventsFastPath: false });
try {
  const token = await serviceToken(bench.server);
  const genericToken = await serviceToken(generic.server); // its own data directory, its own signing secret
  const spec = tableSpecs(bench.server.db.orm).device_state_history;
  const truncate = () => bench.server.db.orm.em.fork().getConnection().execute(`truncate "device_state_history"`);
  const count = async () =>
    ((await bench.server.db.orm.em.fork().getConnection().execute(`select count(*)::int as n from "device_state_history"`)) as { n: number }[])[0]!.n;

  /** One client run into the emptied table; the server's CPU per event; the run's seed (its events). */
  let runs = 0;
  const logEvents = async (client: "h2" | "pre-encoded" | "connect", target: "fast" | "generic" = "fast") => {
    await truncate();
    const seed = (Date.now() ^ (++runs * 0x9e3779b9)) >>> 0; // fresh per run: no run replays another's event ids
    const result = await runBenchClient<{ events_per_s: number; stored: number; server_cpu_s: number; client_cpu_s: number }>({
      kind: "log-events",
      baseUrl: (target === "fast" ? bench : generic).server.url(),
      token: target === "fast" ? token : genericToken,
      events: EVENTS,
      batch: BATCH,
      inFlight: IN_FLIGHT,
      client,
      seed,
      serverPid: process.pid,
    });
    const rows = await count();
    if (result.stored !== EVENTS || rows !== EVENTS) throw new Error(`${client}: ${result.stored} acknowledged, ${rows} rows, ${EVENTS} sent`);
    return { ...result, seed, cpuUsPerEvent: (result.server_cpu_s * 1e6) / EVENTS, clientUsPerEvent: (result.client_cpu_s * 1e6) / EVENTS };
  };

  /** Raw COPY of the rows the server stored for `events`, into the emptied table. */
  const copy = async (events: BenchEvent[]) => {
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
  const clientCpus: number[] = [];
  const genericRates: number[] = [];
  const genericCpus: number[] = [];
  const speedups: number[] = [];
  // Warm-up, not counted: JIT, heap growth and the database's caches (the first run is
  // consistently slower than the rest, as in the stream benchmark).
  await logEvents("h2");
  await logEvents("h2", "generic");
  for (let r = 0; r < ROUNDS; r++) {
    const run = await logEvents("h2");
    const copyPerS = await copy(benchBatches(run.seed, EVENTS, BATCH).flat());
    const baseline = await logEvents("h2", "generic");
    rates.push(run.events_per_s);
    copies.push(copyPerS);
    ratios.push(run.events_per_s / copyPerS);
    cpus.push(run.cpuUsPerEvent);
    clientCpus.push(run.clientUsPerEvent);
    genericRates.push(baseline.events_per_s);
    genericCpus.push(baseline.cpuUsPerEvent);
    speedups.push(run.events_per_s / baseline.events_per_s);
    console.log(
      `round ${r + 1}: LogEvents ${Math.round(run.events_per_s)} events/s (server ${run.cpuUsPerEvent.toFixed(1)} µs/event, client ${run.clientUsPerEvent.toFixed(1)}), ` +
        `COPY ${Math.round(copyPerS)} rows/s, ratio ${ratios.at(-1)!.toFixed(3)}; protobuf-es path ${Math.round(baseline.events_per_s)} events/s ` +
        `(server ${baseline.cpuUsPerEvent.toFixed(1)} µs/event), fast path ×${speedups.at(-1)!.toFixed(2)}`,
    );
  }
  const grpcJs = await logEvents("pre-encoded");
  console.log(`@grpc/grpc-js client (pre-encoded): ${Math.round(grpcJs.events_per_s)} events/s (client ${grpcJs.clientUsPerEvent.toFixed(1)} µs/event)`);
  const sdk = await logEvents("connect");
  console.log(`SDK client (connect-node): ${Math.round(sdk.events_per_s)} events/s (client ${sdk.clientUsPerEvent.toFixed(1)} µs/event)`);
  printResult({
    events_per_s: Math.round(median(rates)),
    copy_per_s: Math.round(median(copies)),
    ratio_to_copy: Number(median(ratios).toFixed(3)),
    server_cpu_us_per_event: Number(median(cpus).toFixed(1)),
    client_cpu_us_per_event: Number(median(clientCpus).toFixed(1)),
    events_per_s_protobuf_es_path: Math.round(median(genericRates)),
    server_cpu_us_per_event_protobuf_es_path: Number(median(genericCpus).toFixed(1)),
    fast_path_speedup: Number(median(speedups).toFixed(2)),
    events_per_s_grpc_js_client: Math.round(grpcJs.events_per_s),
    events_per_s_sdk_client: Math.round(sdk.events_per_s),
  });
} finally {
  await generic.close();
  await bench.close();
}
