/**
 * Per-request facts only the Node HTTP layer knows: the peer address, the HTTP version and the
 * body bytes in each direction. The request log reads them through {@link kRequestMeter}.
 */
import { createContextKey, createContextValues, type ContextValues } from "@connectrpc/connect";
import type http from "node:http";
import type http2 from "node:http2";
import type { UniversalHandler } from "./one-port-server.js";

/** What the HTTP layer measured for one request; sizes grow while the call runs. */
export interface RequestMeter {
  readonly remoteAddress: string | undefined;
  /** The request's headers as Node parsed them (names in lower case). */
  readonly headers: http.IncomingHttpHeaders | http2.IncomingHttpHeaders;
  requestBytes: number;
  responseBytes: number;
  /** Called once, when the HTTP response is finished or the connection is gone. */
  onClose: (() => void) | undefined;
  closed: boolean;
}

/** The meter of the current call (undefined in in-process transports, which have no HTTP layer). */
export const kRequestMeter = createContextKey<RequestMeter | undefined>(undefined, { description: "HTTP request meter" });

type NodeRequest = http.IncomingMessage | http2.Http2ServerRequest;
type NodeResponse = http.ServerResponse | http2.Http2ServerResponse;

const METER = Symbol("requestMeter");

/**
 * Wraps a Node handler so every request carries a {@link RequestMeter}: body bytes are counted as
 * they pass `push` (request) and `write`/`end` (response), which costs nothing per byte.
 */
export function meterRequests(handler: UniversalHandler): UniversalHandler {
  return (req, res) => {
    const meter: RequestMeter = {
      remoteAddress: req.socket?.remoteAddress,
      headers: req.headers,
      requestBytes: 0,
      responseBytes: 0,
      onClose: undefined,
      closed: false,
    };
    (req as unknown as Record<symbol, RequestMeter>)[METER] = meter;
    const push = req.push;
    req.push = function (this: NodeRequest, chunk: unknown, encoding?: BufferEncoding) {
      if (chunk != null) meter.requestBytes += (chunk as Buffer).length;
      return push.call(this, chunk, encoding);
    } as typeof req.push;
    const count = (chunk: unknown) => {
      if (chunk == null || typeof chunk === "function") return;
      meter.responseBytes += typeof chunk === "string" ? Buffer.byteLength(chunk) : (chunk as Uint8Array).byteLength;
    };
    const write = res.write as (...args: unknown[]) => boolean;
    const end = res.end as (...args: unknown[]) => NodeResponse;
    (res as unknown as { write: unknown }).write = function (this: NodeResponse, ...args: unknown[]) {
      count(args[0]);
      return write.apply(this, args);
    };
    (res as unknown as { end: unknown }).end = function (this: NodeResponse, ...args: unknown[]) {
      count(args[0]);
      return end.apply(this, args);
    };
    res.once("close", () => {
      meter.closed = true;
      meter.onClose?.();
    });
    handler(req, res);
  };
}

/** `contextValues` for `connectNodeAdapter`: exposes the meter to interceptors. */
export function meterContextValues(req: NodeRequest): ContextValues {
  const values = createContextValues();
  values.set(kRequestMeter, (req as unknown as Record<symbol, RequestMeter | undefined>)[METER]);
  return values;
}
