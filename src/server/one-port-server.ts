/**
 * One TCP port for HTTP/2 cleartext (gRPC, and Connect/gRPC-Web over h2) and HTTP/1.1 (Connect,
 * gRPC-Web). `http2.createServer({ allowHTTP1: true })` only falls back to HTTP/1.1 under TLS
 * (ALPN), so without TLS each new connection is sniffed: an HTTP/2 client starts with the
 * connection preface `PRI * HTTP/2.0`, every HTTP/1.x request starts with a method name.
 *
 * Limits that hold before any request is authenticated (docs/OPERATIONS.md, "Connection limits"):
 * a deadline for each HTTP/1.1 request's headers (`408` and close), an idle timeout for
 * connections and HTTP/2 sessions without open requests (GOAWAY on HTTP/2), a cap on concurrent
 * streams per HTTP/2 session, and caps on open connections overall and per client address.
 */
import http from "node:http";
import http2 from "node:http2";
import net from "node:net";
import type { AddressInfo } from "node:net";
import type { Logger } from "../util/logger.js";
import { ClientConnectionCounter, clientKeyOf, createThrottledCounter } from "./connection-limits.js";

/** A request handler that serves both HTTP versions (e.g. `connectNodeAdapter(...)`). */
export type UniversalHandler = (
  req: http.IncomingMessage | http2.Http2ServerRequest,
  res: http.ServerResponse | http2.Http2ServerResponse,
) => void;

/** Options for {@link createOnePortServer}. */
export interface OnePortServerOptions {
  /** A connection that sends no bytes for this long is closed. */
  readonly sniffTimeoutMs: number;
  /** An HTTP/1.1 request's headers must be complete this long after its first byte, else `408` and close. */
  readonly headersTimeoutMs: number;
  /** A connection or HTTP/2 session without an open request or stream for this long is closed. */
  readonly idleTimeoutMs: number;
  /** Streams one HTTP/2 session may have open at once (SETTINGS_MAX_CONCURRENT_STREAMS). */
  readonly maxConcurrentStreams: number;
  /** Open connections overall; more are closed at once. */
  readonly maxConnections: number;
  /** Open connections per client ({@link clientKeyOf}); more are closed at once. 0: no cap. */
  readonly maxConnectionsPerClient: number;
  readonly log: Logger;
}

/** Counters of the transport, for probes, benchmarks and tests. */
export interface OnePortServerStats {
  /** TCP connections open now: being sniffed, HTTP/1.1 and HTTP/2. */
  readonly openConnections: number;
  /** HTTP/2 sessions open now. */
  readonly http2Sessions: number;
  /** Clients (addresses, IPv6 /64s) with an open connection now. */
  readonly clients: number;
  /** Connections closed at once since start because `maxConnections` were open. */
  readonly refusedOverCap: number;
  /** Connections closed at once since start because their client had `maxConnectionsPerClient` open. */
  readonly refusedOverClientCap: number;
  /** HTTP/2 sessions sent GOAWAY since start for having no open stream for `idleTimeoutMs`. */
  readonly idleSessionsClosed: number;
}

/** A listening (or listenable) one-port server. */
export interface OnePortServer {
  listen(port: number, host: string): Promise<AddressInfo>;
  /** The bound address, once listening. */
  address(): AddressInfo | undefined;
  /** Calls currently being served. */
  inFlight(): number;
  /** The transport's counters now. */
  stats(): OnePortServerStats;
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

/**
 * Node's bounds on what one HTTP/2 session may make the server hold, pinned here so that an
 * upgrade cannot widen them unnoticed: 32 MB of session memory (nghttp2 state and buffers; over
 * it new streams are refused with ENHANCE_YOUR_CALM: Node's default, 10 MB, is little more than
 * two of the 4 MiB connection windows granted above, and the long fuzz run, four calls at once
 * with bodies past the caps, hit it and had every call on the connection refused), a 4 KiB HPACK table, a
 * 64 KiB decoded header list (an HTTP/1.1 request's headers may have 16 KiB) of at most 128
 * fields. Read docs/OPERATIONS.md ("Connection limits") before changing one.
 */
const HTTP2_MAX_SESSION_MEMORY_MB = 32;
const HTTP2_HEADER_TABLE_BYTES = 4096;
const HTTP2_MAX_HEADER_LIST_BYTES = 65_535;
const HTTP2_MAX_HEADER_LIST_PAIRS = 128;

/**
 * How long an HTTP/1.1 request may take in all before its body has arrived: Node's default,
 * which bounds a body trickled in a byte at a time once the headers are in.
 */
const HTTP1_REQUEST_TIMEOUT_MS = 300_000;

/** At most one log line per this long for each kind of refused connection. */
const REFUSAL_LOG_INTERVAL_MS = 10_000;

/**
 * How often Node checks HTTP/1.1 requests against the headers deadline: a tenth of it, so a
 * request is answered within 110 % of the deadline, at most once a second (the check walks only
 * connections in the middle of a request's head or body, so it is cheap either way).
 */
export function headersCheckIntervalMs(headersTimeoutMs: number): number {
  return Math.min(1000, Math.max(10, Math.floor(headersTimeoutMs / 10)));
}

/** True when `head` may still become (or is) the start of the HTTP/2 preface. */
export function classifyPreface(head: Buffer): "h2" | "h1" | "undecided" {
  const n = Math.min(head.length, PREFACE.length);
  if (head.subarray(0, n).equals(PREFACE.subarray(0, n))) return n === PREFACE.length ? "h2" : "undecided";
  return "h1";
}

/**
 * Sends `100 Continue` to an HTTP/1.1 request that asked for it: the server leaves that to its
 * handler, which calls this once it has decided to read the body.
 */
export function continueIfExpected(req: http.IncomingMessage | http2.Http2ServerRequest, res: http.ServerResponse | http2.Http2ServerResponse): void {
  if (!("stream" in req) && req.headers.expect?.toLowerCase() === "100-continue") (res as http.ServerResponse).writeContinue();
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

  const h1 = http.createServer(
    {
      // A kept-alive connection waiting for its next request is an idle connection.
      keepAliveTimeout: options.idleTimeoutMs,
      headersTimeout: options.headersTimeoutMs,
      requestTimeout: Math.max(HTTP1_REQUEST_TIMEOUT_MS, options.headersTimeoutMs),
      connectionsCheckingInterval: headersCheckIntervalMs(options.headersTimeoutMs),
    },
    counted,
  );
  // Node enforces headersTimeout and requestTimeout from a timer it starts on "listening"; this
  // server never listens (the TCP server below hands it its connections), so it is told it is.
  // Without this a request that never completes its headers holds its connection forever.
  // test/e2e/connection-limits.e2e.test.ts fails if a Node upgrade changes that.
  h1.emit("listening");
  // Without a "clientError" listener Node answers a bad or late request itself (400, 431, or 408
  // for ERR_HTTP_REQUEST_TIMEOUT) when no response is under way on the connection, then closes it.
  const h2 = http2.createServer(
    {
      settings: {
        initialWindowSize: HTTP2_STREAM_WINDOW_BYTES,
        maxConcurrentStreams: options.maxConcurrentStreams,
        headerTableSize: HTTP2_HEADER_TABLE_BYTES,
        maxHeaderListSize: HTTP2_MAX_HEADER_LIST_BYTES,
      },
      maxSessionMemory: HTTP2_MAX_SESSION_MEMORY_MB,
      maxHeaderListPairs: HTTP2_MAX_HEADER_LIST_PAIRS,
    },
    counted,
  );
  const sessions = new Set<http2.ServerHttp2Session>();
  const h1Sockets = new Map<net.Socket, number>(); // socket -> requests in flight on it
  let idleSessionsClosed = 0;
  h2.on("session", (s) => {
    sessions.add(s);
    s.setLocalWindowSize(HTTP2_CONNECTION_WINDOW_BYTES);
    // Idle means no open stream, not no traffic: a device stream may stay quiet for hours and
    // its session must stay, while PINGs alone must not keep an empty session.
    let openStreams = 0;
    let idleTimer: NodeJS.Timeout | undefined;
    const armIdleTimer = () => {
      idleTimer = setTimeout(() => {
        idleSessionsClosed++;
        s.close(); // GOAWAY (NO_ERROR); with no stream open the session then ends at once
      }, options.idleTimeoutMs);
    };
    armIdleTimer();
    s.on("stream", (stream: http2.ServerHttp2Stream) => {
      if (openStreams++ === 0) clearTimeout(idleTimer);
      stream.once("close", () => {
        if (--openStreams === 0 && !s.closed && !s.destroyed) armIdleTimer();
      });
    });
    s.once("close", () => {
      clearTimeout(idleTimer);
      sessions.delete(s);
    });
    if (closing) s.close();
  });
  // `Expect: 100-continue`: Node would answer 100 at once, before the handler saw the headers;
  // the handler decides instead ({@link continueIfExpected} once it takes the call), so a call
  // refused from its headers alone (the auth gate) is answered without inviting its body.
  h1.on("checkContinue", (req: http.IncomingMessage, res: http.ServerResponse) => h1.emit("request", req, res));
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
  h2.on("clientError", (_err: Error, socket: net.Socket) => socket.destroy());
  h2.on("sessionError", (err) => options.log.debug("http2 session error", { error: err.message }));

  const log = options.log;
  const perClient = new ClientConnectionCounter(options.maxConnectionsPerClient);
  let refusedOverCap = 0;
  let refusedOverClientCap = 0;
  // A flood of refused connections logs one line per interval, however many it refuses.
  const overCapLog = createThrottledCounter(REFUSAL_LOG_INTERVAL_MS, (refused) =>
    log.warn("connections refused: too many open connections", { limit: options.maxConnections, refused }),
  );
  const overClientCapLog = createThrottledCounter(REFUSAL_LOG_INTERVAL_MS, (refused) =>
    log.warn("connections refused: too many open connections from one client", { limit: options.maxConnectionsPerClient, refused }),
  );
  const acceptErrorLog = createThrottledCounter(REFUSAL_LOG_INTERVAL_MS, (failed) =>
    log.warn("accepting connections failed (out of file descriptors?)", { failed }),
  );

  const sockets = new Set<net.Socket>();
  const tcp = net.createServer((socket) => {
    const client = clientKeyOf(socket.remoteAddress);
    // No address: the peer has already gone.
    if (client === undefined) return void socket.destroy();
    if (!perClient.tryOpen(client)) {
      refusedOverClientCap++;
      overClientCapLog.note();
      socket.destroy();
      return;
    }
    sockets.add(socket);
    socket.once("close", () => {
      sockets.delete(socket);
      h1Sockets.delete(socket);
      perClient.close(client);
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
  // Node refuses a connection over this before it becomes a socket, then emits "drop".
  tcp.maxConnections = options.maxConnections;
  tcp.on("drop", () => {
    refusedOverCap++;
    overCapLog.note();
  });
  // Out of file descriptors, libuv usually sheds the waiting connections itself; when it cannot,
  // Node reports the failed accept as an "error", which unhandled would end the process.
  const onAcceptError = () => acceptErrorLog.note();

  return {
    listen(port, host) {
      return new Promise((resolve, reject) => {
        tcp.once("error", reject);
        tcp.listen(port, host, () => {
          tcp.off("error", reject);
          tcp.on("error", onAcceptError);
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
    stats() {
      return {
        openConnections: sockets.size,
        http2Sessions: sessions.size,
        clients: perClient.clients,
        refusedOverCap,
        refusedOverClientCap,
        idleSessionsClosed,
      };
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
      // Stops the headers-deadline timer (h1 is not listening: its own close reports an error).
      h1.close(() => {});
      for (const l of [overCapLog, overClientCapLog, acceptErrorLog]) l.stop();
      await stopped;
    },
  };
}
