/**
 * The end of a credential's life as an `AbortSignal`, for calls that outlive the moment their
 * token was checked (a device's metrics stream can stay open for days; its token is checked once,
 * when the call starts). The signal aborts at the token's `exp` with the error the call should end
 * with, so the stream can stop reading, acknowledge what it already took and end `Unauthenticated`.
 */
import { Code, ConnectError } from "@connectrpc/connect";

/** The timer functions used; injectable so tests need not wait for a real expiry. */
export interface ExpiryTimers {
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** Options of {@link credentialExpiry}. */
export interface CredentialExpiryOptions {
  /** The server clock (epoch ms). */
  readonly now?: () => number;
  readonly timers?: ExpiryTimers;
}

/** What {@link credentialExpiry} returns. */
export interface CredentialExpiry {
  /** Aborts at expiry, with {@link tokenExpiredError} as its reason; undefined for a credential without expiry. */
  readonly signal: AbortSignal | undefined;
  /** Stops the timer (call it when the call ends, so a long-lived token holds no timer). */
  dispose(): void;
}

/**
 * The longest delay Node's timers take: a longer one (a token valid for 30 days) overflows and
 * fires at once, so longer waits are chained.
 */
const MAX_TIMER_MS = 2 ** 31 - 1;

const NODE_TIMERS: ExpiryTimers = {
  setTimeout: (callback, ms) => {
    const handle = setTimeout(callback, ms);
    // Only a call in progress needs the timer; it must not keep a stopping process alive.
    handle.unref();
    return handle;
  },
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

/** The error a call ends with when its token expires: the client must get a new one. */
export function tokenExpiredError(): ConnectError {
  return new ConnectError(
    "token expired: acknowledged batches are stored; reconnect with a fresh token and resend the others",
    Code.Unauthenticated,
  );
}

/**
 * A signal that aborts at `expiresAtMs` (epoch ms, on `now`'s clock); already aborted when that
 * time has passed. `undefined` expiry (no auth, or a principal built without one) never aborts.
 */
export function credentialExpiry(expiresAtMs: number | undefined, options: CredentialExpiryOptions = {}): CredentialExpiry {
  if (expiresAtMs === undefined) return { signal: undefined, dispose: () => {} };
  const now = options.now ?? Date.now;
  const timers = options.timers ?? NODE_TIMERS;
  const controller = new AbortController();
  let handle: unknown;
  let disposed = false;
  const arm = (): void => {
    if (disposed) return;
    const left = expiresAtMs - now();
    if (left <= 0) {
      handle = undefined;
      controller.abort(tokenExpiredError());
      return;
    }
    handle = timers.setTimeout(arm, Math.min(left, MAX_TIMER_MS));
  };
  arm();
  return {
    signal: controller.signal,
    dispose: () => {
      disposed = true;
      if (handle !== undefined) timers.clearTimeout(handle);
      handle = undefined;
    },
  };
}
