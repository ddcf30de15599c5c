/**
 * Answers sent before their request's body was read to the end.
 *
 * HTTP/2: the rest of the body is read and dropped from the moment the answer ends, so the stream
 * ends without a reset (body-drain.ts says why a reset costs the connection).
 *
 * HTTP/1.1: an answer sent before its request's body was read to the end (Connect answers
 * `ResourceExhausted` as soon as a body passes the method's cap) says `Connection: close`, and
 * the connection is closed once it is out (RFC 9112, 9.6), instead of being kept alive.
 *
 * Why: Connect stops reading such a body and destroys the request, and Node's server then stops
 * reading the socket without closing it (a body chunk pushed to the destroyed request pauses it,
 * and nothing resumes it). The kernel's buffers took the rest of the client's body (4 MiB on
 * loopback), the client's keep-alive pool reused the connection, and its next call there was never
 * read: it timed out although the server was idle (the fuzz suite's timeouts after "a string of
 * 4194305 bytes" via HTTP/1.1, blamed at first on the batch writer).
 */
import type http from "node:http";
import type http2 from "node:http2";
import type { UniversalHandler } from "./one-port-server.js";
import { drainUnreadBody } from "./body-drain.js";

/**
 * Wraps `handler` so an HTTP/1.1 answer to a request whose body is not all read closes the
 * connection, and the rest of an HTTP/2 request's body is read and dropped once its answer ends.
 */
export function withEarlyAnswerClose(handler: UniversalHandler): UniversalHandler {
  return (req, res) => {
    if ("stream" in req) {
      // Before the answer ends: Node's compatibility layer resets a stream whose body is unread
      // when its answer ends, and the reset is what costs the session's memory budget.
      const w = res as http2.Http2ServerResponse;
      const end = w.end;
      w.end = function (this: http2.Http2ServerResponse, ...args: unknown[]) {
        drainUnreadBody(req.stream);
        return (end as (...a: unknown[]) => http2.Http2ServerResponse).apply(this, args);
      } as typeof w.end;
    } else {
      const r = req as http.IncomingMessage;
      const w = res as http.ServerResponse;
      const writeHead = w.writeHead;
      w.writeHead = function (this: http.ServerResponse, ...args: unknown[]) {
        if (!r.complete && !this.headersSent) this.setHeader("Connection", "close");
        return (writeHead as (...a: unknown[]) => http.ServerResponse).apply(this, args);
      } as typeof w.writeHead;
    }
    handler(req, res);
  };
}
