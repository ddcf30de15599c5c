/**
 * Errors never leak internals: anything a handler throws that is not a deliberate `ConnectError`
 * (a TypeError, a driver error with SQL in its message, a `ConnectError.from(err)` that kept the
 * raw message as `Unknown`) reaches the client as `Internal` with a generic message and a
 * correlation id; the original, with its stack, goes to the server log under the same id.
 */
import { randomUUID } from "node:crypto";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { errorFields, type Logger } from "../util/logger.js";

/** Options for {@link createErrorMaskInterceptor}. */
export interface ErrorMaskInterceptorOptions {
  readonly log: Logger;
}

/** True when the error was made on purpose for the client. */
function deliberate(err: unknown): err is ConnectError {
  return err instanceof ConnectError && err.code !== Code.Unknown;
}

/** Creates the interceptor; put it first (outermost) so it sees every failure. */
export function createErrorMaskInterceptor(options: ErrorMaskInterceptorOptions): Interceptor {
  const mask = (err: unknown, procedure: string): ConnectError => {
    if (deliberate(err)) return err;
    // The client's own abort or deadline is not an internal failure.
    if (err instanceof Error && err.name === "AbortError") return ConnectError.from(err);
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
