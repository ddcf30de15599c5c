/**
 * Durable events per second through `LogEvents` batches of 500 over gRPC (16 batches in flight,
 * each event a device state change with a jsonb payload and a client event_id, as the SDK sends
 * them; the client in its own process), against raw COPY of the same rows into the same emptied
 * table, round by round: copied right before and right after each LogEvents run, the baseline
 * being the mean of the two (since session 6; one COPY after the run before). Each server runs in
 * a process of its own with `npm start`'s Node flags (`startServerProcess`), as deployed, not
 * sharing a heap (and its garbage collections) with the baseline's 100k COPY rows or with the
 * other server. (Alternating runs of both set-ups at 19:37-19:47 differed by less than the noise:
 * 0.813 / 0.707 in one process, 0.741 / 0.729 apart.)
 *
 * The headline client (`h2`) sends gRPC requests framed before its clock starts over a bare
 * `node:http2` session and reads only the answer's counts, as a load generator (h2load, ghz)
 * would: the figure is the server's, not the encoding cost of a client sharing the server's two
 * cores (in production the callers encode on their own machines). Each round also measures the
 * same server with the binary fast path off (`protobuf_es_path`: events decoded and results
 * encoded by protobuf-es, as before the compiled decoder), the same-run baseline of that change.
 * One warm-up run of each server comes first, not counted. Once per run: the same pre-encoded
 * bytes sent by @grpc/grpc-js, and the SDK's own client (`createAnalyticsClient` over
 * `createNodeTransport`, encoding as it sends: its compiled encoder over gRPC).
 *
 * Where the time goes: PostgreSQL's CPU per stored row in both paths (all its processes, read from
 * /proc; null when the server is elsewhere) and the share of the machine's cores the run kept busy
 * (service + PostgreSQL + client CPU over cores x wall time): near 1 a run is bound by the cores,
 * below it by waiting. And the share of the machine's CPU time the hypervisor stole over each
 * round (COPY, LogEvents, COPY; `steal_share`, /proc/stat): these are shared virtual machines, and
 * a round with much stolen time says little. After the rounds, one more round (LogEvents, then
 * COPY) at 32 and at 64 batches in flight: single rounds, as noisy as any one round above.
 *
 * Run: `npm run bench -- log-events [--events 100000] [--in-flight 16] [--rounds 5] [--writer-batch-rows N] [--sweep 0]`.
 * Last line: `{"events_per_s", "copy_per_s", "ratio_to_copy", "server_cpu_us_per_event",
 * "client_cpu_us_per_event", "events_per_s_protobuf_es_path", "server_cpu_us_per_event_protobuf_es_path",
 * "fast_path_speedup", "events_per_s_grpc_js_client", "events_per_s_sdk_client", "pg_cpu_us_per_row",
 * "pg_cpu_us_per_row_copy", "cores_busy", "cores_busy_copy", "steal_share", "ratio_to_copy_by_in_flight"}` (medians over rounds).
 */
import { availableParallelism } from "node:os";
import pg from "pg";
import { uuidV7 } from "../src/util/uuid-v7.js";
import { benchBatches, type BenchEvent } from "./_events.js";
import { benchDatabase, copyRowsPerSecond, machineTicks, median, numberArg, postgresCpuSeconds, printResult, stealShare } from "./_support.js";
import { runBenchClient, startServerProcess } from "./_server.js";

const EVENTS = numberArg("events", 100_000);
const BATCH = 500;
const IN_FLIGHT = numberArg("in-flight", 16);
const ROUNDS = numberArg("rounds", 5);
/** More in-flight depths measured once after the rounds (0 skips them), against the rounds' median COPY. */
const SWEEP = [32, 64].filter(() => numberArg("sweep", 1) !== 0);
const CORES = availableParallelism();
/** The writer's flush size (`ANALYTICS_WRITER_BATCH_ROWS`) for both servers; the default when absent. */
const WRITER_BATCH_ROWS = numberArg("writer-batch-rows", 0) || undefined;
const serverConfig = { analyticsEnabled: false, ...(WRITER_BATCH_ROWS ? { writerBatchRows: WRITER_BATCH_ROWS } : {}) };


// Each server in a process of its own, started as `npm start` starts it: the server measured
// shares its heap with nothing else (not the baseline's rows, not the other server's garbage).
const database = await benchDatabase("log-events");
const sql = new pg.Client({ connectionString: database.url });
const fast = await startServerProcess("log-events", database.url, serverConfig);
// The same-run baseline: the same server and database with binary LogEvents calls decoded and
// answered by protobuf-es (the path Connect JSON calls still take).
const generic = await startServerProcess("log-events-generic", database.url, serverConfig, { binaryLogEventsFastPath: false });
try {
  await sql.connect();
  const truncate = () => sql.query(`truncate "device_state_history"`);
  const count = async () => (await sql.query<{ n: number }>(`select count(*)::int as n from "device_state_history"`)).rows[0]!.n;

  let runs = 0;
  /** A fresh seed per run: no run replays another's event ids. */
  const freshSeed = () => (Date.now() ^ (++runs * 0x9e3779b9)) >>> 0;
  /** One client run of `seed`'s events into the emptied table; the server's CPU per event. */
  const logEvents = async (client: "h2" | "pre-encoded" | "sdk", target: "fast" | "generic" = "fast", inFlight = IN_FLIGHT, seed = freshSeed()) => {
    await truncate();
    const result = await runBenchClient<{ events_per_s: number; stored: number; seconds: number; server_cpu_s: number; client_cpu_s: number; pg_cpu_s: number | null }>({
      kind: "log-events",
      baseUrl: (target === "fast" ? fast : generic).url,
      token: (target === "fast" ? fast : generic).token,
      events: EVENTS,
      batch: BATCH,
      inFlight,
      client,
      seed,
      serverPid: (target === "fast" ? fast : generic).pid,
    });
    const rows = await count();
    if (result.stored !== EVENTS || rows !== EVENTS) throw new Error(`${client}: ${result.stored} acknowledged, ${rows} rows, ${EVENTS} sent`);
    return {
      ...result,
      seed,
      cpuUsPerEvent: (result.server_cpu_s * 1e6) / EVENTS,
      clientUsPerEvent: (result.client_cpu_s * 1e6) / EVENTS,
      pgUsPerRow: result.pg_cpu_s === null ? null : (result.pg_cpu_s * 1e6) / EVENTS,
      // Share of the machine's cores busy with this run (service, PostgreSQL, client): near 1 the
      // run is bound by the cores, well below it by waiting (commits, round trips).
      utilization: result.pg_cpu_s === null ? null : (result.server_cpu_s + result.pg_cpu_s + result.client_cpu_s) / (CORES * result.seconds),
    };
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
      return row;
    });
    // The columns the server writes for a state change (the table's own, but `received_at`,
    // which PostgreSQL fills), in the same order.
    const columns = Object.keys(rows[0]!);
    const values = rows.map((row) => columns.map((c) => row[c] ?? null));
    const pg0 = await postgresCpuSeconds();
    const own0 = process.cpuUsage();
    const perS = await copyRowsPerSecond(database.url, "device_state_history", columns, values);
    const own = process.cpuUsage(own0);
    const pg1 = await postgresCpuSeconds();
    const pgS = pg0 === undefined || pg1 === undefined ? null : pg1 - pg0;
    return {
      perS,
      pgUsPerRow: pgS === null ? null : (pgS * 1e6) / rows.length,
      utilization: pgS === null ? null : (pgS + (own.user + own.system) / 1e6) / (CORES * (rows.length / perS)),
    };
  };
  const fixed = (x: number | null, digits: number) => (x === null ? null : Number(x.toFixed(digits)));
  const medianOf = (xs: (number | null)[]) => (xs.some((x) => x === null) ? null : median(xs as number[]));
  const mean = (a: number | null, b: number | null) => (a === null || b === null ? null : (a + b) / 2);

  const rates: number[] = [];
  const copies: number[] = [];
  const ratios: number[] = [];
  const cpus: number[] = [];
  const clientCpus: number[] = [];
  const genericRates: number[] = [];
  const genericCpus: number[] = [];
  const speedups: number[] = [];
  const pgPerRow: (number | null)[] = [];
  const pgPerRowCopy: (number | null)[] = [];
  const utilizations: (number | null)[] = [];
  const utilizationsCopy: (number | null)[] = [];
  const steals: (number | null)[] = [];
  // Warm-up, not counted: JIT, heap growth and the database's caches (the first run is
  // consistently slower than the rest, as in the stream benchmark).
  await logEvents("h2");
  await logEvents("h2", "generic");
  for (let r = 0; r < ROUNDS; r++) {
    // The baseline brackets the run, its rows copied right before and right after it: the box's
    // speed drifts within a round (one COPY moved 88k -> 142k rows/s between adjacent rounds), and
    // the mean of the two is the baseline as of the run's own time.
    const seed = freshSeed();
    const rows = benchBatches(seed, EVENTS, BATCH).flat();
    const ticks = [await machineTicks()];
    const copyBefore = await copy(rows);
    ticks.push(await machineTicks());
    const run = await logEvents("h2", "fast", IN_FLIGHT, seed);
    ticks.push(await machineTicks());
    const copyAfter = await copy(rows);
    ticks.push(await machineTicks());
    steals.push(stealShare(ticks[0], ticks[3]));
    const stolenInRun = stealShare(ticks[1], ticks[2]);
    const baselineCopy = {
      perS: (copyBefore.perS + copyAfter.perS) / 2,
      pgUsPerRow: mean(copyBefore.pgUsPerRow, copyAfter.pgUsPerRow),
      utilization: mean(copyBefore.utilization, copyAfter.utilization),
    };
    const copyPerS = baselineCopy.perS;
    const baseline = await logEvents("h2", "generic");
    rates.push(run.events_per_s);
    copies.push(copyPerS);
    ratios.push(run.events_per_s / copyPerS);
    cpus.push(run.cpuUsPerEvent);
    clientCpus.push(run.clientUsPerEvent);
    genericRates.push(baseline.events_per_s);
    genericCpus.push(baseline.cpuUsPerEvent);
    speedups.push(run.events_per_s / baseline.events_per_s);
    pgPerRow.push(run.pgUsPerRow);
    pgPerRowCopy.push(baselineCopy.pgUsPerRow);
    utilizations.push(run.utilization);
    utilizationsCopy.push(baselineCopy.utilization);
    console.log(
      `round ${r + 1}: LogEvents ${Math.round(run.events_per_s)} events/s (server ${run.cpuUsPerEvent.toFixed(1)} µs/event, client ${run.clientUsPerEvent.toFixed(1)}), ` +
        `COPY ${Math.round(copyPerS)} rows/s (before ${Math.round(copyBefore.perS)}, after ${Math.round(copyAfter.perS)}), ratio ${ratios.at(-1)!.toFixed(3)}; protobuf-es path ${Math.round(baseline.events_per_s)} events/s ` +
        `(server ${baseline.cpuUsPerEvent.toFixed(1)} µs/event), fast path ×${speedups.at(-1)!.toFixed(2)}; ` +
        `PostgreSQL ${run.pgUsPerRow?.toFixed(1)} µs/row (COPY ${baselineCopy.pgUsPerRow?.toFixed(1)}), ` +
        `cores busy ${run.utilization?.toFixed(2)} (COPY ${baselineCopy.utilization?.toFixed(2)}), stolen ${steals.at(-1)?.toFixed(2)} (LogEvents ${stolenInRun?.toFixed(2)})`,
    );
  }
  const byInFlight: Record<string, number> = { [IN_FLIGHT]: Number(median(ratios).toFixed(3)) };
  for (const depth of SWEEP) {
    const run = await logEvents("h2", "fast", depth);
    const paired = await copy(benchBatches(run.seed, EVENTS, BATCH).flat());
    byInFlight[depth] = Number((run.events_per_s / paired.perS).toFixed(3));
    console.log(
      `${depth} in flight (one round): LogEvents ${Math.round(run.events_per_s)} events/s, COPY ${Math.round(paired.perS)} rows/s, ` +
        `ratio ${byInFlight[depth]}, cores busy ${run.utilization?.toFixed(2)}`,
    );
  }
  const grpcJs = await logEvents("pre-encoded");
  console.log(`@grpc/grpc-js client (pre-encoded): ${Math.round(grpcJs.events_per_s)} events/s (client ${grpcJs.clientUsPerEvent.toFixed(1)} µs/event)`);
  const sdk = await logEvents("sdk");
  console.log(`SDK client (createAnalyticsClient, gRPC): ${Math.round(sdk.events_per_s)} events/s (client ${sdk.clientUsPerEvent.toFixed(1)} µs/event)`);
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
    pg_cpu_us_per_row: fixed(medianOf(pgPerRow), 1),
    pg_cpu_us_per_row_copy: fixed(medianOf(pgPerRowCopy), 1),
    cores_busy: fixed(medianOf(utilizations), 2),
    cores_busy_copy: fixed(medianOf(utilizationsCopy), 2),
    steal_share: fixed(medianOf(steals), 2),
    ratio_to_copy_by_in_flight: byInFlight,
  });
} finally {
  await sql.end();
  await generic.close();
  await fast.close();
  await database.drop();
}
