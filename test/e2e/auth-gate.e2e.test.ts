/**
 * The auth gate on the real server: a call without a valid token is refused from its headers,
 * before its body is read, in every protocol (Connect unary JSON and binary, Connect streaming,
 * gRPC, gRPC-Web) over HTTP/1.1 and HTTP/2. Proved three ways: the answer arrives while the
 * client still holds most of its body; a 4 MiB `LogEvents` of empty events (~3 s of CPU to
 * parse) costs the process a few milliseconds; and a health check stays fast while several are
 * refused at once. An HTTP/2 connection that had a call refused serves the next calls.
 */
import { create, toBinary } from "@bufbuild/protobuf";
import { WireType } from "@bufbuild/protobuf/wire";
import { Code, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import http from "node:http";
import http2 from "node:http2";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AnalyticsService, LogEventsRequestSchema } from "../../sdk/src/gen/analytics/v1/analytics_service_pb.js";
import { HealthCheckRequestSchema } from "../../sdk/src/gen/grpc/health/v1/health_pb.js";
import { mintTestToken } from "../support/auth.js";
import { rpcError } from "../support/rpc-error.js";
import { useTestServer } from "../support/test-server.js";
import { envelope as wireEnvelope } from "../support/hostile-wire.js";
import { within } from "../support/within.js";

const t = useTestServer();

const LOG_EVENTS = `/${AnalyticsService.typeName}/${AnalyticsService.method.logEvents.name}`;
const STREAM_METRICS = `/${AnalyticsService.typeName}/${AnalyticsService.method.streamDeviceMetrics.name}`;
const HEALTH_CHECK = "/grpc.health.v1.Health/Check";
const MiB = 1024 * 1024;

/** `LogEventsRequest` of 2 Mi empty events (`0a 00` each): 4 MiB that take seconds to parse. */
const EMPTY_EVENTS = Buffer.alloc(4 * MiB);
for (let i = 0; i < EMPTY_EVENTS.length; i += 2) EMPTY_EVENTS[i] = 0x0a;
/** The same in JSON, just under 4 MiB (`{"events":[{},{},...]}`). */
const EMPTY_EVENTS_JSON = Buffer.from(`{"events":[${new Array<string>(Math.floor((4 * MiB - 16) / 3)).fill("{}").join(",")}]}`);

/** `message` in a gRPC / gRPC-Web / Connect streaming envelope. */
const envelope = (message: Uint8Array): Buffer => Buffer.from(wireEnvelope(message));

/** What a raw client saw of one call. */
interface Answer {
  status: number;
  headers: Record<string, unknown>;
  trailers: Record<string, unknown>;
  body: Buffer;
  /** Body bytes the client had handed to the connection when the answer was complete. */
  sentWhenAnswered: number;
  /** HTTP/2: the stream's RST_STREAM code, if the server reset it. */
  rstCode?: number;
}

/**
 * One call over an HTTP/2 session. With `hold`, sends only that many body bytes and then waits
 * for the answer without sending more (nor ending the body).
 */
function h2Call(session: http2.ClientHttp2Session, path: string, headers: Record<string, string>, body: Buffer, hold?: number): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = session.request({ ":method": "POST", ":path": path, te: "trailers", ...headers });
    const answer: Answer = { status: 0, headers: {}, trailers: {}, body: Buffer.alloc(0), sentWhenAnswered: 0 };
    const chunks: Buffer[] = [];
    let sent = 0;
    req.on("response", (h) => {
      answer.status = Number(h[":status"]);
      answer.headers = h;
    });
    req.on("trailers", (h) => (answer.trailers = h));
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => (answer.sentWhenAnswered = sent));
    req.on("error", reject);
    req.on("close", () => {
      answer.body = Buffer.concat(chunks);
      answer.rstCode = req.rstCode;
      resolve(answer);
    });
    const limit = hold ?? body.length;
    const pump = () => {
      while (sent < limit) {
        const chunk = body.subarray(sent, Math.min(limit, sent + 64 * 1024));
        sent += chunk.length;
        if (!req.write(chunk)) return void req.once("drain", pump);
      }
      if (hold === undefined) req.end();
    };
    pump();
  });
}

/** One call over HTTP/1.1 (its own connection); `hold` as for {@link h2Call}. */
function h1Call(path: string, headers: Record<string, string>, body: Buffer, hold?: number): Promise<Answer> {
  const url = new URL(t.server.url());
  return new Promise((resolve, reject) => {
    const req = http.request({ host: url.hostname, port: url.port, method: "POST", path, headers: { ...headers, "content-length": body.length }, agent: false });
    let sent = 0;
    req.on("response", (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => {
        resolve({ status: res.statusCode!, headers: res.headers, trailers: res.trailers, body: Buffer.concat(chunks), sentWhenAnswered: sent });
        req.destroy();
      });
    });
    req.on("error", reject);
    const limit = hold ?? body.length;
    sent = limit;
    if (hold === undefined) req.end(body);
    else req.write(body.subarray(0, limit));
  });
}

const jsonOf = (a: Answer) => JSON.parse(a.body.toString()) as { code: string; message: string };
/** The gRPC-Web trailer frame (flag 0x80) as text. */
const grpcWebTrailer = (a: Answer) => a.body.subarray(5).toString();
const missing = /^missing credentials/;

let session: http2.ClientHttp2Session;
let token: string;

beforeAll(async () => {
  session = http2.connect(t.server.url());
  token = await mintTestToken(t.server.config, "service", "gate-test");
});
afterAll(() => session.close());

describe("a call without a valid token is answered before its body is read", () => {
  // The client sends 64 KiB of a 4 MiB body and waits: only a server that answers from the
  // headers replies (before the gate, Connect waited for the whole unary body).
  const HOLD = 64 * 1024;

  it("gRPC over HTTP/2: status 16, and the stream reset once answered", async () => {
    const a = await within(3000, h2Call(session, LOG_EVENTS, { "content-type": "application/grpc" }, envelope(EMPTY_EVENTS), HOLD));
    expect(a.status).toBe(200);
    expect(a.trailers["grpc-status"]).toBe("16");
    expect(decodeURIComponent(String(a.trailers["grpc-message"]))).toMatch(missing);
    expect(a.sentWhenAnswered).toBe(HOLD);
    expect(a.rstCode).toBe(http2.constants.NGHTTP2_NO_ERROR);
  });

  it("gRPC-Web over HTTP/1.1: status 16 in the trailer frame, connection closed", async () => {
    const a = await within(3000, h1Call(LOG_EVENTS, { "content-type": "application/grpc-web+proto" }, envelope(EMPTY_EVENTS), HOLD));
    expect(a.status).toBe(200);
    expect(a.headers.connection).toBe("close");
    expect(grpcWebTrailer(a)).toMatch(/grpc-status: 16\r\n/);
  });

  for (const [name, contentType, body] of [
    ["binary", "application/proto", EMPTY_EVENTS],
    ["JSON", "application/json", EMPTY_EVENTS_JSON],
  ] as const) {
    it(`Connect unary ${name} over HTTP/1.1: 401 and a JSON error, connection closed`, async () => {
      const a = await within(3000, h1Call(LOG_EVENTS, { "content-type": contentType }, body, HOLD));
      expect(a.status).toBe(401);
      expect(a.headers.connection).toBe("close");
      expect(jsonOf(a)).toEqual({ code: "unauthenticated", message: expect.stringMatching(missing) as unknown });
    });

    it(`Connect unary ${name} over HTTP/2, with a bad token: 401 naming what is wrong`, async () => {
      const a = await within(3000, h2Call(session, LOG_EVENTS, { "content-type": contentType, authorization: "Bearer not.a.jwt" }, body, HOLD));
      expect(a.status).toBe(401);
      expect(jsonOf(a).code).toBe("unauthenticated");
      // The verifier's own words, passed through.
      expect(jsonOf(a).message).toMatch(/^invalid token: /);
      expect(a.rstCode).toBe(http2.constants.NGHTTP2_NO_ERROR);
    });
  }

  it("HTTP/1.1 with Expect: 100-continue: a refused call gets its 401 instead of 100 Continue, an accepted one is asked for its body", async () => {
    const url = new URL(t.server.url());
    const body = Buffer.alloc(0); // an empty LogEventsRequest
    const ask = (headers: Record<string, string>) =>
      new Promise<{ continued: boolean; status: number }>((resolve, reject) => {
        const req = http.request({
          host: url.hostname,
          port: url.port,
          method: "POST",
          path: LOG_EVENTS,
          agent: false,
          headers: { "content-type": "application/proto", "content-length": body.length, expect: "100-continue", ...headers },
        });
        let continued = false;
        req.on("continue", () => {
          continued = true;
          req.end(body);
        });
        req.on("response", (res) => {
          res.resume();
          res.on("end", () => {
            resolve({ continued, status: res.statusCode! });
            req.destroy();
          });
        });
        req.on("error", reject);
        req.flushHeaders();
      });
    // Node's own server answered 100 at once, so the client sent its body to be refused.
    expect(await within(3000, ask({}))).toEqual({ continued: false, status: 401 });
    const accepted = await within(3000, ask({ authorization: `Bearer ${token}` }));
    expect(accepted.continued).toBe(true);
    expect(accepted.status).not.toBe(401);
  });

  it("Connect streaming over HTTP/2: an end-stream message with the error", async () => {
    const a = await within(3000, h2Call(session, STREAM_METRICS, { "content-type": "application/connect+proto" }, envelope(EMPTY_EVENTS), HOLD));
    expect(a.status).toBe(200);
    expect(a.body[0]).toBe(0b10); // end-stream flag
    const end = JSON.parse(a.body.subarray(5).toString()) as { error: { code: string; message: string } };
    expect(end.error.code).toBe("unauthenticated");
    expect(end.error.message).toMatch(missing);
  });
});

describe("a 4 MiB unauthenticated LogEvents of empty events, sent whole by real clients", () => {
  const url = () => t.server.url();
  // The 2 Mi empty events ride as one unknown field whose bytes toBinary writes as they are
  // (tag 0x0a, then `00 0a 00 ...`): the client sends them without building 2 Mi messages.
  const request = create(LogEventsRequestSchema);
  request.$unknown = [{ no: 1, wireType: WireType.LengthDelimited, data: EMPTY_EVENTS.subarray(1) }];
  const transports: [string, () => Transport][] = [
    ["gRPC", () => createGrpcTransport({ baseUrl: url() })],
    ["Connect binary over HTTP/2", () => createConnectTransport({ baseUrl: url(), httpVersion: "2", useBinaryFormat: true })],
    ["Connect binary over HTTP/1.1", () => createConnectTransport({ baseUrl: url(), httpVersion: "1.1", useBinaryFormat: true })],
    ["gRPC-Web over HTTP/1.1", () => createGrpcWebTransport({ baseUrl: url(), httpVersion: "1.1" })],
  ];

  /** CPU time of this process (server and client) spent on `fn`, in ms. */
  async function cpuMs<T>(fn: () => Promise<T>): Promise<{ value: T; ms: number }> {
    const before = process.cpuUsage();
    const value = await fn();
    const used = process.cpuUsage(before);
    return { value, ms: (used.user + used.system) / 1000 };
  }

  /**
   * Body bytes the server's HTTP layer took in for the call sent with `userAgent`, as its request
   * log row records them (written once the HTTP response is closed, then flushed).
   */
  async function bytesServerRead(userAgent: string): Promise<number> {
    for (let i = 0; i < 100; i++) {
      const rows = await t.rows<{ request_bytes: number; status_code: number }>(
        "select request_bytes, status_code from api_request_logs where user_agent = ?",
        [userAgent],
      );
      if (rows.length > 0) {
        expect(rows).toHaveLength(1);
        expect(rows[0]!.status_code).toBe(Code.Unauthenticated);
        return rows[0]!.request_bytes;
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    throw new Error(`no request log row for ${userAgent}`);
  }

  for (const [name, transport] of transports) {
    it(`${name}: Unauthenticated, having read a small part of the body`, async () => {
      const userAgent = `gate-test ${name}`;
      const err = await rpcError(transport().unary(AnalyticsService.method.logEvents, undefined, undefined, { "user-agent": userAgent }, request, undefined));
      expect(err.code).toBe(Code.Unauthenticated);
      expect(err.rawMessage).toMatch(missing);
      // All 4 MiB before the gate (Connect reads a unary body whole before any interceptor).
      expect(await bytesServerRead(userAgent)).toBeLessThan(MiB);
    });
  }

  it("Connect JSON with fetch: 401, for a few ms of CPU instead of seconds, having read a small part", async () => {
    const before = process.cpuUsage();
    const res = await fetch(`${url()}${LOG_EVENTS}`, {
      method: "POST",
      headers: { "content-type": "application/json", "user-agent": "gate-test fetch" },
      body: EMPTY_EVENTS_JSON,
    });
    expect(res.status).toBe(401);
    expect(((await res.json()) as { code: string }).code).toBe("unauthenticated");
    const used = process.cpuUsage(before);
    // Parsing 1.4 Mi JSON events took seconds of CPU (server and client share this process).
    expect((used.user + used.system) / 1000).toBeLessThan(1000);
    expect(await bytesServerRead("gate-test fetch")).toBeLessThan(MiB);
  });

  it("keeps the server responsive: a health check answers quickly while four are refused", async () => {
    const url = new URL(t.server.url());
    const refused = [0, 1, 2, 3].map(() => h1Call(LOG_EVENTS, { "content-type": "application/proto" }, EMPTY_EVENTS));
    const healthSession = http2.connect(url);
    try {
      const t0 = performance.now();
      const health = await h2Call(healthSession, HEALTH_CHECK, { "content-type": "application/grpc" }, envelope(toBinary(HealthCheckRequestSchema, create(HealthCheckRequestSchema))));
      const healthMs = performance.now() - t0;
      expect(health.trailers["grpc-status"]).toBe("0");
      expect(healthMs).toBeLessThan(250);
    } finally {
      healthSession.close();
    }
    for (const a of await Promise.all(refused)) expect(a.status).toBe(401);
  });
});

describe("after a refusal", () => {
  it("the same HTTP/2 connection serves an authenticated call and a health check", async () => {
    const own = http2.connect(t.server.url());
    try {
      const refused = await h2Call(own, LOG_EVENTS, { "content-type": "application/grpc" }, envelope(EMPTY_EVENTS));
      expect(refused.trailers["grpc-status"]).toBe("16");
      const batch = toBinary(
        LogEventsRequestSchema,
        create(LogEventsRequestSchema, { events: [{ kind: { case: "jobOutcome", value: { jobId: "gate-job", jobType: "sync", status: 1 } } }] }),
      );
      const ok = await h2Call(own, LOG_EVENTS, { "content-type": "application/grpc", authorization: `Bearer ${token}` }, envelope(batch));
      expect(ok.trailers["grpc-status"]).toBe("0");
      const stored = await t.rows<{ n: number }>("select count(*)::int as n from job_outcomes where job_id = 'gate-job'");
      expect(stored[0]!.n).toBe(1);
      const health = await h2Call(own, HEALTH_CHECK, { "content-type": "application/grpc" }, envelope(new Uint8Array(0)));
      expect(health.trailers["grpc-status"]).toBe("0");
    } finally {
      own.close();
    }
  });
});
