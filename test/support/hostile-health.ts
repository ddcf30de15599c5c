/**
 * Health-check latency measured continuously while hostile traffic runs: `grpc.health.v1.Health/Check`
 * over one HTTP/2 connection of its own, from a worker thread (its own event loop, so the time the
 * traffic generator spends building payloads never counts as the server's) and from another
 * loopback address (127.0.0.2 where the system allows it), so a per-client connection cap meant for
 * the attacker does not apply to the prober, as it would not to a load balancer.
 *
 * One check is in flight at a time; a new one starts `intervalMs` after the last one ended. A
 * check still unanswered counts with the time it has waited so far, so a server that stops
 * answering shows as a growing latency, not as silence.
 */
import { Worker } from "node:worker_threads";

/** One answered (or failed) check. */
export interface HealthSample {
  /** When it was sent (epoch ms). */
  readonly at: number;
  readonly ms: number;
  /** grpc-status 0 and SERVING. */
  readonly ok: boolean;
  readonly error?: string;
}

/** Summary of the samples within a time span. */
export interface HealthFigures {
  readonly checks: number;
  readonly failed: number;
  readonly worst_ms: number;
  readonly p50_ms: number;
  readonly p99_ms: number;
}

/** A running prober. */
export interface HealthProbe {
  /** Samples so far (after `stop`, the one left in flight too, with its wait until then). */
  samples(): HealthSample[];
  /** Figures over samples sent at or after `since` (epoch ms; default all), up to `until`. */
  figures(since?: number, until?: number): HealthFigures;
  /** Stops probing; resolves with the figures over the whole run. */
  stop(): Promise<HealthFigures>;
}

/** The error of the check still in flight when the probe stopped. */
export const STILL_UNANSWERED = "still unanswered at stop";

// Plain JavaScript: the worker runs without the TypeScript loader.
const WORKER_SOURCE = `
const http2 = require("node:http2");
const { parentPort, workerData } = require("node:worker_threads");
const { url, intervalMs, timeoutMs, localAddress } = workerData;
const REQUEST = Buffer.alloc(5); // HealthCheckRequest {} in a gRPC envelope
let session;
let stopped = false;
let pending; // { at, started }
function connect() {
  session = http2.connect(url, localAddress ? { localAddress } : {});
  session.on("error", () => {});
  session.on("goaway", () => { session = undefined; });
  session.on("close", () => { if (session !== undefined && session.closed) session = undefined; });
}
function check() {
  if (stopped) return;
  if (session === undefined || session.closed || session.destroyed) connect();
  const at = Date.now();
  const started = performance.now();
  pending = { at, started };
  let done = false;
  let body = Buffer.alloc(0);
  let status;
  const finish = (ok, error) => {
    // After the stop, the session's destruction ends the check in flight: it was reported then.
    if (done || stopped) return;
    done = true;
    clearTimeout(timer);
    pending = undefined;
    parentPort.postMessage({ at, ms: performance.now() - started, ok, error });
    if (!ok && session) { session.destroy(); session = undefined; }
    setTimeout(check, intervalMs);
  };
  const timer = setTimeout(() => { stream.close(); finish(false, "no answer in " + timeoutMs + " ms"); }, timeoutMs);
  let stream;
  try {
    stream = session.request({ ":method": "POST", ":path": "/grpc.health.v1.Health/Check", "content-type": "application/grpc", te: "trailers" });
  } catch (err) {
    clearTimeout(timer);
    finish(false, String(err));
    return;
  }
  stream.on("response", (headers) => { if (headers["grpc-status"] !== undefined) status = String(headers["grpc-status"]); });
  stream.on("trailers", (trailers) => { status = String(trailers["grpc-status"]); });
  stream.on("data", (chunk) => { body = Buffer.concat([body, chunk]); });
  stream.on("error", (err) => finish(false, String(err && err.message)));
  stream.on("close", () => {
    // HealthCheckResponse { status: SERVING (1) } is 08 01 after the 5-byte envelope.
    const serving = body.length >= 7 && body[5] === 0x08 && body[6] === 0x01;
    finish(status === "0" && serving, status === "0" ? (serving ? undefined : "not SERVING") : "grpc-status " + status);
  });
  stream.end(REQUEST);
}
parentPort.on("message", (msg) => {
  if (msg !== "stop") return;
  stopped = true;
  if (pending) parentPort.postMessage({ at: pending.at, ms: performance.now() - pending.started, ok: false, error: "${STILL_UNANSWERED}" });
  if (session) session.destroy();
  parentPort.postMessage("stopped");
});
check();
`;

/** Starts probing `url` (`http://host:port`) every `intervalMs` (default 20). */
export async function startHealthProbe(url: string, options: { intervalMs?: number; timeoutMs?: number } = {}): Promise<HealthProbe> {
  const localAddress = (await canBind("127.0.0.2")) && new URL(url).hostname === "127.0.0.1" ? "127.0.0.2" : undefined;
  const worker = new Worker(WORKER_SOURCE, {
    eval: true,
    workerData: { url, intervalMs: options.intervalMs ?? 20, timeoutMs: options.timeoutMs ?? 30_000, localAddress },
  });
  const samples: HealthSample[] = [];
  let stopped: Promise<void> | undefined;
  let onStopped: (() => void) | undefined;
  worker.on("message", (msg: HealthSample | "stopped") => {
    if (msg === "stopped") return onStopped?.();
    // A check sent just before the stop is not a slow one.
    if (msg.error === STILL_UNANSWERED && msg.ms < 250) return;
    samples.push(msg);
  });
  worker.on("error", (err) => samples.push({ at: Date.now(), ms: 0, ok: false, error: `probe worker failed: ${err.message}` }));
  const figures = (since = 0, until = Infinity): HealthFigures => summarize(samples.filter((s) => s.at >= since && s.at <= until));
  return {
    samples: () => samples,
    figures,
    async stop() {
      stopped ??= new Promise<void>((resolve) => {
        onStopped = resolve;
        worker.postMessage("stop");
      }).then(() => worker.terminate().then(() => undefined));
      await stopped;
      return figures();
    },
  };
}

/** Figures of a list of samples. */
export function summarize(samples: readonly HealthSample[]): HealthFigures {
  const ms = samples.map((s) => s.ms).sort((a, b) => a - b);
  const at = (q: number) => (ms.length === 0 ? 0 : ms[Math.min(ms.length - 1, Math.floor(q * ms.length))]!);
  return {
    checks: samples.length,
    failed: samples.filter((s) => !s.ok).length,
    worst_ms: round(ms.length === 0 ? 0 : ms[ms.length - 1]!),
    p50_ms: round(at(0.5)),
    p99_ms: round(at(0.99)),
  };
}

const round = (x: number) => Math.round(x * 10) / 10;

async function canBind(address: string): Promise<boolean> {
  const net = await import("node:net");
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once("error", () => resolve(false));
    s.listen(0, address, () => s.close(() => resolve(true)));
  });
}
