/**
 * Sends a generated {@link FuzzCase} over one of four channels and reports how the call ended:
 *
 * - `client-grpc`, `client-connect`: connect-node's own transports (gRPC over HTTP/2; Connect over
 *   HTTP/1.1 for unary calls, over HTTP/2 for streams), for messages a library can encode;
 * - `raw-grpc`: `node:http2` with the gRPC envelope built by hand, any bytes;
 * - `raw-connect`: `node:http` for unary calls, `node:http2` with Connect envelopes for streams.
 */
import { fromJson, type DescMethodStreaming, type DescMethodUnary, type JsonValue } from "@bufbuild/protobuf";
import { ConnectError, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import http from "node:http";
import { encodeJson, type Encoding, type FuzzCase, type FuzzTarget } from "./hostile-messages.js";
import { CLIENT_SESSION_MEMORY_MB, codeName, envelope, H2Pool, h1Call, h2Call, type Outcome } from "./hostile-wire.js";

/** Where a case is sent. */
export type Channel = "client-grpc" | "client-connect" | "raw-grpc" | "raw-connect";

/** How long a streamed answer may stay open after its first message (a health Watch does). */
const OPEN_STREAM_GRACE_MS = 300;

/**
 * Bytes a client HTTP/2 transport sends before the sender starts a fresh one. A Node 20 HTTP/2
 * client loses part of its session's memory budget for good whenever a stream ends while it is
 * still uploading (the server refused the call early: a body over its method's cap, a caller
 * without a valid token), up to the part not sent; once the losses add up to the budget
 * (`CLIENT_SESSION_MEMORY_MB`), the client refuses its own new streams with ENHANCE_YOUR_CALM.
 * Starting a fresh session well before that keeps a long run's findings about the server.
 */
const ROTATE_AFTER_BYTES = (CLIENT_SESSION_MEMORY_MB / 4) * 1024 * 1024;

/** Clients to one server, shared by every case. */
export class FuzzSender {
  readonly #transports = new Map<string, Transport>();
  /** Bytes sent over each client transport, by its key. */
  readonly #sentBytes = new Map<string, number>();
  readonly #h2: H2Pool;
  readonly #agent = new http.Agent({ keepAlive: true, maxSockets: 8 });

  constructor(
    readonly url: string,
    readonly timeoutMs: number,
  ) {
    this.#h2 = new H2Pool(url);
  }

  #transport(channel: "client-grpc" | "client-connect", encoding: Encoding, streaming: boolean, bytes: number): Transport {
    const key = `${channel}/${encoding}/${streaming}`;
    const sent = (this.#sentBytes.get(key) ?? 0) + bytes;
    // The old transport's session is left to finish its calls and idle out.
    if (sent > ROTATE_AFTER_BYTES) this.#transports.delete(key);
    this.#sentBytes.set(key, sent > ROTATE_AFTER_BYTES ? bytes : sent);
    let t = this.#transports.get(key);
    if (t === undefined) {
      const useBinaryFormat = encoding === "binary";
      t =
        channel === "client-grpc"
          ? createGrpcTransport({ baseUrl: this.url, useBinaryFormat, nodeOptions: { maxSessionMemory: CLIENT_SESSION_MEMORY_MB } })
          : streaming
            ? createConnectTransport({ baseUrl: this.url, useBinaryFormat, httpVersion: "2", nodeOptions: { maxSessionMemory: CLIENT_SESSION_MEMORY_MB } })
            : createConnectTransport({ baseUrl: this.url, useBinaryFormat, httpVersion: "1.1" });
      this.#transports.set(key, t);
    }
    return t;
  }

  /** Sends `c` for `target` in `encoding` with `authorization` (none when undefined). */
  async send(target: FuzzTarget, encoding: Encoding, channel: Channel, c: FuzzCase, authorization: string | undefined): Promise<Outcome> {
    const headers: Record<string, string> = authorization === undefined ? {} : { authorization };
    if (channel === "client-grpc" || channel === "client-connect") {
      if (c.kind !== "message") throw new Error("client channels send messages only");
      // What the client will send (its body, as the server's read cap counts it).
      const bodyBytes = encodeJson(target.method.input, c.json, encoding).length;
      const outcome = await this.#viaClient(target, this.#transport(channel, encoding, target.streaming, bodyBytes), c.json, headers);
      return { ...outcome, bodyBytes };
    }
    const payload = c.kind === "message" ? encodeJson(target.method.input, c.json, encoding) : c.payload;
    const flags = c.kind === "bytes" ? (c.flags ?? 0) : 0;
    const declared = c.kind === "bytes" ? (c.declaredLength ?? payload.length) : payload.length;
    const json = encoding === "json";
    if (channel === "raw-grpc") {
      return h2Call(this.#h2, {
        path: target.path,
        body: envelope(payload, flags, declared),
        contentType: json ? "application/grpc+json" : "application/grpc",
        headers,
        timeoutMs: this.timeoutMs,
        openStreamGraceMs: target.streaming ? OPEN_STREAM_GRACE_MS : undefined,
      });
    }
    if (target.streaming) {
      return h2Call(this.#h2, {
        path: target.path,
        body: envelope(payload),
        contentType: json ? "application/connect+json" : "application/connect+proto",
        headers,
        timeoutMs: this.timeoutMs,
        openStreamGraceMs: OPEN_STREAM_GRACE_MS,
      });
    }
    return h1Call(this.#agent, this.url, {
      path: target.path,
      body: payload,
      contentType: json ? "application/json" : "application/proto",
      headers,
      timeoutMs: this.timeoutMs,
    });
  }

  async #viaClient(target: FuzzTarget, transport: Transport, json: JsonValue, headers: Record<string, string>): Promise<Outcome> {
    const started = performance.now();
    const deadline = new AbortController();
    const timer = setTimeout(() => deadline.abort(), this.timeoutMs);
    const outcome = (code: string, message?: string): Outcome => ({ code, ...(message !== undefined ? { message: message.slice(0, 300) } : {}), ms: performance.now() - started });
    // Outside the try: a message the client cannot build is the generator's fault, not the server's.
    const input = fromJson(target.method.input, json);
    try {
      if (target.method.methodKind === "unary") {
        await transport.unary(target.method as DescMethodUnary, deadline.signal, undefined, headers, input);
        return outcome("ok");
      }
      const res = await transport.stream(
        target.method as DescMethodStreaming,
        deadline.signal,
        undefined,
        headers,
        (async function* () {
          yield input;
        })(),
      );
      let grace: NodeJS.Timeout | undefined;
      try {
        for await (const _ of res.message) grace ??= setTimeout(() => deadline.abort("open"), OPEN_STREAM_GRACE_MS);
      } finally {
        clearTimeout(grace);
      }
      return outcome("ok");
    } catch (err) {
      if (deadline.signal.aborted) return deadline.signal.reason === "open" ? outcome("ok", "stream left open after answering") : outcome("timeout");
      const e = ConnectError.from(err);
      return outcome(codeName(e.code), e.rawMessage);
    } finally {
      clearTimeout(timer);
    }
  }

  close(): void {
    this.#h2.close();
    this.#agent.destroy();
  }
}
