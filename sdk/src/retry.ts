/**
 * Retries, platform-neutral: which failures are worth retrying, how long to wait (exponential
 * backoff with jitter, or the server's hint: a `google.rpc.RetryInfo` detail, or the older
 * `retry-after-ms` header), and a client interceptor that
 * retries unary calls that are safe to repeat. Used by the Node and web transports, the event
 * queues and the device streamer.
 *
 * @module
 */
import type { DescMethod } from "@bufbuild/protobuf";
import { Code, ConnectError, type Interceptor, type UnaryRequest } from "@connectrpc/connect";
import { retryInfoMs } from "./error-details.js";
import { encodedRequestIsIdempotent } from "./wire/log-events-wire.js";

/** How often and how patiently to retry. */
export interface RetryOptions {
  /** Attempts in all, the first included (default 4; 1 disables retries). */
  readonly maxAttempts?: number;
  /** Wait before the first retry, in ms (default 200); doubled for each further retry. */
  readonly initialBackoffMs?: number;
  /** Longest wait between attempts, in ms (default 5000). A server hint may ask for longer. */
  readonly maxBackoffMs?: number;
}

/** The defaults of {@link RetryOptions}. */
export const DEFAULT_RETRY_OPTIONS: Readonly<Required<RetryOptions>> = Object.freeze({
  maxAttempts: 4,
  initialBackoffMs: 200,
  maxBackoffMs: 5000,
});

/**
 * Response header (Connect) or trailer (gRPC, gRPC-Web) in which the server says how long to wait
 * before retrying a `ResourceExhausted` call (rate limit, full write buffer). The server also
 * sends the wait as a `google.rpc.RetryInfo` detail, which {@link retryHintMs} reads first; the
 * header is read for servers from before the detail.
 */
export const RETRY_AFTER_KEY = "retry-after-ms";

/** Codes a queue (logger, tracker, streamer) keeps its data for and tries again later. */
const TRANSIENT_CODES: ReadonlySet<Code> = new Set([
  Code.Unavailable,
  Code.ResourceExhausted,
  Code.DeadlineExceeded,
  Code.Aborted,
  Code.Unknown, // a browser's fetch failing (network down, CORS) surfaces as Unknown
  Code.Internal, // e.g. a database failure the server could not classify; the same call may work later
  Code.Unauthenticated, // a token can be refreshed (`getToken`)
  Code.Canceled,
]);

/**
 * True when the same request may succeed later. Only `InvalidArgument`, `PermissionDenied`,
 * `NotFound`, `AlreadyExists`, `FailedPrecondition`, `OutOfRange`, `Unimplemented` and
 * `DataLoss` are final: a queue drops what they refuse instead of retrying it forever.
 */
export function isTransientError(err: unknown): boolean {
  return TRANSIENT_CODES.has(ConnectError.from(err).code);
}

/**
 * The server's retry hint in ms: the error's `google.rpc.RetryInfo` detail, else its
 * `retry-after-ms` metadata ({@link RETRY_AFTER_KEY}); `undefined` when it has neither.
 */
export function retryHintMs(err: unknown): number | undefined {
  if (!(err instanceof ConnectError)) return undefined;
  const detail = retryInfoMs(err);
  if (detail !== undefined) return detail;
  const raw = err.metadata.get(RETRY_AFTER_KEY);
  if (raw === null) return undefined;
  const ms = Number(raw.split(",")[0]);
  return Number.isFinite(ms) && ms >= 0 ? ms : undefined;
}

/**
 * The wait before retry number `retry` (0 for the first retry): "equal jitter" exponential
 * backoff, between half and all of `min(maxBackoffMs, initialBackoffMs * 2^retry)`, so clients
 * that failed together do not come back together.
 */
export function backoffMs(retry: number, options: RetryOptions = {}, random: () => number = Math.random): number {
  const initial = options.initialBackoffMs ?? DEFAULT_RETRY_OPTIONS.initialBackoffMs;
  const max = options.maxBackoffMs ?? DEFAULT_RETRY_OPTIONS.maxBackoffMs;
  const cap = Math.min(max, initial * 2 ** Math.min(retry, 30));
  return Math.round(cap / 2 + random() * (cap / 2));
}

/**
 * The wait before retrying after `err`: the server's hint when it gave one (plus up to 10 %
 * jitter), else {@link backoffMs}.
 */
export function retryDelayMs(err: unknown, retry: number, options: RetryOptions = {}, random: () => number = Math.random): number {
  const hint = retryHintMs(err);
  if (hint !== undefined) return Math.round(hint + random() * Math.min(hint * 0.1, 250));
  return backoffMs(retry, options, random);
}

/**
 * Resolves after `ms`, or rejects with the signal's reason (as a `ConnectError`, `Canceled` or
 * `DeadlineExceeded`) as soon as `signal` aborts.
 */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (signal?.aborted === true) {
      reject(ConnectError.from(signal.reason, Code.Canceled));
      return;
    }
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(ConnectError.from(signal?.reason, Code.Canceled));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** Methods of the analytics API that are safe to repeat whatever their request holds. */
const IDEMPOTENT_METHODS: ReadonlySet<string> = new Set([
  "analytics.v1.AnalyticsService/ResolveError", // sets a state
  "analytics.v1.AnalyticsService/IngestDeviceMetrics", // rows keyed by (device_id, occurred_at)
  "analytics.v1.MetricsService/GetApiPerformance",
  "analytics.v1.MetricsService/GetJobOutcomes",
  "analytics.v1.MetricsService/GetErrorTrends",
  "analytics.v1.MetricsService/GetDeviceStateHistory",
  "analytics.v1.MetricsService/GetDeviceMetrics",
  "grpc.health.v1.Health/Check",
  "grpc.health.v1.Health/List",
]);

const hasEventId = (m: unknown): boolean =>
  typeof m === "object" && m !== null && typeof (m as { eventId?: unknown }).eventId === "string" && (m as { eventId: string }).eventId !== "";

/**
 * True when repeating `message` on `method` cannot store anything twice: read-only and
 * state-setting methods (and any method declared `idempotency_level` in its proto), a `Log*`
 * event with an `event_id`, and a `LogEvents` batch whose every event has one.
 */
export function isIdempotentCall(method: DescMethod, message: unknown): boolean {
  // NO_SIDE_EFFECTS (1) or IDEMPOTENT (2) in the proto.
  if (method.idempotency === 1 || method.idempotency === 2) return true;
  const path = `${method.parent.typeName}/${method.name}`;
  if (IDEMPOTENT_METHODS.has(path)) return true;
  if (path === "analytics.v1.AnalyticsService/LogEvents") {
    const encoded = encodedRequestIsIdempotent(message); // events sent pre-encoded (the Node client)
    if (encoded !== undefined) return encoded;
    const events = (message as { events?: { kind?: { value?: unknown } }[] }).events ?? [];
    return events.length > 0 && events.every((e) => hasEventId(e.kind?.value));
  }
  if (method.parent.typeName === "analytics.v1.AnalyticsService" && method.name.startsWith("Log")) return hasEventId(message);
  return false;
}

/** Remaining time of the call, from its `grpc-timeout` or `connect-timeout-ms` header. */
function callTimeoutMs(req: UnaryRequest): number | undefined {
  const connect = req.header.get("connect-timeout-ms");
  if (connect !== null && /^\d+$/.test(connect)) return Number(connect);
  const grpc = req.header.get("grpc-timeout");
  const m = grpc === null ? null : /^(\d+)([HMSmun])$/.exec(grpc);
  if (!m) return undefined;
  const unitMs: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 0.001, n: 0.000001 };
  return Number(m[1]) * unitMs[m[2]!]!;
}

/**
 * Failures that are a lost or unreachable server, reported as `Unavailable`, which they are: a
 * `Canceled` the caller did not ask for (Node reports an HTTP/2 stream reset by a dropped
 * connection as `CANCEL`), and a `fetch` that failed at the network level.
 */
function normalizeError(err: ConnectError, signal: AbortSignal): ConnectError {
  if (signal.aborted) return err;
  if (err.code === Code.Canceled) return new ConnectError(`connection lost: ${err.rawMessage}`, Code.Unavailable, err.metadata, undefined, err);
  // A fetch that cannot reach the server rejects with a TypeError (the Fetch standard's "network
  // error"), which Connect reports as Unknown. Its text differs by engine ("Failed to fetch",
  // "fetch failed", Safari's "Load failed"), so the type decides, not the words.
  if (err.code === Code.Unknown && err.cause instanceof TypeError) {
    return new ConnectError(`network error: ${err.rawMessage}`, Code.Unavailable, err.metadata, undefined, err);
  }
  return err;
}

/**
 * A client interceptor that retries unary calls:
 * - `ResourceExhausted` carrying a retry hint (`google.rpc.RetryInfo` or `retry-after-ms`: rate
 *   limit, full write buffer): the server refused the call before doing anything, so any call is
 *   retried, after the hint;
 * - `Unavailable` (and, reported as `Unavailable`, a `Canceled` the caller did not ask for, i.e. a
 *   dropped connection, or a `fetch` failing at the network level): the call may or may not have
 *   run, so only calls that are safe to repeat ({@link isIdempotentCall}) are retried, with
 *   exponential backoff.
 *
 * Every attempt runs inside the call's one deadline (`timeoutMs`): a wait that would outlast it
 * is not started, and the last error is returned. Streams are passed through untouched.
 * With `maxAttempts: 1` it only reports network failures as `Unavailable`.
 */
export function createRetryInterceptor(options: RetryOptions = {}): Interceptor {
  const maxAttempts = Math.max(1, Math.floor(options.maxAttempts ?? DEFAULT_RETRY_OPTIONS.maxAttempts));
  return (next) => async (req) => {
    if (req.stream) return next(req);
    const timeout = callTimeoutMs(req);
    const deadline = timeout === undefined ? undefined : Date.now() + timeout;
    for (let attempt = 1; ; attempt++) {
      try {
        return await next(req);
      } catch (raw) {
        const err = normalizeError(ConnectError.from(raw), req.signal);
        const hinted = err.code === Code.ResourceExhausted && retryHintMs(err) !== undefined;
        const retryable = hinted || (err.code === Code.Unavailable && isIdempotentCall(req.method, req.message));
        if (!retryable || attempt >= maxAttempts || req.signal.aborted) throw err;
        const wait = retryDelayMs(err, attempt - 1, options);
        if (deadline !== undefined && Date.now() + wait >= deadline) throw err;
        try {
          await sleep(wait, req.signal);
        } catch {
          throw err;
        }
      }
    }
  };
}
