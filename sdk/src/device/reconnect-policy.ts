/**
 * When the metrics streamer reconnects: which stream errors end it for good, the backoff between
 * attempts, and the pause that waits out a backoff (cut short by `close()`). Apart from the
 * streaming loop so the policy can be read, and changed, in one place.
 *
 * @module
 */
import { Code, type ConnectError } from "@connectrpc/connect";
import { backoffMs, type RetryOptions } from "../retry.js";

const FINAL_CODES: ReadonlySet<Code> = new Set([Code.PermissionDenied, Code.Unimplemented]);

/**
 * True when retrying cannot help (`PermissionDenied`, `Unimplemented`): the streamer stops. Every
 * other error, transient or not, is retried with backoff: a device keeps trying.
 */
export function isFinalStreamError(err: ConnectError): boolean {
  return FINAL_CODES.has(err.code);
}

/** The wait before reconnection attempt `retry` (0 first): 500 ms doubling up to 30 s by default, with jitter. */
export function reconnectDelayMs(retry: number, reconnect: Pick<RetryOptions, "initialBackoffMs" | "maxBackoffMs"> | undefined): number {
  return backoffMs(retry, { initialBackoffMs: 500, maxBackoffMs: 30_000, ...reconnect });
}

/** The wait between two connection attempts, which {@link BackoffPause.cut} ends early. */
export class BackoffPause {
  #timer: ReturnType<typeof setTimeout> | undefined;
  #wake: (() => void) | undefined;

  /** Resolves after `ms`, or when cut. */
  wait(ms: number): Promise<void> {
    return new Promise((resolve) => {
      this.#wake = resolve;
      this.#timer = setTimeout(resolve, ms);
    });
  }

  /** Ends the current wait now (nothing when there is none). */
  cut(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#wake?.();
  }
}
