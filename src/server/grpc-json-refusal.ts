/**
 * gRPC and gRPC-Web calls in the JSON codec (`application/grpc+json`, `application/grpc-web+json`)
 * are refused in front of Connect, from their headers alone: answered `INVALID_ARGUMENT` in the
 * gRPC protocol (HTTP 200, the call's content type, `grpc-status` and a percent-encoded
 * `grpc-message` in a trailers-only answer), their body never parsed (read and dropped, up to a
 * bound).
 *
 * Why: a gRPC status travels in a trailer, and Connect percent-encodes the message with
 * `encodeURIComponent`, which throws on a lone surrogate. Connect's messages for a JSON body it
 * cannot parse echo the caller's text cut at UTF-16 code units (V8's `Unexpected token '\ud86d'`
 * for a body starting with U+2B4FA, protobuf-es's `duplicate map key "\ud800"`...), and are made
 * before any interceptor runs: the throw in Connect's trailer code left the call unanswered and
 * its stream open for good, for every method (unauthenticated health checks too). Connect offers
 * no hook where that error is made; Connect's own protocol carries its errors in a JSON body
 * (`JSON.stringify` escapes lone surrogates) and keeps serving JSON; gRPC clients speak protobuf.
 */
import type http2 from "node:http2";
import type http from "node:http";
import type { UniversalHandler } from "./one-port-server.js";
import { ANSWERED_DRAIN } from "./body-drain.js";

type NodeRequest = http.IncomingMessage | http2.Http2ServerRequest;
type NodeResponse = http.ServerResponse | http2.Http2ServerResponse;

/** gRPC's INVALID_ARGUMENT. */
const INVALID_ARGUMENT = 3;

/** The message of a refusal (ASCII: the same percent-encoded). */
export const GRPC_JSON_REFUSAL =
  "the JSON codec is not served over gRPC or gRPC-Web: send application/grpc (protobuf), or use the Connect protocol for JSON";

/** Whether `contentType` is gRPC or gRPC-Web in the JSON codec (as Connect would read it: case-insensitive, an optional charset). */
export function isGrpcJson(contentType: string | undefined): boolean {
  return contentType !== undefined && /^application\/grpc(?:-web)?\+json\s*(?:;|$)/i.test(contentType.trim());
}

/** Wraps `handler` (the Connect adapter, or what is in front of it) with the refusal. */
export function withGrpcJsonRefusal(handler: UniversalHandler): UniversalHandler {
  return (req, res) => {
    const contentType = req.headers["content-type"];
    if (req.method !== "POST" || !isGrpcJson(contentType)) {
      handler(req, res);
      return;
    }
    refuse(req, res, contentType!);
  };
}

function refuse(req: NodeRequest, res: NodeResponse, contentType: string): void {
  res.writeHead(200, {
    "content-type": contentType,
    "grpc-status": String(INVALID_ARGUMENT),
    "grpc-message": encodeURIComponent(GRPC_JSON_REFUSAL),
    "content-length": "0",
  });
  res.end();
  req.on("error", () => {}); // a client gone mid-body: nothing left to answer
  // The body is read and dropped (never parsed), so a client still writing its message (connect-
  // node's gRPC client with a large one) finishes it and reads the answer instead of a reset
  // ("Premature close"). HTTP/2: done once the answer is out (unread-body.ts). HTTP/1.1: here, up
  // to ANSWERED_DRAIN.bytes, then the connection is closed (its answer said `Connection: close`).
  if ("stream" in req) return;
  let read = 0;
  const count = (chunk: Buffer) => {
    read += chunk.length;
    if (read > ANSWERED_DRAIN.bytes) {
      req.off("data", count);
      req.socket.destroy();
    }
  };
  req.on("data", count);
}
