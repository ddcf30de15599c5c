/**
 * Errors never leak internals: anything a handler throws that is not a deliberate `ConnectError`
 * (a TypeError, a driver error with SQL in its message, a `ConnectError.from(err)` that kept the
 * raw message as `Unknown`) reaches the client as `Internal` with a generic message and a
 * correlation id; the original, with its stack, goes to the server log under the same id.
 *
 * Every error it passes on has a message fit for a gRPC trailer ({@link wellFormedMessage}):
 * well-formed UTF-16 (Connect percent-encodes `grpc-message` with `encodeURIComponent`, which
 * throws on a lone surrogate and so left the call unanswered, its stream open) and at most
 * {@link MAX_ERROR_MESSAGE_CHARS} characters (a message echoing the caller's text must not grow
 * with it). Code, metadata, details and cause are kept: the details of a deliberate error are the
 * ones a client acts on (`google.rpc.BadRequest`, `google.rpc.RetryInfo`,
 * `analytics.v1.RefusedBatch`, built in `src/errors/error-details.ts` from what the client sent);
 * a masked error carries none.
 */
import { randomUUID } from "node:crypto";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { wellFormedText, type OutgoingDetail } from "../errors/error-details.js";
import { errorFields, type Logger } from "../util/logger.js";

/** Options for {@link createErrorMaskInterceptor}. */
export interface ErrorMaskInterceptorOptions {
  readonly log: Logger;
}

/** The longest message an error reaches the client with; longer ones are cut, with an ellipsis. */
export const MAX_ERROR_MESSAGE_CHARS = 1000;

/** `message` well-formed (lone surrogates as U+FFFD) and cut to {@link MAX_ERROR_MESSAGE_CHARS}. */
export function wellFormedMessage(message: string): string {
  return wellFormedText(message, MAX_ERROR_MESSAGE_CHARS);
}

/** `err` with a {@link wellFormedMessage}: itself when its message already is one. */
function withWellFormedMessage(err: ConnectError): ConnectError {
  const message = wellFormedMessage(err.rawMessage);
  if (message === err.rawMessage) return err;
  // Details are passed on as they are (Connect writes received ones, type and bytes, too).
  const fixed = new ConnectError(message, err.code, err.metadata, err.details as OutgoingDetail[], err.cause);
  fixed.stack = err.stack;
  return fixed;
}

/** True when the error was made on purpose for the client. */
function deliberate(err: unknown): err is ConnectError {
  return err instanceof ConnectError && err.code !== Code.Unknown;
}

/** Creates the interceptor; put it first (outermost) so it sees every failure. */
export function createErrorMaskInterceptor(options: ErrorMaskInterceptorOptions): Interceptor {
  const mask = (err: unknown, procedure: string): ConnectError => {
    if (deliberate(err)) return withWellFormedMessage(err);
    // The client's own abort or deadline is not an internal failure.
    if (err instanceof Error && err.name === "AbortError") return withWellFormedMessage(ConnectError.from(err));
    const correlationId = randomUUID();
    options.log.error("unexpected handler failure", { procedure, correlationId, ...errorFields(err) });
    return new ConnectError(`internal error (correlation id ${correlationId})`, Code.Internal, undefined, undefined, err);
  };
  async function* guard<T>(messages: AsyncIterable<T>, procedure: string): AsyncIterable<T> {
    try {
      yield* messages;
    } catch (err) {
      throw mask(err, procedure);
    }
  }
  return (next) => async (req) => {
    const procedure = `${req.service.typeName}/${req.method.name}`;
    try {
      const res = await next(req);
      return res.stream ? { ...res, message: guard(res.message, procedure) } : res;
    } catch (err) {
      throw mask(err, procedure);
    }
  };
}
