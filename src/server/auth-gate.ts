/**
 * The auth gate: checks a call's token in front of the Connect adapter, from its headers alone,
 * so a call without a valid credential is refused before a byte of its body is read. Connect
 * reads and parses a whole unary request before any interceptor runs: without the gate, a large
 * body from a caller with no token cost seconds of CPU and hundreds of MB of heap before the auth
 * interceptor said no (docs/OPERATIONS.md, "The auth gate").
 *
 * A refusal is answered by Connect itself, in the call's own protocol (Connect unary: HTTP 401
 * and a JSON error; Connect streaming: an end-stream message; gRPC and gRPC-Web: status 16),
 * through the server's interceptors (the request log records it): the call is handed to a router
 * of the same procedures whose body is a stand-in empty message ({@link standInBody}) and whose
 * verdict ({@link kAuthVerdict}) makes the auth interceptor throw the reason. The client's body
 * is never parsed: HTTP/1.1 answers carry `Connection: close`, and an HTTP/2 stream still open
 * for writing is closed (NO_ERROR) once the answer is out and the little the client may still
 * send within a bound is dropped (body-drain.ts), which tells the client to stop sending.
 *
 * An accepted call goes on to the adapter with the verdict, so the auth interceptor does not
 * verify its token again. An HTTP/1.1 client that sent `Expect: 100-continue` is told to send
 * its body only then (`continueIfExpected`); a refused one gets the refusal instead. Open
 * procedures (health, reflection), unknown paths and CORS preflights (answered before the gate)
 * pass through untouched.
 */
import type { DescMethod, DescService } from "@bufbuild/protobuf";
import { Code, ConnectError, createConnectRouter, createContextValues, type ContextValues, type ConnectRouterOptions } from "@connectrpc/connect";
import type { UniversalHandler as ConnectUniversalHandler } from "@connectrpc/connect/protocol";
import { universalRequestFromNodeRequest, universalResponseToNodeResponse } from "@connectrpc/connect-node";
import type http2 from "node:http2";
import type http from "node:http";
import { accessRule } from "../auth/access-policy.js";
import { kAuthVerdict, type AuthVerdict } from "../auth/auth-interceptor.js";
import { readCredentials } from "../auth/credentials.js";
import type { TokenVerifier } from "../auth/token-verifier.js";
import { errorFields, type Logger } from "../util/logger.js";
import { continueIfExpected, type UniversalHandler } from "./one-port-server.js";
import { limitDrain, REFUSED_DRAIN } from "./body-drain.js";

type NodeRequest = http.IncomingMessage | http2.Http2ServerRequest;
type NodeResponse = http.ServerResponse | http2.Http2ServerResponse;

/** Options for {@link withAuthGate}. */
export interface AuthGateOptions {
  /** Verifies a token: the verifier the auth interceptor would use (`createTokenVerifierFromConfig`). */
  readonly verify: TokenVerifier;
  /** Origins whose browser requests may authenticate with the cookie (`ANALYTICS_CORS_ORIGINS`). */
  readonly corsOrigins: readonly string[];
  /** The services served; the access rule of each method says whether it needs a token. */
  readonly services: readonly DescService[];
  /**
   * The Connect adapter's options: refusals are answered through the same interceptors, with
   * the same compressions, and with the context of {@link withAuthVerdict}`(contextValues)`.
   */
  readonly connect: Pick<ConnectRouterOptions, "interceptors" | "acceptCompression" | "shutdownSignal" | "jsonOptions"> & {
    readonly contextValues?: (req: NodeRequest) => ContextValues;
  };
  readonly log: Logger;
}

const VERDICT = Symbol("authVerdict");

/** The verdict the gate left on a Node request (a symbol-keyed property: no header can set it). */
export function authVerdictOf(req: NodeRequest): AuthVerdict | undefined {
  return (req as unknown as Record<symbol, AuthVerdict | undefined>)[VERDICT];
}

/**
 * `contextValues` for the Connect adapter: `base`'s values plus the gate's verdict
 * ({@link kAuthVerdict}) for the auth interceptor.
 */
export function withAuthVerdict(base: (req: NodeRequest) => ContextValues): (req: NodeRequest) => ContextValues {
  return (req) => {
    const values = base(req);
    values.set(kAuthVerdict, authVerdictOf(req));
    return values;
  };
}

/** Paths (`/package.Service/Method`) of the methods of `services` that need a token. */
export function gatedMethods(services: readonly DescService[]): Map<string, DescMethod> {
  const gated = new Map<string, DescMethod>();
  for (const service of services) {
    for (const method of service.methods) {
      if (accessRule(service.typeName, method.name).allow !== "open") gated.set(`/${service.typeName}/${method.name}`, method);
    }
  }
  return gated;
}

const EMPTY = new Uint8Array(0);
const EMPTY_JSON_OBJECT = new TextEncoder().encode("{}");

/**
 * The body a refused call is handed to Connect with instead of its own: an empty request
 * message in the call's codec (`{}` in JSON, no bytes in protobuf), enveloped for the streaming
 * protocols (gRPC, gRPC-Web, Connect streaming), so Connect parses it and calls the interceptors.
 */
export function standInBody(contentType: string | undefined): Uint8Array {
  const type = (contentType ?? "").toLowerCase();
  const message = /^application\/(?:json|(?:grpc|grpc-web|connect)\+json)\s*(?:;|$)/.test(type) ? EMPTY_JSON_OBJECT : EMPTY;
  if (!/^application\/(?:grpc|grpc-web|connect\+)/.test(type)) return message;
  // Envelope: flags (0: not compressed), then the length as a big-endian uint32.
  const enveloped = new Uint8Array(5 + message.length);
  new DataView(enveloped.buffer).setUint32(1, message.length);
  enveloped.set(message, 5);
  return enveloped;
}

/** Request headers describing the client's body, which the stand-in replaces: its length and compression. */
const BODY_HEADERS = ["content-length", "content-encoding", "connect-content-encoding", "grpc-encoding"];

/** Only called if the auth interceptor let a refused call through, which it never does. */
function refusedImplementation(): never {
  throw new ConnectError("authentication required", Code.Unauthenticated);
}

/** The headers readCredentials reads, as Connect would give them to the auth interceptor. */
const CREDENTIAL_HEADERS = ["authorization", "cookie", "origin", "sec-fetch-site"];

function credentialHeaders(req: NodeRequest): Headers {
  const header = new Headers();
  for (const name of CREDENTIAL_HEADERS) {
    const value = req.headers[name];
    if (typeof value === "string") header.append(name, value);
    else if (value !== undefined) for (const v of value) header.append(name, v);
  }
  return header;
}

/** The request URL as Connect builds it (`universalRequestFromNodeRequest`). */
function requestUrl(req: NodeRequest): string {
  const encrypted = "encrypted" in req.socket && req.socket.encrypted === true;
  const authority = "authority" in req ? req.authority : req.headers.host;
  return `${encrypted ? "https" : "http"}://${authority ?? ""}${req.url ?? ""}`;
}

/** Wraps `handler` (the Connect adapter) with the gate. */
export function withAuthGate(handler: UniversalHandler, options: AuthGateOptions): UniversalHandler {
  const gated = gatedMethods(options.services);
  const router = createConnectRouter({
    interceptors: options.connect.interceptors,
    acceptCompression: options.connect.acceptCompression,
    shutdownSignal: options.connect.shutdownSignal,
    jsonOptions: options.connect.jsonOptions,
  });
  for (const method of gated.values()) router.rpc(method as never, refusedImplementation as never);
  const refusals = new Map<string, ConnectUniversalHandler>(router.handlers.map((h) => [h.requestPath, h]));
  const contextValues = withAuthVerdict(options.connect.contextValues ?? (() => createContextValues()));

  const fail = (res: NodeResponse, err: unknown) => {
    options.log.error("auth gate failed", errorFields(err));
    if (!res.headersSent) res.writeHead(500);
    res.end();
  };

  function refuse(req: NodeRequest, res: NodeResponse, path: string, reason: unknown): void {
    setVerdict(req, { refused: reason });
    // HTTP/2: the body of a refused call is hardly read once the answer is out (body-drain.ts).
    if ("stream" in req) limitDrain(req.stream, REFUSED_DRAIN);
    // HTTP/1.1: the unread body would otherwise have to be read (and thrown away) to reuse the
    // connection; closing it stops the client instead.
    if (!("stream" in req)) res.setHeader("Connection", "close");
    let uReq: ReturnType<typeof universalRequestFromNodeRequest>;
    try {
      // Throws for a request without an authority (neither `:authority` nor `Host`).
      uReq = universalRequestFromNodeRequest(req, res, undefined, contextValues(req));
    } catch (err) {
      fail(res, err);
      return;
    }
    for (const name of BODY_HEADERS) uReq.header.delete(name);
    refusals
      .get(path)!({ ...uReq, body: oneChunk(standInBody(req.headers["content-type"])) })
      .then((uRes) => universalResponseToNodeResponse(uRes, res))
      .catch((err: unknown) => {
        // A client gone before its answer was written is no failure of the gate.
        if (!res.destroyed && ConnectError.from(err).code !== Code.Aborted) fail(res, err);
      });
  }

  return (req, res) => {
    const path = (req.url ?? "").split("?", 1)[0]!;
    if (!gated.has(path)) {
      continueIfExpected(req, res);
      handler(req, res);
      return;
    }
    const credentials = readCredentials(credentialHeaders(req), requestUrl(req), options.corsOrigins);
    if (credentials.token === undefined) {
      refuse(req, res, path, new ConnectError(credentials.problem, Code.Unauthenticated));
      return;
    }
    const token = credentials.token;
    options
      .verify(token)
      .then(
        (principal) => {
          setVerdict(req, { token, principal });
          continueIfExpected(req, res);
          handler(req, res);
        },
        (err: unknown) => refuse(req, res, path, err),
      )
      .catch((err: unknown) => fail(res, err));
  };
}

function setVerdict(req: NodeRequest, verdict: AuthVerdict): void {
  (req as unknown as Record<symbol, AuthVerdict>)[VERDICT] = verdict;
}

async function* oneChunk(chunk: Uint8Array): AsyncIterable<Uint8Array> {
  yield chunk;
}
