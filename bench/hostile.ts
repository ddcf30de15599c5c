/**
 * The hostile probe: each class of attack from issue 19, sent to a real server while a separate
 * client measures its health-check latency, so a stall or a leak shows as a number.
 *
 * Each class gets a server of its own (a fresh process started as `npm start` starts it, on a
 * fresh database; test/support/hostile-server.ts), so a server one class leaves stuck cannot spoil
 * the next class's figures, and its own time limit, so the probe ends in bounded time on code that
 * stalls for hours. The health prober (test/support/hostile-health.ts) runs in a worker thread and
 * connects from another loopback address: it measures the server, not this process.
 *
 * Classes:
 * - `escape_run`: LogUserActivity with a `Struct` string of 1 MB of backslashes then U+0000, from
 *   a valid `user` token (Connect JSON and gRPC binary, one call each), then the same with 30,000
 *   backslashes, under the size caps, so the content scan runs (`in_cap`).
 * - `repeated_structs`: one LogEvents event whose `extra_data` is sent 4,096 times (gRPC binary, a
 *   `service` token: the compiled decoder's path).
 * - `unauthenticated_4mib`: a LogEvents body of just under 4 MiB of empty events with no token
 *   (gRPC binary, and Connect JSON).
 * - `json_log_events`: Connect JSON LogEvents from a `service` token: just under 4 MiB of empty
 *   events (refused for their count), then 70 events of 4,000-key Structs (~3.9 MB, stored).
 * - `half_sent_http1`: 200 HTTP/1.1 requests whose headers never end.
 * - `idle_http2`: 1,000 HTTP/2 sessions that open no stream.
 *
 * The server gets a 2 s header deadline and a 5 s idle timeout (`ANALYTICS_HEADERS_TIMEOUT_MS`,
 * `ANALYTICS_IDLE_TIMEOUT_MS`); a build that does not know these settings yet runs without them
 * (listed in `ignored_settings`). `open_after_deadline` counts, from the client side, the
 * half-sent requests and idle sessions still open once the deadline (plus a margin) has passed.
 *
 * Run: `npm run bench -- hostile [--class-timeout-s 30] [--only escape_run,idle_http2]`.
 * Last line: `{"worst_health_ms", "open_after_deadline", "classes": {NAME: {...}}, "ignored_settings"}`;
 * goals: worst_health_ms <= 100, open_after_deadline = 0. Each class reports its own
 * `worst_health_ms` (and health checks that failed), the time its requests took to be answered
 * (null: not within the class's time limit) and the codes they got, and the server's peak RSS.
 */
import { fromJson, toBinary } from "@bufbuild/protobuf";
import { StructSchema } from "@bufbuild/protobuf/wkt";
import http2 from "node:http2";
import net from "node:net";
import { startHealthProbe, STILL_UNANSWERED, type HealthProbe } from "../test/support/hostile-health.js";
import { startHostileServer, type HostileServer } from "../test/support/hostile-server.js";
import { concat, envelope, H2Pool, h1Call, h2Call, lenField, wrapFields, type Outcome } from "../test/support/hostile-wire.js";
import { BENCH_SERVER_URL, numberArg, printResult, stringArg } from "./_support.js";

const HEADERS_TIMEOUT_MS = 2000;
const IDLE_TIMEOUT_MS = 5000;
/** Time past a deadline before a connection still open counts as left open. */
const MARGIN_MS = 2000;
const CLASS_TIMEOUT_MS = numberArg("class-timeout-s", 30) * 1000;
const ONLY = stringArg("only")?.split(",");

const SETTINGS = {
  ANALYTICS_HEADERS_TIMEOUT_MS: String(HEADERS_TIMEOUT_MS),
  ANALYTICS_IDLE_TIMEOUT_MS: String(IDLE_TIMEOUT_MS),
};

// The hostile server's database lives on the benchmarks' PostgreSQL server.
process.env.DATABASE_URL ??= BENCH_SERVER_URL;

/** What a class measures, besides the health figures added around it. */
type ClassFigures = Record<string, unknown> & { open_after_deadline?: number };

interface Context {
  readonly server: HostileServer;
  readonly probe: HealthProbe;
}

const LOG_EVENTS = "/analytics.v1.AnalyticsService/LogEvents";
const LOG_USER_ACTIVITY = "/analytics.v1.AnalyticsService/LogUserActivity";

/** `{ code, ms }` of an outcome, ms null when it timed out. */
const answered = (o: Outcome) => ({ code: o.code, ms: o.code === "timeout" ? null : Math.round(o.ms) });

const classes: Record<string, (ctx: Context) => Promise<ClassFigures>> = {
  async escape_run({ server }) {
    const token = `Bearer ${await server.token("user", "hostile-user")}`;
    const pool = new H2Pool(server.url);
    const agent = new (await import("node:http")).Agent({ keepAlive: false });
    // Both encodings at once: each is one request, and the class's time limit holds for the pair.
    const send = async (backslashes: number) => {
      const run = "\\".repeat(backslashes) + "\u0000";
      const message = { activityType: "ACTIVITY_TYPE_CLICK", pageUrl: "/p", extraData: { note: run } };
      const [json, binary] = await Promise.all([
        h1Call(agent, server.url, {
          path: LOG_USER_ACTIVITY,
          body: new TextEncoder().encode(JSON.stringify(message)),
          contentType: "application/json",
          headers: { authorization: token },
          timeoutMs: CLASS_TIMEOUT_MS,
        }),
        h2Call(pool, {
          path: LOG_USER_ACTIVITY,
          // LogUserActivityRequest { activity_type: 2, page_url: "/p", extra_data (7): { note: run } }
          body: envelope(concat([Uint8Array.of(0x08, 0x02), lenField(2, new TextEncoder().encode("/p")), lenField(7, toBinary(StructSchema, fromJson(StructSchema, { note: run })))])),
          contentType: "application/grpc",
          headers: { authorization: token },
          timeoutMs: CLASS_TIMEOUT_MS,
        }),
      ]);
      return { connect_json: answered(json), grpc_binary: answered(binary) };
    };
    try {
      // 1 MB (the figure) is over the method's message cap: refused for its size. 30,000
      // backslashes (~60 kB of JSON, under the payload's 64 KiB cap) reach the content scan, where
      // 16k took ~0.8 s before the scan was made linear.
      return { ...(await send(1024 * 1024)), in_cap: await send(30_000) };
    } finally {
      pool.close();
      agent.destroy();
    }
  },

  async repeated_structs({ server }) {
    const token = `Bearer ${await server.token("service", "hostile-service")}`;
    // Event { user_activity (1): { activity_type: 2, extra_data (7) x 4096 } } in LogEventsRequest.events (1),
    // each repeat with keys of its own, so the merged Struct grows with every one.
    const struct = (i: number) => lenField(7, toBinary(StructSchema, fromJson(StructSchema, { [`k${i}`]: "v", [`n${i}`]: i })));
    const activity = concat([Uint8Array.of(0x08, 0x02), ...Array.from({ length: 4096 }, (_, i) => struct(i))]);
    const pool = new H2Pool(server.url);
    try {
      const o = await h2Call(pool, {
        path: LOG_EVENTS,
        body: envelope(wrapFields([1, 1], activity)),
        contentType: "application/grpc",
        headers: { authorization: token },
        timeoutMs: CLASS_TIMEOUT_MS,
      });
      return { grpc_binary: answered(o), message_bytes: activity.length };
    } finally {
      pool.close();
    }
  },

  async unauthenticated_4mib({ server }) {
    const cap = 4 * 1024 * 1024;
    // Empty events: 0a 00 each (binary), {} each (JSON), as many as fit under the default cap.
    const binary = new Uint8Array(Math.floor((cap - 16) / 2) * 2);
    for (let i = 0; i < binary.length; i += 2) binary[i] = 0x0a;
    const count = Math.floor((cap - 16) / 3);
    const json = new TextEncoder().encode(`{"events":[${Array.from({ length: count }, () => "{}").join(",")}]}`);
    const pool = new H2Pool(server.url);
    const agent = new (await import("node:http")).Agent({ keepAlive: false });
    try {
      const grpc = await h2Call(pool, { path: LOG_EVENTS, body: envelope(binary), contentType: "application/grpc", timeoutMs: CLASS_TIMEOUT_MS });
      const connect = await h1Call(agent, server.url, { path: LOG_EVENTS, body: json, contentType: "application/json", timeoutMs: CLASS_TIMEOUT_MS });
      return { grpc_binary: answered(grpc), connect_json: answered(connect), bytes: binary.length };
    } finally {
      pool.close();
      agent.destroy();
    }
  },

  async json_log_events({ server }) {
    // Authenticated, so the body is read and decoded (Connect decoded it in one block: ~1 s for
    // the empty events, ~0.4 s for the Structs). Both under the 4 MiB cap.
    const token = `Bearer ${await server.token("service", "hostile-service")}`;
    const cap = 4 * 1024 * 1024;
    const empty = new TextEncoder().encode(`{"events":[${Array.from({ length: Math.floor((cap - 16) / 3) }, () => "{}").join(",")}]}`);
    // 70 events of 4,000-key Structs (~55 kB each, under the 64 KiB payload cap): stored.
    const extraData = Object.fromEntries(Array.from({ length: 4000 }, (_, k) => [`k${k}`, k]));
    const structs = new TextEncoder().encode(JSON.stringify({ events: Array.from({ length: 70 }, () => ({ userActivity: { activityType: "ACTIVITY_TYPE_CLICK", pageUrl: "/p", extraData } })) }));
    const agent = new (await import("node:http")).Agent({ keepAlive: false });
    const send = (body: Uint8Array) =>
      h1Call(agent, server.url, { path: LOG_EVENTS, body, contentType: "application/json", headers: { authorization: token }, timeoutMs: CLASS_TIMEOUT_MS });
    try {
      return { empty_events: answered(await send(empty)), many_key_structs: answered(await send(structs)), bytes: [empty.length, structs.length] };
    } finally {
      agent.destroy();
    }
  },

  async half_sent_http1({ server }) {
    const sockets = await Promise.all(
      Array.from(
        { length: 200 },
        () =>
          new Promise<{ socket: net.Socket; closedAt: () => number | undefined; got408: () => boolean }>((resolve) => {
            let closedAt: number | undefined;
            let head = "";
            const socket = net.connect(server.port, "127.0.0.1", () => {
              // Headers that never end (no blank line).
              socket.write(`POST ${LOG_EVENTS} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n`);
              resolve({ socket, closedAt: () => closedAt, got408: () => head.startsWith("HTTP/1.1 408") });
            });
            socket.setEncoding("latin1");
            socket.on("data", (d: string) => (head += d));
            socket.on("error", () => {});
            socket.on("close", () => (closedAt ??= performance.now()));
          }),
      ),
    );
    const sent = performance.now();
    await sleep(HEADERS_TIMEOUT_MS + MARGIN_MS);
    const open = sockets.filter((s) => s.closedAt() === undefined).length;
    const closedAfter = sockets.map((s) => s.closedAt()).filter((t): t is number => t !== undefined).map((t) => t - sent);
    for (const s of sockets) s.socket.destroy();
    return {
      requests: sockets.length,
      open_after_deadline: open,
      answered_408: sockets.filter((s) => s.got408()).length,
      last_closed_after_ms: closedAfter.length === 0 ? null : Math.round(Math.max(...closedAfter)),
    };
  },

  async idle_http2({ server }) {
    const sessions = await Promise.all(
      Array.from(
        { length: 1000 },
        () =>
          new Promise<{ session: http2.ClientHttp2Session; closedAt: () => number | undefined; goaway: () => boolean }>((resolve) => {
            let closedAt: number | undefined;
            let goaway = false;
            const session = http2.connect(server.url);
            const ready = () => resolve({ session, closedAt: () => closedAt, goaway: () => goaway });
            session.once("connect", ready);
            session.on("error", () => {});
            session.on("goaway", () => (goaway = true));
            // A session refused before it connected counts as closed at once.
            session.on("close", () => {
              closedAt ??= performance.now();
              ready();
            });
          }),
      ),
    );
    const opened = performance.now();
    await sleep(IDLE_TIMEOUT_MS + MARGIN_MS);
    const open = sessions.filter((s) => s.closedAt() === undefined).length;
    const closedAfter = sessions.map((s) => s.closedAt()).filter((t): t is number => t !== undefined).map((t) => t - opened);
    for (const s of sessions) s.session.destroy();
    return {
      sessions: sessions.length,
      open_after_deadline: open,
      goaway: sessions.filter((s) => s.goaway()).length,
      last_closed_after_ms: closedAfter.length === 0 ? null : Math.round(Math.max(...closedAfter)),
    };
  },
};

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Runs `fn` with a limit; on expiry, a figure saying so (the request left in flight is abandoned). */
async function limited<T>(fn: () => Promise<T>, ms: number): Promise<T | { timed_out_after_ms: number }> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<{ timed_out_after_ms: number }>((resolve) => (timer = setTimeout(() => resolve({ timed_out_after_ms: ms }), ms)));
  try {
    return await Promise.race([fn(), expired]);
  } finally {
    clearTimeout(timer);
  }
}

const figures: Record<string, unknown> = {};
let ignoredSettings: readonly string[] = [];
let worstHealth = 0;
let openAfterDeadline = 0;
for (const [name, run] of Object.entries(classes)) {
  if (ONLY && !ONLY.includes(name)) continue;
  const server = await startHostileServer(SETTINGS);
  ignoredSettings = server.ignoredSettings;
  const probe = await startHealthProbe(server.url);
  await sleep(500); // a baseline before the attack
  const started = performance.now();
  // Half-sent requests and idle sessions wait out their deadline themselves; give them room.
  const result = await limited(() => run({ server, probe }), CLASS_TIMEOUT_MS + HEADERS_TIMEOUT_MS + IDLE_TIMEOUT_MS + MARGIN_MS);
  const elapsed = performance.now() - started;
  await sleep(500);
  const health = await probe.stop();
  // A check still waiting at the end (dropped by the probe when under 250 ms) means a stuck server.
  const stuck = probe.samples().some((s) => s.error === STILL_UNANSWERED);
  const peak = await server.peakRssMiB();
  await server.close({ kill: stuck });
  const classFigures = {
    ...result,
    worst_health_ms: health.worst_ms,
    p99_health_ms: health.p99_ms,
    failed_health_checks: health.failed,
    health_errors: [...new Set(probe.samples().flatMap((s) => (s.error === undefined ? [] : [s.error])))].slice(0, 3),
    health_checks: health.checks,
    server_stuck_at_end: stuck,
    server_peak_rss_mib: peak ?? null,
    class_ms: Math.round(elapsed),
  };
  figures[name] = classFigures;
  worstHealth = Math.max(worstHealth, health.worst_ms);
  openAfterDeadline += (result as ClassFigures).open_after_deadline ?? 0;
  console.log(`${name}: ${JSON.stringify(classFigures)}`);
}
printResult({
  worst_health_ms: worstHealth,
  open_after_deadline: openAfterDeadline,
  goals: { worst_health_ms: 100, open_after_deadline: 0 },
  settings: SETTINGS,
  ignored_settings: ignoredSettings,
  classes: figures,
});
