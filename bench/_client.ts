/**
 * The client side of the RPC benchmarks, run as its own process (`runBenchClient`) so that the
 * client's encoding and GC do not share the server's event loop: clients are remote in real life.
 *
 * argv[2]: JSON `{ kind: "unary" | "unary-interleaved" | "log-events", baseUrl, token, seconds?, inFlight?, events?, batch? }`.
 * Prints one JSON line with the figures.
 */
import * as grpc from "@grpc/grpc-js";
import http2 from "node:http2";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { AnalyticsService, LogDeviceStateChangeRequestSchema, LogEventsRequestSchema, LogEventsResponseSchema } from "../sdk/src/gen/analytics/v1/analytics_service_pb.js";
import { createAnalyticsClient } from "../sdk/src/analytics-client.js";
import { createNodeTransport } from "../sdk/src/node/transport.js";
import { callsPerSecond, postgresCpuSeconds, processCpuSeconds } from "./_support.js";
import { benchBatches } from "./_events.js";

interface Job {
  kind: "unary" | "unary-interleaved" | "log-events";
  baseUrl: string;
  token: string;
  seconds?: number;
  inFlight?: number;
  events?: number;
  batch?: number;
  /**
   * log-events: the client. `sdk`: the SDK's own client (`createAnalyticsClient` over
   * `createNodeTransport`, gRPC), encoding as it sends, as services use it; `pre-encoded`: every request
   * encoded (protobuf-es) before the clock starts and sent as bytes by @grpc/grpc-js (in
   * production the encoding happens on the callers' machines, not the server's);
   * `h2`: the same bytes framed as gRPC messages before the clock starts and sent over one
   * `node:http2` session, reading only the response's counts (a load generator in the manner
   * of h2load or ghz: ~3x less client CPU per event than @grpc/grpc-js, whose client would
   * otherwise take a quarter of the two cores the server runs on). It asks for no response
   * compression (as grpc-go's default client), so the server does not gzip its answers.
   */
  client?: "sdk" | "pre-encoded" | "h2";
  /** log-events: the run's seed; the events are `benchBatches(seed, events, batch)` (bench/_events.ts). */
  seed?: number;
  /** log-events, unary: the server's process id, whose CPU over the timed window is reported (`server_cpu_s`). */
  serverPid?: number;
  /**
   * unary-interleaved: the servers compared, called in turn for `slices` slices of `seconds`
   * each (`baseUrl`, `token` and `serverPid` are ignored).
   */
  targets?: { baseUrl: string; token: string; serverPid: number }[];
  slices?: number;
  /** unary-interleaved: idle time after each slice, so no server's deferred work runs in the next one's. */
  gapMs?: number;
}

const job = JSON.parse(process.argv[2]!) as Job;

/**
 * Unary gRPC calls over one bare `node:http2` session, as a load generator (h2load, ghz) makes
 * them: requests framed before the clock starts (5-byte gRPC prefix + protobuf bytes), the
 * answer's `grpc-status` checked, its message returned undecoded. No response compression is
 * asked for (as grpc-go's default client).
 */
function h2Caller(job: Pick<Job, "baseUrl" | "token">, path: string): { call: (frame: Buffer) => Promise<Buffer>; close: () => void } {
  const session = http2.connect(job.baseUrl);
  session.on("error", (err) => console.error("h2 session:", err));
  const headers = { ":method": "POST", ":path": path, "content-type": "application/grpc+proto", te: "trailers", authorization: `Bearer ${job.token}` };
  const call = (frame: Buffer) =>
    new Promise<Buffer>((resolve, reject) => {
      const stream = session.request(headers);
      const chunks: Buffer[] = [];
      let status: string | undefined;
      let message: string | undefined;
      const take = (h: http2.IncomingHttpHeaders) => {
        if (h["grpc-status"] !== undefined) [status, message] = [String(h["grpc-status"]), String(h["grpc-message"] ?? "")];
      };
      stream.on("response", take);
      stream.on("trailers", take);
      stream.on("data", (c: Buffer) => chunks.push(c));
      stream.on("error", reject);
      stream.on("end", () => {
        if (status !== "0") return reject(new Error(`${path}: grpc-status ${status} ${decodeURIComponent(message ?? "")}`));
        const body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
        if (body[0] !== 0) return reject(new Error(`${path}: compressed or missing response`));
        resolve(body.subarray(5, 5 + body.readUInt32BE(1)));
      });
      stream.end(frame);
    });
  return { call, close: () => session.close() };
}

/** `bytes` as one gRPC length-prefixed message. */
function grpcFrame(bytes: Uint8Array): Buffer {
  const frame = Buffer.alloc(5 + bytes.length);
  frame.writeUInt32BE(bytes.length, 1);
  frame.set(bytes, 5);
  return frame;
}

/**
 * `LogEvents` through {@link h2Caller}: `stored_count` / `rejected_count` read off the answer's
 * top-level fields without decoding its 500 results.
 */
function h2Sender<B extends object>(job: Job, batches: readonly B[]): { send: (events: B) => Promise<number>; close: () => void } {
  const { call, close } = h2Caller(job, `/${AnalyticsService.typeName}/${AnalyticsService.method.logEvents.name}`);
  const framed = new Map(batches.map((events) => [events, grpcFrame(toBinary(LogEventsRequestSchema, create(LogEventsRequestSchema, { events: events as never })))]));
  const send = async (events: B) => {
    const counts = topLevelVarints(await call(framed.get(events)!));
    if ((counts[3] ?? 0) > 0) console.error(`LogEvents: ${counts[3]} rejected`);
    return counts[2] ?? 0;
  };
  return { send, close };
}

/** The varint fields at the top level of a protobuf message, by field number (others skipped). */
function topLevelVarints(buf: Uint8Array): Record<number, number> {
  const out: Record<number, number> = {};
  let pos = 0;
  const varint = () => {
    let v = 0;
    for (let shift = 0; ; shift += 7) {
      const b = buf[pos++]!;
      v += (b & 0x7f) * 2 ** shift;
      if (b < 0x80) return v;
    }
  };
  while (pos < buf.length) {
    const tag = varint();
    const wireType = tag & 7;
    if (wireType === 0) out[tag >>> 3] = varint();
    else if (wireType === 2) {
      const length = varint(); // read before `pos` is: `pos += varint()` would add to the old position
      pos += length;
    }
    else throw new Error(`unexpected wire type ${wireType} in LogEventsResponse`);
  }
  return out;
}

/**
 * LogDeviceStateChange over a bare HTTP/2 client (h2Caller), not connect-node or @grpc/grpc-js:
 * @grpc/grpc-js still cost the client ~480 µs of CPU per call, as much as the server, on the
 * same two cores. Requests for 1000 devices are encoded before the clock starts.
 */
function stateChangeCaller(target: Pick<Job, "baseUrl" | "token">): { call: () => Promise<unknown>; close: () => void } {
  const { call: send, close } = h2Caller(target, `/${AnalyticsService.typeName}/${AnalyticsService.method.logDeviceStateChange.name}`);
  const frames = (stateChangeFrames ??= Array.from({ length: 1000 }, (_, i) =>
    grpcFrame(
      toBinary(
        LogDeviceStateChangeRequestSchema,
        create(LogDeviceStateChangeRequestSchema, { deviceId: `device-${i}`, previousState: "online", newState: "offline", reason: "bench" }),
      ),
    ),
  ));
  let n = 0;
  return { call: () => send(frames[n++ % frames.length]!), close };
}

/** The framed LogDeviceStateChange requests, made on first use (a log-events client needs none). */
let stateChangeFrames: Buffer[] | undefined;

if (job.kind === "unary-interleaved") {
  // Servers compared in short alternating slices (A B B A A B ...), from one client process: a
  // neighbour's load that comes and goes on this shared machine lands on both alike, where
  // whole multi-second rounds of one server, then the other, each caught it or not.
  const targets = job.targets!.map((t) => ({ ...t, ...stateChangeCaller(t) }));
  // Warm up connections and JIT on every server before measuring, in turn as they are measured.
  for (let round = 0; round < 3; round++) for (const t of targets) await callsPerSecond(1, job.inFlight ?? 64, t.call);
  const slices: { target: number; calls: number; seconds: number; server_cpu_s: number }[] = [];
  for (let s = 0; s < (job.slices ?? 20); s++) {
    const pair = Math.floor(s / targets.length);
    const k = s % targets.length;
    const target = pair % 2 === 0 ? k : targets.length - 1 - k;
    const t = targets[target]!;
    const cpu0 = await processCpuSeconds(t.serverPid);
    let calls = 0;
    const started = performance.now();
    await callsPerSecond(job.seconds ?? 2, job.inFlight ?? 64, async () => {
      await t.call();
      calls++;
    });
    const seconds = (performance.now() - started) / 1000;
    const serverCpuS = (await processCpuSeconds(t.serverPid)) - cpu0;
    slices.push({ target, calls, seconds, server_cpu_s: serverCpuS });
    await new Promise((r) => setTimeout(r, job.gapMs ?? 300));
  }
  for (const t of targets) t.close();
  console.log(JSON.stringify({ slices }));
} else if (job.kind === "unary") {
  const { call, close } = stateChangeCaller(job);
  let n = 0;
  const counted = async () => {
    await call();
    n++;
  };
  // Warm up connections and JIT before measuring.
  await callsPerSecond(1, job.inFlight ?? 64, counted);
  const cpu0 = process.cpuUsage();
  const serverCpu0 = job.serverPid === undefined ? 0 : await processCpuSeconds(job.serverPid);
  const calls0 = n;
  const perS = await callsPerSecond(job.seconds ?? 5, job.inFlight ?? 64, counted);
  const cpu = process.cpuUsage(cpu0);
  const serverCpuS = job.serverPid === undefined ? null : (await processCpuSeconds(job.serverPid)) - serverCpu0;
  // total_calls counts the warm-up too, for an in-process server's CPU-per-call figure;
  // server_cpu_s (a server in its own process) covers the timed calls only.
  console.log(JSON.stringify({ calls_per_s: perS, total_calls: n, client_cpu_s: (cpu.user + cpu.system) / 1e6, timed_calls: n - calls0, server_cpu_s: serverCpuS }));
  close();
} else {
  const total = job.events ?? 100_000;
  const size = job.batch ?? 500;
  const batches = benchBatches(job.seed ?? 1, total, size);
  let send: (events: (typeof batches)[number]) => Promise<number>;
  let close = () => {};
  if (job.client === "pre-encoded") {
    const raw = new grpc.Client(new URL(job.baseUrl).host, grpc.credentials.createInsecure());
    const metadata = new grpc.Metadata();
    metadata.set("authorization", `Bearer ${job.token}`);
    const encoded = new Map(batches.map((events) => [events, Buffer.from(toBinary(LogEventsRequestSchema, create(LogEventsRequestSchema, { events })))]));
    const path = `/${AnalyticsService.typeName}/${AnalyticsService.method.logEvents.name}`;
    send = (events) =>
      new Promise((resolve, reject) =>
        raw.makeUnaryRequest(path, (b: Buffer) => b, (b: Buffer) => b, encoded.get(events)!, metadata, (err, res) => {
          if (err) return reject(err);
          const r = fromBinary(LogEventsResponseSchema, res!);
          if (r.rejectedCount > 0) console.error(JSON.stringify(r.results.find((x) => x.violations.length > 0)));
          resolve(r.storedCount);
        }),
      );
  } else if (job.client === "h2") {
    ({ send, close } = h2Sender(job, batches));
  } else {
    const analytics = createAnalyticsClient(createNodeTransport({ baseUrl: job.baseUrl, token: job.token, retry: false }));
    // The SDK's input shape ({ deviceStateChange: {...} }), made before the clock starts.
    const inputs = new Map(batches.map((events) => [events, events.map((e) => ({ deviceStateChange: e.kind.value }))]));
    send = async (events) => (await analytics.logEvents(inputs.get(events)!)).storedCount;
  }
  const serverCpu0 = job.serverPid === undefined ? 0 : await processCpuSeconds(job.serverPid);
  const pgCpu0 = await postgresCpuSeconds();
  const clientCpu0 = process.cpuUsage();
  const started = performance.now();
  let next = 0;
  let stored = 0;
  await Promise.all(
    Array.from({ length: job.inFlight ?? 4 }, async () => {
      while (next < batches.length) {
        const n = await send(batches[next++]!);
        stored += n;
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  // The server's CPU over exactly this window (not the parent's parsing of this output after it).
  const serverCpuS = job.serverPid === undefined ? null : (await processCpuSeconds(job.serverPid)) - serverCpu0;
  const pgCpu1 = await postgresCpuSeconds();
  const pgCpuS = pgCpu0 === undefined || pgCpu1 === undefined ? null : pgCpu1 - pgCpu0;
  const clientCpu = process.cpuUsage(clientCpu0);
  const clientCpuS = (clientCpu.user + clientCpu.system) / 1e6;
  close();
  console.log(JSON.stringify({ events_per_s: stored / seconds, stored, seconds, server_cpu_s: serverCpuS, client_cpu_s: clientCpuS, pg_cpu_s: pgCpuS }));
}
