/**
 * Raw clients for hostile traffic: bytes no protobuf library would produce, sent as gRPC over
 * `node:http2` (the 5-byte envelope built here), as Connect unary over `node:http` and as Connect
 * streaming over `node:http2`, and the answer read back as a Connect code name. Plus a minimal
 * protobuf writer for messages built byte by byte (deep nesting, repeated fields, invalid UTF-8).
 */
import http from "node:http";
import http2 from "node:http2";

/** Protobuf wire types. */
export const WireType = { varint: 0, i64: 1, len: 2, startGroup: 3, endGroup: 4, i32: 5 } as const;

/** `n` as a protobuf varint. */
export function varint(n: number): Uint8Array {
  const out: number[] = [];
  let v = n;
  while (v >= 0x80) {
    out.push((v % 0x80) | 0x80);
    v = Math.floor(v / 0x80);
  }
  out.push(v);
  return Uint8Array.from(out);
}

/** A field's tag. */
export function tag(field: number, wireType: number): Uint8Array {
  return varint(field * 8 + wireType);
}

/** Byte arrays joined. */
export function concat(parts: readonly Uint8Array[]): Uint8Array {
  let size = 0;
  for (const p of parts) size += p.length;
  const out = new Uint8Array(size);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** A length-delimited field: tag, length, payload. */
export function lenField(field: number, payload: Uint8Array): Uint8Array {
  return concat([tag(field, WireType.len), varint(payload.length), payload]);
}

/**
 * `payload` wrapped in nested length-delimited fields, `path[0]` outermost: each level is the tag
 * and length of everything inside it. Linear in the output, however deep.
 */
export function wrapFields(path: readonly number[], payload: Uint8Array): Uint8Array {
  const prefixes: Uint8Array[] = new Array<Uint8Array>(path.length);
  let inner = payload.length;
  for (let i = path.length - 1; i >= 0; i--) {
    const prefix = concat([tag(path[i]!, WireType.len), varint(inner)]);
    prefixes[i] = prefix;
    inner += prefix.length;
  }
  return concat([...prefixes, payload]);
}

/** A gRPC (and Connect streaming) envelope: flags, big-endian length, payload. */
export function envelope(payload: Uint8Array, flags = 0, declaredLength = payload.length): Uint8Array {
  const out = new Uint8Array(5 + payload.length);
  out[0] = flags;
  new DataView(out.buffer).setUint32(1, declaredLength >>> 0);
  out.set(payload, 5);
  return out;
}

/** Connect code names by gRPC status number. */
const CODE_NAMES = [
  "ok",
  "canceled",
  "unknown",
  "invalid_argument",
  "deadline_exceeded",
  "not_found",
  "already_exists",
  "permission_denied",
  "resource_exhausted",
  "failed_precondition",
  "aborted",
  "out_of_range",
  "unimplemented",
  "internal",
  "unavailable",
  "data_loss",
  "unauthenticated",
];

/** The Connect code name of a gRPC status number (`code_N` when unknown). */
export function codeName(status: number): string {
  return CODE_NAMES[status] ?? `code_${status}`;
}

/**
 * How a call ended: a Connect code name (`ok`, `invalid_argument`, ...), or `http_NNN` for an
 * HTTP answer that carries no RPC status, `reset` when the connection or stream was closed before
 * any answer, `timeout` when nothing came within the client's deadline.
 */
export interface Outcome {
  readonly code: string;
  readonly message?: string;
  /** Time to the answer, ms. */
  readonly ms: number;
  /** Bytes of the request body (HTTP/1.1 calls, whose answer to a body past a cap closes the connection). */
  readonly bodyBytes?: number;
}

/** What a raw call sends. */
export interface RawCall {
  /** `/package.Service/Method`. */
  readonly path: string;
  /** Request body (already enveloped for gRPC and Connect streaming). */
  readonly body: Uint8Array;
  readonly contentType: string;
  readonly headers?: Readonly<Record<string, string>>;
  /** Client deadline, ms. */
  readonly timeoutMs: number;
  /**
   * For responses that stream: once a message has arrived, how long to wait for the end before
   * taking the call as answered and cancelling it (a health Watch stays open by design).
   */
  readonly openStreamGraceMs?: number;
}

/** Session memory of the fuzz clients' HTTP/2 sessions, in MB (see {@link H2Pool.session}). */
export const CLIENT_SESSION_MEMORY_MB = 1024;

/** HTTP/2 sessions to one server, reopened when one is closed or refused. */
export class H2Pool {
  #session: http2.ClientHttp2Session | undefined;
  constructor(readonly url: string) {}

  session(): http2.ClientHttp2Session {
    const s = this.#session;
    if (s !== undefined && !s.closed && !s.destroyed) return s;
    // Node's default (10 MB) would make the client itself refuse new streams (ENHANCE_YOUR_CALM)
    // while a message far over the server's cap is still buffered on its way out.
    const fresh = http2.connect(this.url, { maxSessionMemory: CLIENT_SESSION_MEMORY_MB });
    fresh.on("error", () => {});
    fresh.on("goaway", () => {
      if (this.#session === fresh) this.#session = undefined;
    });
    this.#session = fresh;
    return fresh;
  }

  close(): void {
    this.#session?.destroy();
    this.#session = undefined;
  }
}

/**
 * One call over HTTP/2 (gRPC or Connect streaming, as the content type says); the answer's code
 * from `grpc-status`, or from the Connect end-of-stream message.
 */
export function h2Call(pool: H2Pool, call: RawCall): Promise<Outcome> {
  const started = performance.now();
  const grpc = call.contentType.startsWith("application/grpc");
  return new Promise<Outcome>((resolve) => {
    let settled = false;
    let stream: http2.ClientHttp2Stream | undefined;
    let graceTimer: NodeJS.Timeout | undefined;
    // A complete answer leaves the rest of the upload to go out (the server reads and drops it):
    // cancelling it would cost this client's own session memory budget (src/server/body-drain.ts)
    // and, some thousand calls later, have Node refuse this client's new streams ENHANCE_YOUR_CALM.
    // A call given up on (no answer in time, a stream left open) is cancelled.
    const done = (code: string, message?: string, answered = true) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      clearTimeout(graceTimer);
      if (!answered && stream && !stream.closed) stream.close(http2.constants.NGHTTP2_CANCEL);
      resolve({ code, ...(message !== undefined ? { message: message.slice(0, 300) } : {}), ms: performance.now() - started });
    };
    const timer = setTimeout(() => done("timeout", undefined, false), call.timeoutMs);
    try {
      stream = pool.session().request({
        ":method": "POST",
        ":path": call.path,
        "content-type": call.contentType,
        te: "trailers",
        ...call.headers,
      });
    } catch (err) {
      done("reset", String(err));
      return;
    }
    let status: string | undefined;
    let statusMessage: string | undefined;
    let httpStatus = 0;
    const chunks: Buffer[] = [];
    let messages = 0;
    // The answer is complete at its trailers (gRPC) or at the end of the response body (Connect),
    // even while the request is still being sent: a server that refuses a body it will not read
    // answers early, and waiting for the stream to close would wait for the unread upload.
    const finishGrpc = () => done(codeName(Number(status)), statusMessage && decodeURIComponent(statusMessage));
    stream.on("response", (headers) => {
      httpStatus = Number(headers[":status"]);
      if (headers["grpc-status"] !== undefined) {
        status = String(headers["grpc-status"]);
        statusMessage = headers["grpc-message"] as string | undefined;
        if (grpc) finishGrpc();
      }
    });
    stream.on("trailers", (trailers) => {
      status = String(trailers["grpc-status"]);
      statusMessage = trailers["grpc-message"] as string | undefined;
      if (grpc) finishGrpc();
    });
    stream.on("end", () => {
      if (!grpc) finishConnect();
    });
    stream.on("data", (chunk: Buffer) => {
      chunks.push(chunk);
      // Count whole envelopes seen so far, for the open-stream rule.
      const all = Buffer.concat(chunks);
      let at = 0;
      let n = 0;
      while (at + 5 <= all.length) {
        const len = all.readUInt32BE(at + 1);
        if (at + 5 + len > all.length) break;
        n++;
        at += 5 + len;
      }
      if (n > messages) {
        messages = n;
        if (call.openStreamGraceMs !== undefined && graceTimer === undefined) {
          graceTimer = setTimeout(() => done("ok", "stream left open after answering", false), call.openStreamGraceMs);
        }
      }
    });
    stream.on("error", () => {});
    const finishConnect = () => {
      // Connect streaming: the last envelope (flag 0x02) is the end-of-stream JSON.
      if (httpStatus !== 200) return done(httpStatus ? connectHttpCode(httpStatus, Buffer.concat(chunks)) : "reset", `stream closed with RST_STREAM code ${stream!.rstCode} before any answer`);
      const end = lastEndStream(Buffer.concat(chunks));
      if (end === undefined) return done("reset", "no end-of-stream message");
      done(end.code, end.message);
    };
    stream.on("close", () => {
      if (!grpc) return finishConnect();
      if (status !== undefined) return finishGrpc();
      done(httpStatus ? `http_${httpStatus}` : "reset", `stream closed with RST_STREAM code ${stream!.rstCode} before any status`);
    });
    stream.end(call.body);
  });
}

function lastEndStream(all: Buffer): { code: string; message?: string } | undefined {
  let at = 0;
  let end: { code: string; message?: string } | undefined;
  while (at + 5 <= all.length) {
    const flags = all[at]!;
    const len = all.readUInt32BE(at + 1);
    if (at + 5 + len > all.length) break;
    if (flags & 0x02) {
      try {
        const parsed = JSON.parse(all.subarray(at + 5, at + 5 + len).toString("utf8")) as { error?: { code?: string; message?: string } };
        end = parsed.error ? { code: parsed.error.code ?? "unknown", ...(parsed.error.message ? { message: parsed.error.message } : {}) } : { code: "ok" };
      } catch {
        end = { code: "unparseable_end_stream" };
      }
    }
    at += 5 + len;
  }
  return end;
}

/** The code of a Connect unary (or refused streaming) answer: its JSON error body, else `http_NNN`. */
function connectHttpCode(status: number, body: Buffer): string {
  if (status === 200) return "ok";
  try {
    const parsed = JSON.parse(body.toString("utf8")) as { code?: unknown };
    if (typeof parsed.code === "string") return parsed.code;
  } catch {
    // Not a Connect error body.
  }
  return `http_${status}`;
}

/** One Connect unary call over HTTP/1.1 (keep-alive through `agent`). */
export function h1Call(agent: http.Agent, url: string, call: RawCall): Promise<Outcome> {
  const started = performance.now();
  const target = new URL(call.path, url);
  return new Promise<Outcome>((resolve) => {
    let settled = false;
    const done = (code: string, message?: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve({ code, ...(message !== undefined ? { message: message.slice(0, 300) } : {}), ms: performance.now() - started, bodyBytes: call.body.length });
    };
    const req = http.request(
      {
        agent,
        host: target.hostname,
        port: target.port,
        method: "POST",
        path: target.pathname,
        headers: {
          "content-type": call.contentType,
          "connect-protocol-version": "1",
          "content-length": String(call.body.length),
          ...call.headers,
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("error", () => done("reset", "response aborted"));
        res.on("end", () => {
          const body = Buffer.concat(chunks);
          let message: string | undefined;
          try {
            message = (JSON.parse(body.toString("utf8")) as { message?: string }).message;
          } catch {
            message = undefined;
          }
          done(connectHttpCode(res.statusCode ?? 0, body), message);
        });
      },
    );
    const timer = setTimeout(() => {
      done("timeout");
      req.destroy();
    }, call.timeoutMs);
    req.on("error", (err) => done("reset", err.message));
    req.end(call.body);
  });
}
