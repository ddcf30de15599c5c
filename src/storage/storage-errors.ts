/**
 * The one place where storage failures become client-facing errors. Clients learn whether to
 * retry; they never see SQL, table names or stack traces, which go to the server log with a
 * correlation id that the client also gets.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { randomUUID } from "node:crypto";
import { errorFields, type Logger } from "../util/logger.js";

/** PostgreSQL / node-postgres conditions meaning "the database is away; retry later". */
const UNAVAILABLE_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "EPIPE",
  "ENOTFOUND",
  "57P01", // admin_shutdown
  "57P02", // crash_shutdown
  "57P03", // cannot_connect_now
  "53300", // too_many_connections
  "08000",
  "08001",
  "08003",
  "08004",
  "08006", // connection exceptions
  "40001", // serialization_failure
  "40P01", // deadlock_detected
]);

const UNAVAILABLE_MESSAGES = [
  /Connection terminated/i,
  /Client has encountered a connection error/i,
  /Knex: Timeout acquiring a connection/i,
];

/**
 * Whether a line of `message` says "connection", then "closed", "ended" or "terminated" (what
 * `/connection.*(closed|ended|terminated)/i` matched). Not that expression: it backtracked from
 * every "connection" to the end of the line, quadratic in a message that quotes caller data (an
 * ORM error may quote a statement's parameters; docs/HARDENING.md has the figure).
 */
function saysConnectionEnded(message: string): boolean {
  for (const line of message.split(LINE_BREAK)) {
    const at = CONNECTION.exec(line);
    if (at !== null && ENDED.test(line.slice(at.index + at[0].length))) return true;
  }
  return false;
}
/** What `.` does not match. */
const LINE_BREAK = /[\n\r\u2028\u2029]/;
const CONNECTION = /connection/i;
const ENDED = /closed|ended|terminated/i;

/** True when retrying the same statement later may succeed. */
export function isTransientStorageError(err: unknown): boolean {
  const e = err as { code?: unknown; message?: unknown; cause?: unknown } | undefined;
  if (!e || typeof e !== "object") return false;
  if (typeof e.code === "string" && UNAVAILABLE_CODES.has(e.code)) return true;
  if (typeof e.message === "string" && (UNAVAILABLE_MESSAGES.some((re) => re.test(e.message as string)) || saysConnectionEnded(e.message))) return true;
  return e.cause !== undefined && e.cause !== err ? isTransientStorageError(e.cause) : false;
}

/** Maps a storage failure to `Unavailable` (retry later) or `Internal` (with a correlation id). */
export function storageErrorToConnect(err: unknown, log: Logger, operation: string): ConnectError {
  if (err instanceof ConnectError) return err;
  if (isTransientStorageError(err)) {
    log.warn("storage unavailable", { operation, ...errorFields(err) });
    return new ConnectError("storage is temporarily unavailable; retry later", Code.Unavailable, undefined, undefined, err);
  }
  const correlationId = randomUUID();
  log.error("storage failure", { operation, correlationId, ...errorFields(err) });
  return new ConnectError(`internal error (correlation id ${correlationId})`, Code.Internal, undefined, undefined, err);
}
