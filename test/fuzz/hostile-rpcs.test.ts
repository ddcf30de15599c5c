/**
 * Fuzz suite: for every RPC (AnalyticsService, MetricsService, grpc.health.v1, both reflections),
 * in binary and JSON, hostile and malformed requests (test/support/hostile-messages.ts) are sent
 * over the network to the real server, run in a process of its own as `npm start` runs it on a
 * fresh database, through connect-node clients (gRPC, Connect) and raw HTTP/2 and HTTP/1.1.
 *
 * Asserted for each RPC and encoding: the server process never exits; every answer is an RPC
 * status a client can act on (OK where the message happens to be valid, else InvalidArgument,
 * ResourceExhausted, Unauthenticated, PermissionDenied; NotFound where a name is looked up; Internal
 * only in Connect's words for a body it cannot parse, as the gRPC spec has it), never a masked
 * failure or Unknown, never a hang past the client deadline; and a health check on a connection
 * of its own (probed every 20 ms from a worker thread) answers within FUZZ_HEALTH_MS (100) while
 * they run.
 *
 * `npm test` runs FUZZ_RUNS (default 100) cases per RPC and encoding; `npm run fuzz` runs 10,000
 * (vitest.fuzz.config.ts). FUZZ_SEED (default 19190) seeds every property; a failure prints it.
 * A summary per input class (codes seen, slowest answer, worst health latency while that class was
 * in flight) is printed at the end either way.
 */
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Role } from "../../src/auth/principal.js";
import { loadConfig } from "../../src/config.js";
import { messageCaps } from "../../src/server/message-caps.js";
import { startHealthProbe, summarize, type HealthProbe } from "../support/hostile-health.js";
import { clientCases, FUZZ_TARGETS, messageJson, rawCases, type Encoding, type FuzzCase, type FuzzTarget } from "../support/hostile-messages.js";
import { FuzzSender, type Channel } from "../support/hostile-send.js";
import { startHostileServer, type HostileServer } from "../support/hostile-server.js";

const SEED = Number(process.env.FUZZ_SEED ?? 19190);
const RUNS = Number(process.env.FUZZ_RUNS ?? 100);
/** Cases in flight at once. */
const CONCURRENCY = Number(process.env.FUZZ_CONCURRENCY ?? 1);
const HEALTH_MS = Number(process.env.FUZZ_HEALTH_MS ?? 100);
/** A call with no answer after this long is a hang. */
const CALL_TIMEOUT_MS = Number(process.env.FUZZ_CALL_TIMEOUT_MS ?? 10_000);
/** Wall-clock limit of one RPC and encoding's run (default: room for every case at ~120 ms: a Health/Watch case waits out its grace period). */
const PROPERTY_LIMIT_MS = Number(process.env.FUZZ_PROPERTY_LIMIT_S ?? Math.max(30, (RUNS * 120) / 1000)) * 1000;

/** Answers a client can act on; anything else is a finding. */
const CLEAN = new Set(["ok", "invalid_argument", "resource_exhausted", "unauthenticated", "permission_denied"]);
/** RPCs that look a name up, where NotFound is the right answer. */
const LOOKUPS = new Set(["/analytics.v1.AnalyticsService/ResolveError", "/grpc.health.v1.Health/Check", "/grpc.health.v1.Health/Watch"]);

const defaults = loadConfig({});
/** The read cap of each method with one of its own (src/server/message-caps.ts). */
const methodCaps = messageCaps({ maxMessageBytes: defaults.maxMessageBytes, metricsMessageBytes: defaults.metricsMaxMessageBytes });
const capsOf = (target: FuzzTarget) => ({
  messageBytes: /DeviceMetrics$/.test(target.method.name) && target.service.typeName === "analytics.v1.AnalyticsService" ? defaults.metricsMaxMessageBytes : defaults.maxMessageBytes,
});

/** Who the call claims to be: mostly a role allowed to call (so the content is parsed), sometimes not. */
const CALLERS: fc.Arbitrary<Role | "none" | "garbage"> = fc.oneof(
  { weight: 8, arbitrary: fc.constant<Role>("admin") },
  { weight: 2, arbitrary: fc.constantFrom<Role>("service", "user", "device") },
  { weight: 1, arbitrary: fc.constantFrom("none" as const, "garbage" as const) },
);

interface Record {
  readonly target: string;
  readonly encoding: Encoding;
  readonly channel: Channel;
  readonly cls: string;
  readonly label: string;
  readonly oversize: boolean;
  /** An HTTP/1.1 body past its method's read cap (the answer then closes the connection). */
  readonly overCap?: boolean;
  readonly caller: string;
  readonly code: string;
  readonly message?: string;
  readonly ms: number;
  readonly start: number;
  readonly end: number;
}

let server: HostileServer;
let probe: HealthProbe;
let sender: FuzzSender;
const tokens = new Map<string, string>();
const records: Record[] = [];

beforeAll(async () => {
  // Rate limits off: the limiter would answer most calls before their content is read.
  server = await startHostileServer({ ANALYTICS_RATE_LIMITS: "admin=off,service=off,user=off,device=off" });
  for (const role of ["admin", "service", "user", "device"] as const) tokens.set(role, `Bearer ${await server.token(role)}`);
  tokens.set("garbage", "Bearer not.a.token");
  sender = new FuzzSender(server.url, CALL_TIMEOUT_MS);
  // Warm-up before the health probe starts: every RPC, encoding and channel once with valid
  // messages, so the server's first-call costs (code compiled on first use, the first flush of
  // each table) are not counted as a stall caused by the hostile case that happens to come first.
  const admin = tokens.get("admin");
  for (const target of FUZZ_TARGETS) {
    for (const encoding of ["binary", "json"] as const) {
      for (const channel of ["client-grpc", "client-connect", "raw-grpc", "raw-connect"] as const) {
        for (const pick of [0, 1]) {
          const json = messageJson(target.method.input, pick);
          await sender.send(target, encoding, channel, { kind: "message", label: "warm-up", cls: "warm-up", json, oversize: false }, admin);
        }
      }
    }
  }
  probe = await startHealthProbe(server.url);
}, 300_000);

afterAll(async () => {
  const health = await probe?.stop();
  sender?.close();
  if (server) {
    printSummary(health);
    await server.close();
  }
}, 60_000);

const cases = FUZZ_TARGETS.flatMap((target, i) =>
  (["binary", "json"] as const).map((encoding, j) => ({ target, encoding, seed: SEED + (i * 2 + j) * 7919 })),
);

describe(`fuzz (FUZZ_SEED=${SEED}, ${RUNS} cases per RPC and encoding)`, () => {
  // Named in full (it.each would cut a long path short, and -t could not find it).
  for (const { target, encoding, seed } of cases) it(`${target.path} (${encoding})`, async () => {
    const caps = capsOf(target);
    const arb = fc.oneof(
      fc.record({ channel: fc.constantFrom<Channel>("client-grpc", "client-connect"), c: clientCases(target, caps), caller: CALLERS }),
      fc.record({ channel: fc.constant<Channel>("raw-grpc"), c: rawCases(target, encoding, caps, true), caller: CALLERS }),
      fc.record({ channel: fc.constant<Channel>("raw-connect"), c: rawCases(target, encoding, caps, false), caller: CALLERS }),
    );
    const started = Date.now();
    let runs = 0;
    let crash: string | undefined;
    const findings: Record[] = [];
    // Each run sends CONCURRENCY cases at once (the long run's speed; 1 in the short run).
    const batch = fc.array(arb, { minLength: CONCURRENCY, maxLength: CONCURRENCY });
    const result = await fc.check(
      fc.asyncProperty(batch, async (calls: { channel: Channel; c: FuzzCase; caller: string }[]) => {
        await Promise.all(
          calls.map(async ({ channel, c, caller }) => {
            runs++;
            const start = Date.now();
            const outcome = await sender.send(target, encoding, channel, c, tokens.get(caller));
            const rec: Record = { target: target.path, encoding, channel, cls: c.cls, label: c.label, oversize: c.oversize, overCap: outcome.bodyBytes !== undefined && outcome.bodyBytes > (methodCaps.get(target.path) ?? capsOf(target).messageBytes), caller, code: outcome.code, ms: outcome.ms, start, end: Date.now(), ...(outcome.message ? { message: outcome.message } : {}) };
            records.push(rec);
            if (!isClean(rec)) findings.push(rec);
          }),
        );
        const exited = server.exited();
        // A call that got no answer may have left the server busy: wait until it answers health
        // checks again, so the cases after it are not blamed for its stall.
        if (!exited && records.slice(-calls.length).some((r) => r.code === "timeout")) await recovered();
        if (exited) {
          crash = `the server exited (code ${exited.code}, signal ${exited.signal}) after: ${calls.map((x) => `${x.c.label} via ${x.channel}`).join("; ")}\n${exited.stderrTail}`;
          return false;
        }
        return true;
      }),
      { seed, numRuns: Math.ceil(RUNS / CONCURRENCY), endOnFailure: true, interruptAfterTimeLimit: PROPERTY_LIMIT_MS },
    );
    // At least one health check sent during the run has answered (a short run could end first).
    for (const until = Date.now() + CALL_TIMEOUT_MS; !probe.samples().some((s) => s.at >= started) && Date.now() < until; ) {
      await new Promise((r) => setTimeout(r, 20));
    }
    const health = summarize(probe.samples().filter((s) => s.at >= started));
    expect(health.checks, "health checks answered while this ran").toBeGreaterThan(0);
    const reproduce = `reproduce: FUZZ_SEED=${SEED} FUZZ_RUNS=${RUNS} FUZZ_CONCURRENCY=${CONCURRENCY} npx vitest run --config vitest.fuzz.config.ts -t '${target.path} \\(${encoding}\\)' (property seed ${seed})`;
    expect(crash, reproduce).toBeUndefined();
    // A run that threw (a generator or client bug, not an answer) stops the property: say where.
    const thrown = result.failed && crash === undefined ? `${String(result.errorInstance)} for ${JSON.stringify(result.counterexample?.[0]?.map((x) => `${x.c.label} via ${x.channel}`))}` : undefined;
    expect(thrown, reproduce).toBeUndefined();
    expect(
      findings.map((f) => `${f.cls} via ${f.channel} as ${f.caller}: ${f.code}${f.ms >= CALL_TIMEOUT_MS ? "" : ` after ${Math.round(f.ms)} ms`} (${f.label})${f.message ? `: ${f.message}` : ""}`),
      reproduce,
    ).toEqual([]);
    expect(result.interrupted ? `only ${runs} of ${RUNS} cases ran within ${PROPERTY_LIMIT_MS} ms` : "all ran", reproduce).toBe("all ran");
    expect(health.worst_ms, `worst health-check latency while ${target.path} (${encoding}) was fuzzed; ${reproduce}`).toBeLessThanOrEqual(HEALTH_MS);
    // The limit is checked between runs: the last one may add a call's timeout and a recovery wait.
  }, PROPERTY_LIMIT_MS + CALL_TIMEOUT_MS + 150_000);

  it("leaves the server running and healthy, and logging no internal errors", async () => {
    expect(server.exited()).toBeUndefined();
    const health = probe.figures();
    expect(health.failed, "health checks that failed").toBe(0);
    expect(server.errorLines(), "error lines the server logged").toEqual([]);
  });
});

/** Resolves once a health check sent from now on answers in time (or after 2 minutes). */
async function recovered(): Promise<void> {
  const from = Date.now();
  while (Date.now() - from < 120_000) {
    await new Promise((r) => setTimeout(r, 100));
    if (probe.samples().some((s) => s.at >= from && s.ok && s.ms <= HEALTH_MS)) return;
  }
}

function isClean(r: Record): boolean {
  if (CLEAN.has(r.code)) return true;
  if (r.code === "not_found" && LOOKUPS.has(r.target)) return true;
  // A server may close a connection that keeps sending past the size cap before the client has
  // read its answer; on HTTP/1.1 that is the only clean refusal it has.
  if (r.oversize && (r.code === "reset" || r.code === "http_413")) return true;
  // A body the protocol library cannot parse or decompress is INTERNAL by the gRPC spec ("Error
  // parsing request proto", "Could not decompress": doc/statuscodes.md), answered by Connect
  // before any interceptor; only those words, never a masked failure ("internal error").
  if (r.code === "internal" && LIBRARY_PARSE_ERROR.test(r.message ?? "")) return true;
  // A unary call whose body holds no message is a request cardinality violation: UNIMPLEMENTED
  // by the same table, in Connect's words.
  if (r.code === "unimplemented" && r.message === "protocol error: missing input message for unary method") return true;
  // HTTP/1.1 has no way to stop an upload but closing: the auth gate answers a caller without a
  // valid token at once and closes, and a client still writing a large body may see the close
  // (EPIPE) before the answer. Only for such callers, and only on the HTTP/1.1 client.
  // The same for a body past the size cap (the global one, or its method's), which the server
  // refuses and closes the same way.
  if (r.channel === "client-connect" && (r.oversize || r.overCap || r.caller === "none" || r.caller === "garbage") && HTTP1_CLOSED.test(r.message ?? "")) return true;
  if (r.channel === "raw-connect" && (r.overCap || r.caller === "none" || r.caller === "garbage") && HTTP1_CLOSED.test(r.message ?? "")) return true;
  return false;
}

/** Connect's own words for a request body it cannot parse or decompress. */
const LIBRARY_PARSE_ERROR = /^(parse binary: |received compressed envelope, but do not know how to decompress)/;
/** What a Node HTTP/1.1 client says when the server closed while it was still sending. */
const HTTP1_CLOSED = /^(write EPIPE|read ECONNRESET|write ECONNRESET|socket hang up)$/;

function printSummary(health: ReturnType<typeof summarize> | undefined): void {
  const samples = probe.samples();
  const byClass = new Map<string, Record[]>();
  for (const r of records) {
    const list = byClass.get(r.cls);
    if (list) list.push(r);
    else byClass.set(r.cls, [r]);
  }
  // Each health sample's wait is charged to every class with a call in flight during it.
  const byStart = [...records].sort((a, b) => a.start - b.start);
  // A loop, not a spread: a long run holds more records than a call's arguments may.
  const longest = records.reduce((m, r) => Math.max(m, r.end - r.start), 0);
  const worstByClass = new Map<string, number>();
  for (const s of samples) {
    let lo = 0;
    let hi = byStart.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (byStart[mid]!.start < s.at - longest) lo = mid + 1;
      else hi = mid;
    }
    for (let i = lo; i < byStart.length && byStart[i]!.start <= s.at + s.ms; i++) {
      const r = byStart[i]!;
      if (r.end >= s.at) worstByClass.set(r.cls, Math.max(worstByClass.get(r.cls) ?? 0, s.ms));
    }
  }
  const errors = [...new Set(samples.flatMap((s) => (s.error === undefined ? [] : [s.error])))];
  const lines = [`fuzz summary (FUZZ_SEED=${SEED}, FUZZ_CONCURRENCY=${CONCURRENCY}, ${records.length} calls; health over the run: ${JSON.stringify(health)}; failed checks: ${JSON.stringify(errors)})`];
  for (const [cls, rs] of [...byClass].sort()) {
    const codes = new Map<string, number>();
    for (const r of rs) codes.set(r.code, (codes.get(r.code) ?? 0) + 1);
    const slowest = rs.reduce((m, r) => Math.max(m, r.ms), 0);
    const worstHealth = worstByClass.get(cls) ?? 0;
    const slowestCall = rs.reduce((a, b) => (b.ms > a.ms ? b : a));
    const bad = rs.filter((r) => !isClean(r)).length;
    lines.push(
      `  ${cls.padEnd(20)} calls ${String(rs.length).padStart(6)}  unexpected ${String(bad).padStart(5)}  slowest ${Math.round(slowest).toString().padStart(6)} ms  worst health ${Math.round(worstHealth).toString().padStart(6)} ms  codes ${JSON.stringify(Object.fromEntries(codes))}\n      slowest: ${slowestCall.target} (${slowestCall.encoding}) via ${slowestCall.channel}: ${slowestCall.label}`,
    );
  }
  console.log(lines.join("\n"));
}

