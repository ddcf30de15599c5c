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
 * Calls the pre-authentication gate refuses (`auth-gate.ts`) are answered by Connect through the
 * same interceptors, so their rows come here too.
 */
import { Code } from "@connectrpc/connect";
import type { Principal } from "../auth/principal.js";
import { OfferShare, type BatchWriter, type Row } from "../storage/batch-writer.js";

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

