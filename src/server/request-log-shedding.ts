/**
 * Request-log rows of unauthenticated calls are shed before they can crowd out durable writes.
 *
 * Anyone who can reach the port can make an unauthenticated call, and each one is a request-log
 * row offered to the batch writer, whose buffer is shared with every durable `Log*` write. Without
 * a limit, a flood of such calls while the database is slow fills the buffer and durable writes
 * fail `ResourceExhausted`. So these rows may fill only a share of the buffer
 * (`ANALYTICS_REQUEST_LOG_UNAUTHENTICATED_SHARE` of its rows and of its bytes); beyond it they are
 * dropped and counted (`shedOffers` in the writer's stats, logged by `writer-stats-log.ts`).
 * Authenticated calls' rows are offered as before.
 *
 * The same rule serves calls refused before Connect (the pre-authentication gate): they offer
 * their row through {@link createRefusedCallRecorder}.
 */
import { Code } from "@connectrpc/connect";
import type { Principal } from "../auth/principal.js";
import { OfferShare, type BatchWriter, type Row } from "../storage/batch-writer.js";
import {
  clientIpOf,
  DEFAULT_REQUEST_LOG_SKIP,
  httpStatusOf,
  isSkipped,
  protocolOf,
  rememberPerAddress,
  storableText,
} from "./request-log-fields.js";

/** Default share of the writer's buffer (rows and bytes) unauthenticated calls' rows may fill. */
export const DEFAULT_UNAUTHENTICATED_SHARE = 0.1;

/**
 * Whether a call counts as unauthenticated for the request log (pure): no principal was set in its
 * context by the time it ended (the auth interceptor never accepted a credential, or the procedure
 * is open), or it failed `Unauthenticated`.
 */
export function isUnauthenticatedCall(principal: Principal | undefined, code: Code | 0): boolean {
  return principal === undefined || code === Code.Unauthenticated;
}

/** Where request-log rows go. Both never block, and return false when the row was dropped. */
export interface RequestLogSink {
  /** A row of an authenticated call: offered as any fire-and-forget row. */
  readonly authenticated: (row: Row) => boolean;
  /** A row of an unauthenticated call: offered within the unauthenticated share. */
  readonly unauthenticated: (row: Row) => boolean;
}

/**
 * The sink that offers rows to `writer`'s `api_request_logs`, unauthenticated ones within `share`
 * of its buffer (one share for the whole process, whoever offers).
 *
 * @throws RangeError when `share` is not in [0, 1].
 */
export function createRequestLogSink(writer: Pick<BatchWriter, "offer">, share: number = DEFAULT_UNAUTHENTICATED_SHARE): RequestLogSink {
  const unauthenticated = new OfferShare(share);
  return {
    authenticated: (row) => writer.offer("api_request_logs", row),
    unauthenticated: (row) => writer.offer("api_request_logs", row, unauthenticated),
  };
}

/** What is known of a call refused before Connect ran (e.g. no valid credential). */
export interface RefusedCall {
  /** `/package.Service/Method`, as the request log names procedures. */
  readonly procedure: string;
  /** Why it was refused, e.g. `Code.Unauthenticated`. */
  readonly code: Code;
  /** The client-safe text it was answered with. */
  readonly message: string;
  /** When the request arrived (epoch ms). */
  readonly startedAtMs: number;
  /** How long answering it took (ms). */
  readonly responseTimeMs: number;
  /** The HTTP request's method, content type and user agent, as received. */
  readonly httpMethod: string;
  readonly contentType: string | undefined;
  readonly userAgent: string | undefined;
  /** The socket peer, and `X-Forwarded-For` as received (read only when proxies are trusted). */
  readonly remoteAddress: string | undefined;
  readonly forwardedFor: string | undefined;
  /** Bytes of the request read and of the answer written (0 when unknown). */
  readonly requestBytes?: number;
  readonly responseBytes?: number;
}

/** Options of {@link createRefusedCallRecorder}: those of the request-log interceptor it stands beside. */
export interface RefusedCallRecorderOptions {
  readonly sink: RequestLogSink;
  /** Procedure prefixes not logged (`ANALYTICS_REQUEST_LOG_SKIP`; default {@link DEFAULT_REQUEST_LOG_SKIP}). */
  readonly skip?: readonly string[];
  /** Proxies in front of the server whose `X-Forwarded-For` entries are trusted (default 0). */
  readonly trustedProxyHops?: number;
  /** Applied to client addresses before they are stored (anonymisation). */
  readonly anonymizeIp?: (ip: string) => string | undefined;
}

/** Addresses remembered with their stored form, as the interceptor does. */
const MAX_REMEMBERED_ADDRESSES = 1024;

/**
 * A function that records a call refused before Connect as the request-log interceptor would
 * have, under the unauthenticated share. Returns false when the row was dropped or the procedure
 * is skipped. Never throws: logging is best effort. Create it only when request logging is on
 * (`ANALYTICS_ENABLED`).
 */
export function createRefusedCallRecorder(options: RefusedCallRecorderOptions): (call: RefusedCall) => boolean {
  const hops = options.trustedProxyHops ?? 0;
  const skip = options.skip ?? DEFAULT_REQUEST_LOG_SKIP;
  const anonymize = options.anonymizeIp;
  const storedIp = anonymize ? rememberPerAddress((ip) => anonymize(ip) ?? null, MAX_REMEMBERED_ADDRESSES) : (ip: string) => ip;
  return (call) => {
    try {
      if (isSkipped(call.procedure, skip)) return false;
      const ip = clientIpOf(call.remoteAddress, hops > 0 ? call.forwardedFor : undefined, hops);
      return options.sink.unauthenticated({
        occurred_at: new Date(call.startedAtMs),
        endpoint: call.procedure,
        protocol: protocolOf(call.contentType ?? null),
        http_method: call.httpMethod,
        status_code: call.code,
        http_status: httpStatusOf(call.code),
        response_time_ms: call.responseTimeMs,
        user_id: null,
        client_ip: ip === undefined ? null : storedIp(ip),
        user_agent: storableText(call.userAgent),
        request_bytes: call.requestBytes ?? 0,
        response_bytes: call.responseBytes ?? 0,
        request_messages: 0,
        response_messages: 0,
        error_message: storableText(call.message),
      });
    } catch {
      return false;
    }
  };
}
