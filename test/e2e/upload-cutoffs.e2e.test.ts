/**
 * HTTP/2 calls answered before their body was read to the end, and uploads cut off mid-way.
 *
 * Node 20 loses an HTTP/2 session's memory budget to a stream reset while a large body is still
 * arriving: after about nine 2 MiB uploads refused early (over a method's cap, or unauthenticated)
 * every new stream on the connection was refused ENHANCE_YOUR_CALM, health checks included, and
 * stayed so. The server now reads and drops the rest of such a body, and sends GOAWAY to a session
 * whose client keeps cutting its own uploads off (src/server/upload-cutoffs.ts).
 */
import http2 from "node:http2";
import { createClient } from "@connectrpc/connect";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { AnalyticsService } from "../../sdk/src/gen/analytics/v1/analytics_service_pb.js";
import { createNodeTransport } from "../../sdk/src/node/transport.js";
import { CUTOFFS_PER_SESSION } from "../../src/server/upload-cutoffs.js";
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

/**
 * One gRPC call on `session` sending `body`; with `cancelOnAnswer` the client resets its stream as
 * soon as the answer's headers arrive, while its body may still be on its way (a client giving up).
 */
function call(session: http2.ClientHttp2Session, path: string, body: Buffer, auth: boolean, cancelOnAnswer = false): Promise<Answer> {
  return new Promise((resolve) => {
    const headers: http2.OutgoingHttpHeaders = { ":method": "POST", ":path": path, "content-type": "application/grpc", te: "trailers" };
    if (auth) headers.authorization = `Bearer ${token}`;
    const stream = session.request(headers);
    let status: string | undefined;
    stream.on("response", (h) => {
      if (h["grpc-status"] !== undefined) status = String(h["grpc-status"]);
      if (cancelOnAnswer) stream.close(http2.constants.NGHTTP2_CANCEL);
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

  it("forty unauthenticated 2 MiB bodies are each answered Unauthenticated, and the client keeps being served", async () => {
    // A refused call's body is hardly read (REFUSED_DRAIN): one the client has not finished
    // sending by then is cut off, and its session is told to go away every CUTOFFS_PER_SESSION
    // of them; as a real client, this one then reconnects.
    let session = connect();
    let goaways = 0;
    const statuses = new Set<string | undefined>();
    for (let i = 0; i < 40; i++) {
      if (session.closed || session.destroyed || (session as { goawayReceived?: boolean }).goawayReceived) session = connect();
      const current = session;
      current.once("goaway", () => {
        goaways++;
        (current as { goawayReceived?: boolean }).goawayReceived = true;
      });
      statuses.add((await call(current, LOG_ERROR, grpcFrame(2 * 1024 * 1024), false)).status);
    }
    expect([...statuses]).toEqual(["16"]);
    expect(goaways).toBeLessThanOrEqual(Math.ceil(40 / CUTOFFS_PER_SESSION));
    expect((await call(connect(), HEALTH_CHECK, grpcFrame(5), false)).status).toBe("0");
  });

  // The SDK's transport (connect-node's gRPC client) resets the rest of an upload answered early;
  // at Node's default session budget (10 MB) the client itself then refused its own new calls
  // ENHANCE_YOUR_CALM after two of these: the SDK sets a larger one (sdk/src/node/transport.ts).
  it("the SDK's gRPC transport: forty LogEvents over the cap are ResourceExhausted, then a valid call succeeds on the same connection", async () => {
    const transport = createNodeTransport({ baseUrl: t.server.url(), token, retry: false });
    const client = createClient(AnalyticsService, transport);
    const huge = { events: [{ kind: { case: "error" as const, value: { errorMessage: "x".repeat(5 * 1024 * 1024) } } }] };
    const codes = new Set<number>();
    for (let i = 0; i < 40; i++) {
      codes.add(await client.logEvents(huge).then(() => -1, (err: { code: number }) => err.code));
    }
    expect([...codes]).toEqual([8]); // Code.ResourceExhausted
    await expect(client.logError({ errorCode: "E_AFTER", errorMessage: "after forty refusals" })).resolves.toBeDefined();
  });
});

describe("uploads a client cuts off", () => {
  it(`a session whose client cancels ${CUTOFFS_PER_SESSION} large uploads mid-way is sent GOAWAY; a new connection is served`, async () => {
    const before = t.server.transportStats().cutoffSessionsClosed;
    const session = connect();
    const goaway = new Promise<number>((resolve) => session.once("goaway", (code: number) => resolve(code)));
    for (let i = 0; i < CUTOFFS_PER_SESSION; i++) await call(session, LOG_ERROR, grpcFrame(4 * 1024 * 1024), true, true);
    expect(await goaway).toBe(http2.constants.NGHTTP2_NO_ERROR);
    expect(t.server.transportStats().cutoffSessionsClosed).toBe(before + 1);
    expect((await call(connect(), HEALTH_CHECK, grpcFrame(5), false)).status).toBe("0");
  });

  it("small bodies cancelled mid-call do not count", async () => {
    const before = t.server.transportStats().cutoffSessionsClosed;
    const session = connect();
    for (let i = 0; i < 3 * CUTOFFS_PER_SESSION; i++) await call(session, LOG_ERROR, grpcFrame(64 * 1024), true, true);
    expect(t.server.transportStats().cutoffSessionsClosed).toBe(before);
    expect((await call(session, HEALTH_CHECK, grpcFrame(5), false)).status).toBe("0");
  });
});
