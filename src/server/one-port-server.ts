/**
 * One TCP port for HTTP/2 cleartext (gRPC, and Connect/gRPC-Web over h2) and HTTP/1.1 (Connect,
 * gRPC-Web). `http2.createServer({ allowHTTP1: true })` only falls back to HTTP/1.1 under TLS
 * (ALPN), so without TLS each new connection is sniffed: an HTTP/2 client starts with the
 * connection preface `PRI * HTTP/2.0`, every HTTP/1.x request starts with a method name.
 */
import http from "node:http";
import http2 from "node:http2";
import net from "node:net";
import type { AddressInfo } from "node:net";
import type { Logger } from "../util/logger.js";

/** A request handler that serves both HTTP versions (e.g. `connectNodeAdapter(...)`). */
export type UniversalHandler = (
  req: http.IncomingMessage | http2.Http2ServerRequest,
  res: http.ServerResponse | http2.Http2ServerResponse,
) => void;

/** Options for {@link createOnePortServer}. */
export interface OnePortServerOptions {
  /** A connection that sends no bytes for this long is closed. */
  readonly sniffTimeoutMs: number;
  readonly log: Logger;
}

/** A listening (or listenable) one-port server. */
export interface OnePortServer {
  listen(port: number, host: string): Promise<AddressInfo>;
  /** The bound address, once listening. */
  address(): AddressInfo | undefined;
  /** Calls currently being served. */
  inFlight(): number;
  /**
   * Stops accepting connections, tells HTTP/2 clients to go away, lets in-flight calls finish for
   * up to `timeoutMs`, then closes whatever is left.
   */
  close(timeoutMs: number): Promise<void>;
}

const PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");

/**
 * HTTP/2 flow-control windows the server grants: how much a client may send ahead of what the
 * handlers have read. HTTP/2's default, 64 KiB for each stream and for the whole connection, is
 * less than one `LogEvents` batch (500 events: ~75 kB and up), and Node grants more only as the
 * handlers read, i.e. when the event loop is free: a client's batches then trickled in 64 KiB at a
 * time behind each request being decoded. 1 MiB per stream and 4 MiB per connection (grpc-java's
 * stream default is 1 MiB) let a client keep several batches on the way; a stream whose handler
 * stops reading (back-pressure from the write buffer) still stops its client at the window.
 */
const HTTP2_STREAM_WINDOW_BYTES = 1024 * 1024;
const HTTP2_CONNECTION_WINDOW_BYTES = 4 * HTTP2_STREAM_WINDOW_BYTES;

/** True when `head` may still become (or is) the start of the HTTP/2 preface. */
export function classifyPreface(head: Buffer): "h2" | "h1" | "undecided" {
  const n = Math.min(head.length, PREFACE.length);
  if (head.subarray(0, n).equals(PREFACE.subarray(0, n))) return n === PREFACE.length ? "h2" : "undecided";
  return "h1";
}

/** Creates the server; call `listen` to bind it. */
export function createOnePortServer(handler: UniversalHandler, options: OnePortServerOptions): OnePortServer {
  let inFlight = 0;
  let closing = false;
  const idleWaiters = new Set<() => void>();
  const counted: UniversalHandler = (req, res) => {
    inFlight++;
    res.once("close", () => {
      inFlight--;
      if (inFlight === 0) for (const w of idleWaiters) w();
    });
    handler(req, res);
  };

  const h1 = http.createServer({ keepAliveTimeout: 65_000 }, counted);
  const h2 = http2.createServer({ settings: { initialWindowSize: HTTP2_STREAM_WINDOW_BYTES } }, counted);
  const sessions = new Set<http2.ServerHttp2Session>();
  const h1Sockets = new Map<net.Socket, number>(); // socket -> requests in flight on it
  h2.on("session", (s) => {
    sessions.add(s);
    s.setLocalWindowSize(HTTP2_CONNECTION_WINDOW_BYTES);
    s.once("close", () => sessions.delete(s));
    if (closing) s.close();
  });
  h1.on("request", (req: http.IncomingMessage, res: http.ServerResponse) => {
    const socket = req.socket;
    h1Sockets.set(socket, (h1Sockets.get(socket) ?? 0) + 1);
    if (closing) res.setHeader("connection", "close");
    res.once("close", () => {
      const left = (h1Sockets.get(socket) ?? 1) - 1;
      h1Sockets.set(socket, left);
      if (closing && left === 0) socket.end();
    });
  });
  // Errors on individual connections (client resets, malformed frames) must not reach the process.
  for (const s of [h1, h2] as net.Server[]) s.on("clientError", (_err: Error, socket: net.Socket) => socket.destroy());
  h2.on("sessionError", (err) => options.log.debug("http2 session error", { error: err.message }));

  const sockets = new Set<net.Socket>();
  const tcp = net.createServer((socket) => {
    sockets.add(socket);
    socket.once("close", () => {
      sockets.delete(socket);
      h1Sockets.delete(socket);
    });
    socket.on("error", () => socket.destroy());
    let head: Buffer = Buffer.alloc(0);
    const timer = setTimeout(() => socket.destroy(), options.sniffTimeoutMs);
    const onData = (chunk: Buffer) => {
      head = head.length === 0 ? chunk : Buffer.concat([head, chunk]);
      const kind = classifyPreface(head);
      if (kind === "undecided") return;
      clearTimeout(timer);
      socket.off("data", onData);
      socket.pause();
      socket.unshift(head);
      if (kind === "h2") {
        // Http2Session reads what the socket already buffered, then takes over its handle.
        h2.emit("connection", socket);
      } else {
        h1Sockets.set(socket, 0);
        h1.emit("connection", socket);
        socket.resume();
      }
    };
    socket.on("data", onData);
  });

  return {
    listen(port, host) {
      return new Promise((resolve, reject) => {
        tcp.once("error", reject);
        tcp.listen(port, host, () => {
          tcp.off("error", reject);
          resolve(tcp.address() as AddressInfo);
        });
      });
    },
    address() {
      return (tcp.address() as AddressInfo | null) ?? undefined;
    },
    inFlight() {
      return inFlight;
    },
    async close(timeoutMs) {
      closing = true;
      const stopped = new Promise<void>((resolve) => tcp.close(() => resolve()));
      for (const s of sessions) s.close();
      for (const [socket, busy] of h1Sockets) if (busy === 0) socket.end();
      if (inFlight > 0) {
        await new Promise<void>((resolve) => {
          const done = () => {
            clearTimeout(timer);
            idleWaiters.delete(done);
            resolve();
          };
          const timer = setTimeout(done, timeoutMs);
          idleWaiters.add(done);
        });
      }
      for (const s of sessions) s.destroy();
      for (const socket of sockets) socket.destroy();
      await stopped;
    },
  };
}
