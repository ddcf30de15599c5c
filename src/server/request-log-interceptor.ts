/**
 * Records one `api_request_logs` row per RPC. Unary calls are logged when their response is
 * written, streams once when they end, with message counts in each direction. The row is handed
 * to the batch writer's fire-and-forget path: the interceptor never waits on the database, and a
 * failure to log never fails the call.
 */
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { kPrincipal } from "../auth/principal.js";
import type { Row } from "../storage/batch-writer.js";
import { clientIpOf, DEFAULT_REQUEST_LOG_SKIP, httpStatusOf, isSkipped, protocolOf, storableText } from "./request-log-fields.js";
import { kRequestMeter } from "./request-metering.js";

/** Options for {@link createRequestLogInterceptor}. */
export interface RequestLogOptions {
  /** Receives each row; must not block (the batch writer's `offer`). */
  readonly offer: (row: Row) => void;
  /** Procedure prefixes not logged (default {@link DEFAULT_REQUEST_LOG_SKIP}). */
  readonly skip?: readonly string[];
  /** Proxies in front of the server whose `X-Forwarded-For` entries are trusted (default 0). */
  readonly trustedProxyHops?: number;
  /** Applied to client addresses before they are stored (anonymisation). */
  readonly anonymizeIp?: (ip: string) => string | undefined;
  /** Clock for response times (ms, fractional). */
  readonly now?: () => number;
}

/** Creates the request-log interceptor; put it first so it times everything after it. */
export function createRequestLogInterceptor(options: RequestLogOptions): Interceptor {
  const skip = options.skip ?? DEFAULT_REQUEST_LOG_SKIP;
  const hops = options.trustedProxyHops ?? 0;
  const now = options.now ?? (() => performance.now());
  return (next) => async (req) => {
    const procedure = `/${req.method.parent.typeName}/${req.method.name}`;
    if (isSkipped(procedure, skip)) return next(req);
    const startedAt = new Date();
    const t0 = now();
    const meter = req.contextValues.get(kRequestMeter);
    let requestMessages = req.stream ? 0 : 1;
    let responseMessages = 0;
    let code: Code | 0 = 0;
    let errorMessage: string | null = null;
    let callDone = false;

    const emit = () => {
      try {
        const ip = clientIpOf(meter?.remoteAddress, meter?.forwardedFor, hops);
        options.offer({
          occurred_at: startedAt,
          endpoint: procedure,
          protocol: protocolOf(req.header.get("content-type")),
          http_method: req.requestMethod,
          status_code: code,
          http_status: httpStatusOf(code),
          response_time_ms: now() - t0,
          user_id: storableText(req.contextValues.get(kPrincipal)?.subject),
          client_ip: ip === undefined ? null : (options.anonymizeIp ? options.anonymizeIp(ip) : ip) ?? null,
          user_agent: storableText(req.header.get("user-agent")),
          request_bytes: meter?.requestBytes ?? 0,
          response_bytes: meter?.responseBytes ?? 0,
          request_messages: requestMessages,
          response_messages: responseMessages,
          error_message: storableText(errorMessage),
        });
      } catch {
        // Logging is best effort by design: the call's outcome never depends on it.
      }
    };
    // Sizes are final only once the HTTP response is written, which is after this interceptor.
    const finish = () => {
      callDone = true;
      if (!meter || meter.closed) emit();
      else meter.onClose = emit;
    };
    const fail = (err: unknown) => {
      // Only ConnectErrors carry client-safe text; anything else may hold internals (SQL, paths).
      if (err instanceof ConnectError) {
        code = err.code;
        errorMessage = err.rawMessage;
      } else {
        code = Code.Internal;
        errorMessage = "internal error";
      }
    };

    if (req.stream) {
      const input = req.message;
      req = {
        ...req,
        message: (async function* () {
          for await (const m of input) {
            requestMessages++;
            yield m;
          }
        })(),
      };
    }
    let res;
    try {
      res = await next(req);
    } catch (err) {
      fail(err);
      finish();
      throw err;
    }
    if (!res.stream) {
      responseMessages = 1;
      finish();
      return res;
    }
    const output = res.message;
    return {
      ...res,
      message: (async function* () {
        let completed = false;
        try {
          for await (const m of output) {
            responseMessages++;
            yield m;
          }
          completed = true;
        } catch (err) {
          fail(err);
          completed = true;
          throw err;
        } finally {
          if (!completed && code === 0) {
            code = Code.Canceled;
            errorMessage = "the client cancelled the stream";
          }
          if (!callDone) finish();
        }
      })(),
    };
  };
}
