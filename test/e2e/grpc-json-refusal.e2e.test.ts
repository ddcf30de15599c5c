/**
 * gRPC and gRPC-Web in the JSON codec on the real server: every call is answered at once with
 * INVALID_ARGUMENT in a trailers-only gRPC answer, and its stream closed, whatever its body. A
 * JSON body starting with an astral character (U+2B4FA) used to go unanswered for good: Connect's
 * parse error held half a surrogate pair, and its `encodeURIComponent` of `grpc-message` threw.
 */
import { Code, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import http from "node:http";
import http2 from "node:http2";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AnalyticsService } from "../../sdk/src/gen/analytics/v1/analytics_service_pb.js";
import { Health } from "../../sdk/src/gen/grpc/health/v1/health_pb.js";
import { GRPC_JSON_REFUSAL } from "../../src/server/grpc-json-refusal.js";
import { mintTestToken } from "../support/auth.js";
import { rpcError } from "../support/rpc-error.js";
import { useTestServer } from "../support/test-server.js";
import { envelope as wireEnvelope } from "../support/hostile-wire.js";
import { within } from "../support/within.js";

const t = useTestServer();

const HEALTH_CHECK = "/grpc.health.v1.Health/Check";
const LOG_ERROR = `/${AnalyticsService.typeName}/${AnalyticsService.method.logError.name}`;
/** One astral character: its JSON parse error held a lone surrogate. */
const ASTRAL = Buffer.from("\u{2B4FA}");

/** `message` in a gRPC / gRPC-Web / Connect streaming envelope. */
const envelope = (message: Uint8Array): Buffer => Buffer.from(wireEnvelope(message));

interface Answer {
  status: number;
  headers: Record<string, unknown>;
  trailers: Record<string, unknown>;
  body: Buffer;
}

let session: http2.ClientHttp2Session;
let token: string;
beforeAll(async () => {
  session = http2.connect(t.server.url());
  token = await mintTestToken(t.server.config, "admin");
});
afterAll(() => session?.close());

function h2Call(path: string, headers: Record<string, string>, body: Buffer): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = session.request({ ":method": "POST", ":path": path, te: "trailers", ...headers });
    const answer: Answer = { status: 0, headers: {}, trailers: {}, body: Buffer.alloc(0) };
    const chunks: Buffer[] = [];
    req.on("response", (h) => {
      answer.status = Number(h[":status"]);
      answer.headers = h;
    });
    req.on("trailers", (h) => (answer.trailers = h));
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("error", reject);
    req.on("close", () => resolve({ ...answer, body: Buffer.concat(chunks) }));
    req.end(body);
  });
}

function h1Call(path: string, headers: Record<string, string>, body: Buffer): Promise<Answer> {
  const url = new URL(t.server.url());
  return new Promise((resolve, reject) => {
    const req = http.request({ host: url.hostname, port: url.port, method: "POST", path, headers: { ...headers, "content-length": body.length }, agent: false });
    req.on("response", (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode!, headers: res.headers, trailers: res.trailers, body: Buffer.concat(chunks) }));
    });
    req.on("error", reject);
    req.end(body);
  });
}

/** The status of a trailers-only gRPC answer (in its headers). */
function statusOf(a: Answer): { status: number; grpcStatus: string; message: string; contentType: unknown } {
  return {
    status: a.status,
    grpcStatus: String(a.headers["grpc-status"] ?? a.trailers["grpc-status"]),
    message: decodeURIComponent(String(a.headers["grpc-message"] ?? a.trailers["grpc-message"] ?? "")),
    contentType: a.headers["content-type"],
  };
}

const refused = (contentType: string) => ({ status: 200, grpcStatus: String(Code.InvalidArgument), message: GRPC_JSON_REFUSAL, contentType });

describe("gRPC and gRPC-Web in JSON", () => {
  for (const contentType of ["application/grpc+json", "application/grpc-web+json", "application/grpc+json; charset=utf-8"]) {
    it(`${contentType}: an astral character as the body of an open method is answered at once, over HTTP/2`, async () => {
      const a = await within(3000, h2Call(HEALTH_CHECK, { "content-type": contentType }, envelope(ASTRAL)));
      expect(statusOf(a)).toEqual(refused(contentType));
      expect(a.body.length).toBe(0);
    });

    it(`${contentType}: so is it for a gated method, with and without a token`, async () => {
      for (const headers of [{}, { authorization: `Bearer ${token}` }] as Record<string, string>[]) {
        const a = await within(3000, h2Call(LOG_ERROR, { "content-type": contentType, ...headers }, envelope(ASTRAL)));
        expect(statusOf(a)).toEqual(refused(contentType));
      }
    });
  }

  it("gRPC-Web over HTTP/1.1 is answered too", async () => {
    const a = await within(3000, h1Call(HEALTH_CHECK, { "content-type": "application/grpc-web+json" }, envelope(ASTRAL)));
    expect(statusOf(a)).toEqual(refused("application/grpc-web+json"));
  });

  it("a client still sending a large message gets the status, not a reset", async () => {
    const big = { events: Array.from({ length: 8000 }, () => ({ userActivity: { pageUrl: "x".repeat(200) } })) };
    const client = createClient(AnalyticsService, createGrpcTransport({ baseUrl: t.server.url(), useBinaryFormat: false }));
    for (let i = 0; i < 3; i++) {
      const err = await rpcError(within(5000, client.logEvents(big as never, { headers: { authorization: `Bearer ${token}` } })));
      expect([err.code, err.rawMessage]).toEqual([Code.InvalidArgument, GRPC_JSON_REFUSAL]);
    }
  });

  it("connect-node's gRPC and gRPC-Web clients in JSON get INVALID_ARGUMENT", async () => {
    for (const transport of [
      createGrpcTransport({ baseUrl: t.server.url(), useBinaryFormat: false }),
      createGrpcWebTransport({ baseUrl: t.server.url(), httpVersion: "2", useBinaryFormat: false }),
    ]) {
      const err = await rpcError(within(3000, createClient(Health, transport).check({})));
      expect([err.code, err.rawMessage]).toEqual([Code.InvalidArgument, GRPC_JSON_REFUSAL]);
    }
  });

  it("the HTTP/2 connection serves the next calls, and binary gRPC and Connect JSON still work", async () => {
    await within(3000, h2Call(HEALTH_CHECK, { "content-type": "application/grpc+json" }, envelope(ASTRAL)));
    const ok = await within(3000, h2Call(HEALTH_CHECK, { "content-type": "application/grpc" }, envelope(new Uint8Array(0))));
    expect(statusOf(ok).grpcStatus).toBe("0");
    const connectJson = createClient(Health, createConnectTransport({ baseUrl: t.server.url(), httpVersion: "1.1", useBinaryFormat: false }));
    expect((await connectJson.check({})).status).toBeGreaterThan(0);
    // Connect's protocol carries a parse error in a JSON body: the astral body is answered there.
    const url = new URL(t.server.url());
    const a = await within(
      3000,
      new Promise<number>((resolve, reject) => {
        const req = http.request({ host: url.hostname, port: url.port, method: "POST", path: HEALTH_CHECK, headers: { "content-type": "application/json" }, agent: false });
        req.on("response", (res) => {
          res.resume();
          res.on("end", () => resolve(res.statusCode!));
        });
        req.on("error", reject);
        req.end(ASTRAL);
      }),
    );
    expect(a).toBe(400);
  });
});
