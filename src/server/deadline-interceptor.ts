/**
 * A cap on how long a unary call may run, whatever deadline the client asked for (or none).
 * Past it the call fails `DeadlineExceeded`; Connect then aborts the handler's `ctx.signal`, so
 * work that honours the signal stops too. Streams are long-lived by design and are not capped;
 * their clients' own deadlines still apply.
 */
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";

/** Options for {@link createDeadlineInterceptor}. */
export interface DeadlineInterceptorOptions {
  /** The cap in ms; 0 turns it off. */
  readonly maxMs: number;
}

/** Creates the interceptor. */
export function createDeadlineInterceptor(options: DeadlineInterceptorOptions): Interceptor {
  return (next) => async (req) => {
    if (req.stream || options.maxMs <= 0) return next(req);
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new ConnectError(`the call took longer than the server's limit of ${options.maxMs} ms`, Code.DeadlineExceeded)),
        options.maxMs,
      );
    });
    try {
      return await Promise.race([next(req), expired]);
    } finally {
      clearTimeout(timer);
    }
  };
}
