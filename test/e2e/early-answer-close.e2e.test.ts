/**
 * HTTP/1.1: an answer sent before the request's body was read to the end (a body over the
 * method's cap) closes the connection. Connect stops reading such a body and Node's server then
 * stopped reading the socket without closing it: a keep-alive client's next request on that
 * connection was never read, and timed out on an idle server.
 */
import net from "node:net";
import { beforeAll, describe, expect, it } from "vitest";
import { AnalyticsService } from "../../sdk/src/gen/analytics/v1/analytics_service_pb.js";
import { mintTestToken } from "../support/auth.js";
import { useTestServer } from "../support/test-server.js";

const t = useTestServer();
const LOG_ERROR = `/${AnalyticsService.typeName}/${AnalyticsService.method.logError.name}`;

let token: string;
beforeAll(async () => {
  token = await mintTestToken(t.server.config, "admin");
});

/** Sends `requests` back to back on one connection; what came back once it closed, or after `ms`. */
function exchange(requests: Buffer[], ms: number): Promise<{ text: string; closed: boolean }> {
  const url = new URL(t.server.url());
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(url.port), url.hostname);
    const chunks: Buffer[] = [];
    let done = false;
    const finish = (closed: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({ text: Buffer.concat(chunks).toString("latin1"), closed });
    };
    const timer = setTimeout(() => finish(false), ms);
    socket.on("data", (c: Buffer) => chunks.push(c));
    socket.on("close", () => finish(true));
    socket.on("error", (err: NodeJS.ErrnoException) => (err.code === "ECONNRESET" || err.code === "EPIPE" ? finish(true) : reject(err)));
    socket.on("connect", () => {
      for (const r of requests) socket.write(r);
    });
  });
}

function post(path: string, headers: Record<string, string>, body: Buffer): Buffer {
  const head = [`POST ${path} HTTP/1.1`, "Host: localhost", `Content-Length: ${body.length}`, ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`), "", ""].join("\r\n");
  return Buffer.concat([Buffer.from(head, "latin1"), body]);
}

describe("HTTP/1.1 answer before the body is read", () => {
  it("a body over the cap is answered ResourceExhausted with Connection: close, and the connection closes instead of hanging", async () => {
    const big = Buffer.from(`{"errorMessage":"${"x".repeat(8 * 1024 * 1024)}"}`);
    const next = post("/grpc.health.v1.Health/Check", { "Content-Type": "application/json" }, Buffer.from("{}"));
    const { text, closed } = await exchange(
      [post(LOG_ERROR, { "Content-Type": "application/json", Authorization: `Bearer ${token}` }, big), next],
      5000,
    );
    expect(text).toMatch(/^HTTP\/1\.1 429 /); // ResourceExhausted in Connect unary
    expect(text).toContain("resource_exhausted");
    expect(text.toLowerCase()).toContain("connection: close");
    expect(closed, "the connection was closed, not left open unread").toBe(true);
  });

  it("a request read to the end keeps its connection alive for the next one", async () => {
    const one = post("/grpc.health.v1.Health/Check", { "Content-Type": "application/json" }, Buffer.from("{}"));
    const { text } = await exchange([one, one], 1500);
    expect(text.match(/HTTP\/1\.1 200 /g)).toHaveLength(2);
    expect(text.toLowerCase()).not.toContain("connection: close");
  });
});
