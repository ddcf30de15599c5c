/**
 * The transport for backend services: gRPC over HTTP/2 (or the Connect protocol), a bearer token,
 * one deadline per call, and retries for what is safe to retry.
 *
 * @module
 */
import type { Interceptor, Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { createBearerTokenInterceptor, type TokenSource } from "../bearer-token.js";
import { createRetryInterceptor, type RetryOptions } from "../retry.js";
import { markBinaryTransport } from "../wire/binary-transport.js";

/** Options of {@link createNodeTransport}. */
export interface NodeTransportOptions {
  /** The service, e.g. `http://analytics.internal:8080`. */
  readonly baseUrl: string;
  /** A fixed access token (JWT), sent as `authorization: Bearer ...`. */
  readonly token?: string;
  /** Returns the current token; called before every attempt (cache and refresh inside it). */
  readonly getToken?: () => string | Promise<string>;
  /**
   * `grpc` (default): gRPC over HTTP/2, binary. `connect`: the Connect protocol (binary), about
   * 2.6x cheaper for the server per unary call; over HTTP/2 by default (`httpVersion`).
   */
  readonly protocol?: "grpc" | "connect";
  /** HTTP version for `protocol: "connect"` (default "2"); gRPC is always HTTP/2. */
  readonly httpVersion?: "1.1" | "2";
  /**
   * Deadline of each call in ms, retries included (default 30000, the server's own cap; 0 for
   * none). A call's own `timeoutMs` wins.
   */
  readonly timeoutMs?: number;
  /**
   * Retries of unary calls (default `{ maxAttempts: 4, initialBackoffMs: 200, maxBackoffMs: 5000 }`;
   * `false` disables them). See {@link createRetryInterceptor} for what is retried.
   */
  readonly retry?: RetryOptions | false;
  /** More interceptors, run inside the retry and token interceptors (so once per attempt). */
  readonly interceptors?: readonly Interceptor[];
  /**
   * HTTP/2 keep-alive ping interval in ms (default 30000), so a dead connection is noticed and
   * replaced instead of hanging calls until their deadline.
   */
  readonly pingIntervalMs?: number;
  /**
   * An HTTP/2 connection without calls for this long is closed by the client (default 60000).
   * It must stay below the server's `ANALYTICS_IDLE_TIMEOUT_MS` (default 120000): a call started
   * just as the server closes an idle connection would be refused (`REFUSED_STREAM`), and the
   * client closing first avoids that race.
   */
  readonly idleConnectionTimeoutMs?: number;
}

/** The HTTP/2 session memory budget of the SDK's connections, MB (Node's default: 10). */
const CLIENT_SESSION_MEMORY_MB = 64;

/**
 * Creates a Connect transport for Node.js backends.
 *
 * ```ts
 * import { createAnalyticsClient } from "@fleet/analytics-sdk";
 * import { createNodeTransport } from "@fleet/analytics-sdk/node";
 *
 * const transport = createNodeTransport({ baseUrl: "http://localhost:8080", token: process.env.ANALYTICS_TOKEN });
 * const analytics = createAnalyticsClient(transport);
 * ```
 *
 * Retries (unary calls only, within the call's deadline):
 * - `ResourceExhausted` with a retry hint (a `google.rpc.RetryInfo` detail, or `retry-after-ms`:
 *   rate limit, full write buffer): the server did nothing, so any call is retried after the
 *   hinted wait;
 * - `Unavailable` (server down or restarting, database away): only calls that cannot store
 *   twice: `Log*` with an `eventId` (the SDK client sets one by default), `LogEvents` whose every
 *   event has one, `ResolveError`, `IngestDeviceMetrics` and every query; with exponential
 *   backoff and jitter.
 * Everything else fails at once with its `ConnectError`.
 *
 * @throws Error when both `token` and `getToken` are given (neither is fine: health checks and
 *   reflection need no token).
 */
export function createNodeTransport(options: NodeTransportOptions): Transport {
  if (options.token !== undefined && options.getToken !== undefined) throw new Error("give token or getToken, not both");
  const interceptors: Interceptor[] = [];
  interceptors.push(createRetryInterceptor(options.retry === false ? { maxAttempts: 1 } : (options.retry ?? {})));
  const source: TokenSource | undefined = options.token ?? options.getToken;
  if (source !== undefined) interceptors.push(createBearerTokenInterceptor(source));
  interceptors.push(...(options.interceptors ?? []));
  const timeoutMs = options.timeoutMs ?? 30_000;
  const defaultTimeoutMs = timeoutMs > 0 ? timeoutMs : undefined;
  const pingIntervalMs = options.pingIntervalMs ?? 30_000;
  const idleConnectionTimeoutMs = options.idleConnectionTimeoutMs ?? 60_000;
  // Node 20 charges a stream reset while its body is still being sent (a call the server answered
  // early, e.g. refused) to the session's memory budget for good: at Node's default (10 MB) two
  // refused 5 MiB uploads left the connection refusing every new call (ENHANCE_YOUR_CALM).
  const nodeOptions = { maxSessionMemory: CLIENT_SESSION_MEMORY_MB };
  if (options.protocol === "connect") {
    if (options.httpVersion === "1.1") {
      return markBinaryTransport(createConnectTransport({ baseUrl: options.baseUrl, httpVersion: "1.1", useBinaryFormat: true, interceptors, defaultTimeoutMs }));
    }
    return markBinaryTransport(
      createConnectTransport({ baseUrl: options.baseUrl, httpVersion: "2", useBinaryFormat: true, interceptors, defaultTimeoutMs, pingIntervalMs, idleConnectionTimeoutMs, nodeOptions }),
    );
  }
  // Binary in every protocol: clients may send pre-encoded messages (LogEvents) through it.
  return markBinaryTransport(createGrpcTransport({ baseUrl: options.baseUrl, interceptors, defaultTimeoutMs, pingIntervalMs, idleConnectionTimeoutMs, nodeOptions }));
}
