/**
 * HTTP/2 calls answered before their body was read to the end.
 *
 * A Node 20 HTTP/2 client loses its session's memory budget to a stream ended while it is still
 * sending a large body: after about nine 2 MiB uploads answered early (over a method's cap)
 * every new call on the connection was refused ENHANCE_YOUR_CALM, health checks included, and
 * stayed so. The server now reads and drops the rest of such a body (src/server/body-drain.ts).
 */
import http2 from "node:http2";
import { createClient } from "@connectrpc/connect";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { AnalyticsService } from "../../sdk/src/gen/analytics/v1/analytics_service_pb.js";
import { createNodeTransport } from "../../sdk/src/node/transport.js";
import { mintTestToken } from "../support/auth.js";
import { useTestServer } from "../support/test-server.js";

const t = useTestServer();
const LOG_ERROR = `/${AnalyticsService.typeName}/LogError`;
const HEALTH_CHECK = "/grpc.health.v1.Health/Check";

let token: string;
beforeAll(async () => {
  token = await mintTestToken(t.server.config, "admin");
});

const sessions: http2.ClientHttp2Session[] = [];
afterEach(() => {
  for (const s of sessions.splice(0)) s.destroy();
});

function connect(): http2.ClientHttp2Session {
  // The client's own budget must not be what runs out.
  const s = http2.connect(t.server.url(), { maxSessionMemory: 256 });
  s.on("error", () => {});
  sessions.push(s);
  return s;
}

/** A gRPC frame of `size` bytes in all (its message: zeros, a valid empty-ish protobuf is not needed past a cap). */
function grpcFrame(size: number): Buffer {
  const frame = Buffer.alloc(size);
  frame.writeUInt32BE(size - 5, 1);
  return frame;
}

interface Answer {
  /** `grpc-status`, or undefined when none came. */
  readonly status: string | undefined;
  /** The stream's RST_STREAM code as the client saw it. */
  readonly rstCode: number | undefined;
}

/** One gRPC call on `session` sending `body`. */
function call(session: http2.ClientHttp2Session, path: string, body: Buffer, auth: boolean): Promise<Answer> {
  return new Promise((resolve) => {
    const headers: http2.OutgoingHttpHeaders = { ":method": "POST", ":path": path, "content-type": "application/grpc", te: "trailers" };
    if (auth) headers.authorization = `Bearer ${token}`;
    const stream = session.request(headers);
    let status: string | undefined;
    stream.on("response", (h) => {
      if (h["grpc-status"] !== undefined) status = String(h["grpc-status"]);
    });
    stream.on("trailers", (h) => (status = String(h["grpc-status"])));
    stream.on("data", () => {});
    stream.on("error", () => {});
    stream.on("close", () => resolve({ status, rstCode: stream.rstCode }));
    stream.end(body);
  });
}

describe("HTTP/2 answers before the body is read", () => {
  it("forty 2 MiB bodies over LogError's cap are each answered ResourceExhausted, and the connection keeps serving", async () => {
    const session = connect();
    const statuses = new Set<string | undefined>();
    for (let i = 0; i < 40; i++) statuses.add((await call(session, LOG_ERROR, grpcFrame(2 * 1024 * 1024), true)).status);
    expect([...statuses]).toEqual(["8"]);
    expect((await call(session, HEALTH_CHECK, grpcFrame(5), false)).status).toBe("0");
  });

  it("forty unauthenticated 2 MiB bodies are each answered Unauthenticated, and the connection keeps serving", async () => {
    const session = connect();
    const statuses = new Set<string | undefined>();
    for (let i = 0; i < 40; i++) statuses.add((await call(session, LOG_ERROR, grpcFrame(2 * 1024 * 1024), false)).status);
    expect([...statuses]).toEqual(["16"]);
    expect((await call(session, HEALTH_CHECK, grpcFrame(5), false)).status).toBe("0");
  });

  // The SDK's transport (connect-node's gRPC client) cancels the rest of an upload answered early,
  // and each such cancel costs its own session budget for good (about the unsent part): at Node's
  // default budget (10 MB) the client refused its own calls ENHANCE_YOUR_CALM after two of these;
  // the SDK sets 64 MB (sdk/src/node/transport.ts), which eight 5 MiB uploads cannot exhaust.
  it("the SDK's gRPC transport: eight LogEvents over the cap are ResourceExhausted, then a valid call succeeds on the same connection", async () => {
    const transport = createNodeTransport({ baseUrl: t.server.url(), token, retry: false });
    const client = createClient(AnalyticsService, transport);
    const huge = { events: [{ kind: { case: "error" as const, value: { errorMessage: "x".repeat(5 * 1024 * 1024) } } }] };
    const codes = new Set<number>();
    for (let i = 0; i < 8; i++) {
      codes.add(await client.logEvents(huge).then(() => -1, (err: { code: number }) => err.code));
    }
    expect([...codes]).toEqual([8]); // Code.ResourceExhausted
    await expect(client.logError({ errorCode: "E_AFTER", errorMessage: "after forty refusals" })).resolves.toBeDefined();
  });
});
