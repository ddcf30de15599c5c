/**
 * Benchmark of the device metrics stream (`StreamDeviceMetrics`), end to end: the real server
 * (`src/main.ts serve`, its own process) on a fresh PostgreSQL database, and devices played by
 * `@grpc/grpc-js` clients (proto-loader on the repo's .proto files) in this process, both on this
 * machine. Each message is encoded (protobufjs, proto-loader's serializer) before the clock
 * starts and sent as bytes: devices encode on their own CPUs, and on this 2-core box a client
 * encoding as it sends would take CPU from the server and PostgreSQL, which are what is measured
 * (the client's CPU per sample is reported). grpc-js rather than the connect-node client for the
 * same reason: protobuf-es encodes a 100-sample message of `map<string, double>` ~12x slower than
 * protobufjs (~6 ms against ~0.5 ms here).
 *
 * Samples go in the form the SDK's device streamer sends when a batch's samples share one metric
 * set: the columnar form (`columns`: names once, a base time, packed ms offsets and values).
 * - `received_per_s`: samples per second over ONE bidi stream, batches of 100, a realistic mix
 *   (10 metrics, ±1 % noise, 2 % jumps, one sample per second: most samples are filtered), from
 *   the first message to the last acknowledgement;
 * - `stored_per_s`: rows per second when every sample passes the filter (each differs from the
 *   one before), same stream shape; every acknowledged row is committed;
 * - `ratio_to_copy`: `stored_per_s` divided by raw COPY (pg-copy-streams) of the same rows into
 *   the same, emptied table, measured in the same run;
 * - `received_per_s_100_streams`: the realistic mix over 100 concurrent device streams;
 * - `received_per_s_map`, `received_per_s_compact`, `received_per_s_100_streams_map`: the same
 *   with a `metrics` map per sample, and in the compact form (`metric_names` + `values` per sample).
 *
 * Run: `npm run bench -- stream [--samples 300000] [--stored 100000] [--repeat 5] [--only PHASES]`,
 * PHASES a comma list of columns, map, compact, stored, streams, streams-map (default all; e.g.
 * `--only columns` with `BENCH_SERVER_CPU_PROF=DIR` profiles the server on the headline path).
 * Real PostgreSQL: `DATABASE_URL` or postgres://postgres@127.0.0.1:5432/postgres (a database is
 * created for the run and dropped after). Last line:
 * `{"received_per_s", "stored_per_s", "ratio_to_copy", "received_per_s_100_streams", ...}`.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { once } from "node:events";
import * as grpc from "@grpc/grpc-js";
import pg from "pg";
import { mintToken } from "../src/auth/mint-token.js";
import { benchDatabase, copyRowsPerSecond, median, numberArg, printResult, processCpuSeconds } from "./_support.js";
import { seededRandom as prng } from "../test/support/seeded-random.js";
import { loadAnalyticsServiceClient } from "../test/support/grpc-js-service.js";

const PHASES = ["columns", "map", "compact", "stored", "streams", "streams-map"] as const;
type Phase = (typeof PHASES)[number];
const onlyArg = process.argv.indexOf("--only");
const only = new Set<string>(onlyArg < 0 ? PHASES : process.argv[onlyArg + 1]!.split(","));
for (const phase of only) if (!(PHASES as readonly string[]).includes(phase)) throw new Error(`--only: unknown phase ${phase} (${PHASES.join(", ")})`);
const runs = (phase: Phase) => only.has(phase);
const AnalyticsService = await loadAnalyticsServiceClient();
const streamMethod = () => AnalyticsService.service.StreamDeviceMetrics! as grpc.MethodDefinition<Batch, Ack>;
/**
 * Messages encoded before the clock starts (protobufjs, as grpc-js would as it sends): a device
 * encodes on its own CPU, and on this 2-core box a client encoding as it sends would take CPU
 * from the server and PostgreSQL, which are what is measured.
 */
const encode = (messages: readonly Batch[]): Buffer[] => messages.map((m) => streamMethod().requestSerialize(m));
const SAMPLES = numberArg("samples", 300_000);
const STORED = numberArg("stored", 100_000);
const REPEAT = numberArg("repeat", 5);
const BATCH = 100;
const STREAMS = 100;
const root = join(dirname(fileURLToPath(import.meta.url)), "..");

const NAMES = ["cpu", "mem", "disk", "net_in", "net_out", "temperature", "error_rate", "queue_depth", "latency_p50", "latency_p99"];


/** One stream message as proto-loader takes it (keepCase, longs as numbers). */
interface Batch {
  sequence: number;
  device_id: string;
  samples: { occurred_at: { seconds: number; nanos: number }; metrics: Record<string, number> }[];
}
interface Ack {
  sequence: number;
  counts: { received: number; stored: number; filtered: number; rejected: number };
}

/** `count` samples of one device as batches of {@link BATCH}, one sample per second from `startMs`. */
function batches(deviceId: string, count: number, startMs: number, mix: "realistic" | "all-stored", seed: number): Batch[] {
  const random = prng(seed);
  const base = NAMES.map((n) => (n === "error_rate" ? 0.005 : n === "queue_depth" ? 0 : 10 + random() * 1000));
  const out: Batch[] = [];
  for (let first = 0; first < count; first += BATCH) {
    const samples = [];
    for (let n = first; n < Math.min(count, first + BATCH); n++) {
      const metrics: Record<string, number> = {};
      const jump = mix === "realistic" && random() < 0.02 ? Math.floor(random() * NAMES.length) : -1;
      NAMES.forEach((name, m) => {
        let value = name === "queue_depth" ? (random() < 0.1 ? 1 : 0) : base[m]! * (1 + (random() - 0.5) * 0.02);
        if (m === jump) value = value * 1.2 + 1;
        // All-stored: cpu alternates between two levels 50 % apart, a significant change every time.
        if (mix === "all-stored" && name === "cpu") value = n % 2 === 0 ? 100 : 150;
        metrics[name] = value;
      });
      const ms = startMs + n * 1000;
      samples.push({ occurred_at: { seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1e6 }, metrics });
    }
    out.push({ sequence: out.length + 1, device_id: deviceId, samples });
  }
  return out;
}

/** The same batch in the compact form: the names once per message, a packed array per sample. */
function compact(batch: Batch): Batch {
  return {
    ...batch,
    metric_names: NAMES,
    samples: batch.samples.map((s) => ({ occurred_at: s.occurred_at, values: NAMES.map((n) => s.metrics[n]!) })),
  } as unknown as Batch;
}

/**
 * The same batch in the columnar form, as the SDK sends it: names once, the first sample's time
 * as the base, one packed array of ms offsets and one of row-major values.
 */
function columnar(batch: Batch): Batch {
  const ms = (s: Batch["samples"][number]) => s.occurred_at.seconds * 1000 + Math.floor(s.occurred_at.nanos / 1e6);
  const baseMs = Math.min(...batch.samples.map(ms));
  const values = new Array<number>(batch.samples.length * NAMES.length);
  batch.samples.forEach((s, i) => NAMES.forEach((n, j) => (values[i * NAMES.length + j] = s.metrics[n]!)));
  return {
    sequence: batch.sequence,
    device_id: batch.device_id,
    columns: {
      metric_names: NAMES,
      base_time: { seconds: Math.floor(baseMs / 1000), nanos: (baseMs % 1000) * 1e6 },
      offsets_ms: batch.samples.map((s) => ms(s) - baseMs),
      values,
    },
  } as unknown as Batch;
}

type StreamCall = grpc.ClientDuplexStream<Buffer, Ack>;

/**
 * Sends `messages` (encoded by {@link encode}) on one stream as fast as flow control lets it;
 * resolves with the ack totals.
 */
async function runStream(client: grpc.Client, metadata: grpc.Metadata, messages: readonly Buffer[]) {
  const method = streamMethod();
  const call: StreamCall = client.makeBidiStreamRequest(method.path, (b: Buffer) => b, method.responseDeserialize, metadata);
  let received = 0;
  let stored = 0;
  let acks = 0;
  const ended = new Promise<void>((resolve, reject) => {
    call.on("data", (ack: Ack) => {
      acks++;
      received += ack.counts.received;
      stored += ack.counts.stored;
    });
    call.on("error", reject);
    call.on("end", resolve);
  });
  for (const message of messages) {
    if (!call.write(message)) await Promise.race([once(call, "drain"), ended]);
  }
  call.end();
  await ended;
  if (acks !== messages.length) throw new Error(`expected ${messages.length} acks, got ${acks}`);
  return { received, stored };
}

/** Starts `src/main.ts serve` on a free port; resolves with its URL. */
async function startServer(env: NodeJS.ProcessEnv): Promise<{ url: string; child: ChildProcess }> {
  // BENCH_SERVER_CPU_PROF=DIR writes the server's CPU profile there (for finding where time goes).
  const prof = process.env.BENCH_SERVER_CPU_PROF ? ["--cpu-prof", "--cpu-prof-dir", process.env.BENCH_SERVER_CPU_PROF] : [];
  // BENCH_SERVER_NODE_FLAGS adds Node flags to the server (e.g. "--heap-prof --heap-prof-dir=DIR").
  prof.push(...(process.env.BENCH_SERVER_NODE_FLAGS?.split(" ").filter(Boolean) ?? []));
  const child = spawn(process.execPath, [...prof, "--max-semi-space-size=64", "--import", "tsx", join(root, "src/main.ts"), "serve"], {
    cwd: root,
    env,
    stdio: ["ignore", "inherit", "pipe"],
  });
  const url = await new Promise<string>((resolve, reject) => {
    let buffered = "";
    const onData = (chunk: Buffer) => {
      buffered += chunk.toString();
      const match = /"msg":"ready at (http:\/\/[^"]+)"/.exec(buffered);
      if (match) {
        child.stderr!.off("data", onData);
        child.stderr!.resume(); // keep draining: the server logs at warn and above only
        resolve(match[1]!);
      }
    };
    child.stderr!.on("data", onData);
    child.once("exit", (code) => reject(new Error(`server exited with ${code} before it was ready:\n${buffered}`)));
  });
  return { url, child };
}

const bench = await benchDatabase("stream");
const dataDir = await mkdtemp(join(tmpdir(), "bench-stream-"));
const secret = randomBytes(32).toString("base64url");
const { url, child } = await startServer({
  ...process.env,
  DATABASE_URL: bench.url,
  PORT: "0",
  HOST: "127.0.0.1",
  ANALYTICS_DATA_DIR: dataDir,
  ANALYTICS_JWT_SECRET: secret,
  LOG_LEVEL: "info",
});
child.stderr!.on("data", (chunk: Buffer) => {
  for (const line of chunk.toString().split("\n")) if (/"level":"(warn|error)"/.test(line)) process.stderr.write(`server: ${line}\n`);
});
const sql = new pg.Client({ connectionString: bench.url });
const openClients: grpc.Client[] = [];
await sql.connect();

try {
  const token = await mintToken(new TextEncoder().encode(secret), { role: "service", sub: "bench", ttlSeconds: 3600 });
  const metadata = new grpc.Metadata();
  metadata.set("authorization", `Bearer ${token}`);
  // One HTTP/2 connection per client (grpc-js would share a channel between equal clients).
  const newClient = () => {
    const client = new AnalyticsService(new URL(url).host, grpc.credentials.createInsecure(), {
      "grpc.channel_id": openClients.length,
    } as grpc.ClientOptions);
    openClients.push(client);
    return client;
  };
  const truncate = () => sql.query(`truncate "device_metrics"`);
  const start = Date.now() - 30 * 86_400_000;
  let seed = 1;

  // Warm-up: let both processes' JITs settle on the paths, every form's (a server meets them all).
  for (const toForm of [columnar, (b: Batch) => b, compact]) {
    await runStream(newClient(), metadata, encode(batches(`warm-up-${seed}`, 20_000, start, "realistic", seed++).map(toForm)));
  }
  // ... and the all-stored path (row building, COPY text), which the realistic mix barely runs:
  // a device streams for hours, so the steady state is what the stored figure should measure.
  if (runs("stored")) await runStream(newClient(), metadata, encode(batches(`warm-up-stored`, STORED, start, "all-stored", seed++).map(columnar)));
  await truncate();

  /** Per form of the one-stream realistic run, each round's figures (reported as medians). */
  type OneStream = { perS: number[]; serverUs: number[]; clientUs: number[]; storedShare: number };
  const oneStream: Record<"columns" | "map" | "compact", OneStream> = {
    columns: { perS: [], serverUs: [], clientUs: [], storedShare: 0 },
    map: { perS: [], serverUs: [], clientUs: [], storedShare: 0 },
    compact: { perS: [], serverUs: [], clientUs: [], storedShare: 0 },
  };
  const toWire: Record<keyof typeof oneStream, (b: Batch) => Batch> = { columns: columnar, map: (b) => b, compact };
  const figures = { received100: [] as number[], received100Map: [] as number[] };
  /** Each round's stored rows/s and raw COPY rows/s, measured back to back; the ratio is their rounds' median. */
  const storedRounds: { perS: number; copy: number; serverUs: number }[] = [];

  /** 1. One stream, realistic mix, in one form: rate, and server and client CPU per sample. */
  async function measureOneStream(form: keyof typeof oneStream, round: number): Promise<void> {
    const messages = encode(batches(`${form}-${round}`, SAMPLES, start, "realistic", seed++).map(toWire[form]));
    const serverCpu0 = await processCpuSeconds(child.pid!);
    const clientCpu0 = process.cpuUsage();
    const t0 = performance.now();
    const totals = await runStream(newClient(), metadata, messages);
    const perS = totals.received / ((performance.now() - t0) / 1000);
    const serverUs = ((await processCpuSeconds(child.pid!)) - serverCpu0) * 1e6 / totals.received;
    const clientCpu = process.cpuUsage(clientCpu0);
    const clientUs = (clientCpu.user + clientCpu.system) / totals.received;
    const f = oneStream[form];
    f.perS.push(perS);
    f.serverUs.push(serverUs);
    f.clientUs.push(clientUs);
    f.storedShare = totals.stored / totals.received;
    console.log(
      `round ${round} one stream, realistic, ${form} form: ${Math.round(perS)} samples/s received, ${(f.storedShare * 100).toFixed(1)} % stored; ` +
        `CPU per sample: server ${serverUs.toFixed(2)} µs, client ${clientUs.toFixed(2)} µs`,
    );
  }

  /** 3. 100 device streams at once, realistic mix, ten devices per connection. */
  async function measureManyStreams(form: "columns" | "map", round: number): Promise<number> {
    const clients = Array.from({ length: STREAMS / 10 }, newClient);
    const perDevice = Math.ceil(SAMPLES / STREAMS / BATCH) * BATCH;
    const all = Array.from({ length: STREAMS }, (_, d) =>
      encode(batches(`many-${form}-${round}-${d}`, perDevice, start, "realistic", seed++).map(toWire[form])),
    );
    const t0 = performance.now();
    const totals = await Promise.all(all.map((messages, d) => runStream(clients[d % clients.length]!, metadata, messages)));
    const received = totals.reduce((sum, t) => sum + t.received, 0);
    const perS = received / ((performance.now() - t0) / 1000);
    console.log(`round ${round} ${STREAMS} streams, realistic, ${form} form: ${Math.round(perS)} samples/s received`);
    return perS;
  }

  for (let round = 1; round <= REPEAT; round++) {
    for (const form of ["columns", "map", "compact"] as const) if (runs(form)) await measureOneStream(form, round);
    // 2. One stream (columnar form), every sample stored; then raw COPY of the same rows into the emptied table.
    if (runs("stored")) {
      await truncate();
      const plain = batches(`all-${round}`, STORED, start, "all-stored", seed++);
      const messages = encode(plain.map(columnar));
      const serverCpu0 = await processCpuSeconds(child.pid!);
      const t0 = performance.now();
      const totals = await runStream(newClient(), metadata, messages);
      const perS = totals.stored / ((performance.now() - t0) / 1000);
      const serverUs = ((await processCpuSeconds(child.pid!)) - serverCpu0) * 1e6 / totals.stored;
      const { rows } = await sql.query<{ n: string }>(`select count(*) as n from device_metrics`);
      if (Number(rows[0]!.n) !== totals.stored || totals.stored !== STORED) {
        throw new Error(`acks say ${totals.stored} stored, the table holds ${rows[0]!.n}, expected ${STORED}`);
      }
      const copyRows = plain.flatMap((m) =>
        m.samples.map((s) => [
          m.device_id,
          new Date(s.occurred_at.seconds * 1000 + s.occurred_at.nanos / 1e6),
          s.metrics,
          "significant_change",
        ]),
      );
      await truncate();
      const copy = await copyRowsPerSecond(bench.url, "device_metrics", ["device_id", "occurred_at", "metrics", "reason"], copyRows);
      await truncate();
      console.log(
        `round ${round} one stream, all stored: ${Math.round(perS)} rows/s (server ${serverUs.toFixed(2)} µs CPU/row); raw COPY ${Math.round(copy)} rows/s (ratio ${(perS / copy).toFixed(3)})`,
      );
      storedRounds.push({ perS, copy, serverUs });
    }
    if (runs("streams")) figures.received100.push(await measureManyStreams("columns", round));
    if (runs("streams-map")) figures.received100Map.push(await measureManyStreams("map", round));
    await truncate();
  }

  const { columns, map, compact: compactForm } = oneStream;
  const rate = (xs: number[]) => (xs.length > 0 ? Math.round(median(xs)) : 0);
  const us = (xs: number[]) => (xs.length > 0 ? Number(median(xs).toFixed(2)) : null);
  printResult({
    received_per_s: rate(columns.perS),
    stored_per_s: storedRounds.length > 0 ? Math.round(median(storedRounds.map((r) => r.perS))) : 0,
    ratio_to_copy: storedRounds.length > 0 ? Number(median(storedRounds.map((r) => r.perS / r.copy)).toFixed(3)) : null,
    received_per_s_100_streams: rate(figures.received100),
    received_per_s_map: rate(map.perS),
    received_per_s_compact: rate(compactForm.perS),
    received_per_s_100_streams_map: rate(figures.received100Map),
    server_cpu_us_per_sample: us(columns.serverUs),
    client_cpu_us_per_sample: us(columns.clientUs),
    server_cpu_us_per_sample_map: us(map.serverUs),
    client_cpu_us_per_sample_map: us(map.clientUs),
    server_cpu_us_per_sample_compact: us(compactForm.serverUs),
    server_cpu_us_per_stored_row: us(storedRounds.map((r) => r.serverUs)),
    copy_rows_per_s: storedRounds.length > 0 ? Math.round(median(storedRounds.map((r) => r.copy))) : 0,
    stored_share_realistic: Number(columns.storedShare.toFixed(4)),
  });
} finally {
  for (const client of openClients) client.close();
  await sql.end();
  const exited = new Promise((resolve) => child.once("exit", resolve));
  child.kill("SIGTERM");
  await exited;
  await bench.drop();
  await rm(dataDir, { recursive: true, force: true });
}
