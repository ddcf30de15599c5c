/**
 * What a client must act on travels in an error's details, as messages, not only in its text:
 * - `google.rpc.BadRequest`: one field violation per invalid field (field path as in the .proto
 *   file, and what is wrong), on every `InvalidArgument` about fields;
 * - `google.rpc.RetryInfo`: how long to wait, on a `ResourceExhausted` that a retry may pass
 *   (rate limit, full write buffer), beside the older `retry-after-ms` header;
 * - `analytics.v1.RefusedBatch`: the sequence of the batch a device-metrics stream refused.
 *
 * Connect sends them in `grpc-status-details-bin` (gRPC, gRPC-Web) or the error's `details`
 * (Connect JSON, with a readable `debug` copy); buf curl, grpcurl and `ConnectError.findDetails`
 * read them. They are built only from what the client sent and the server's public limits, never
 * from internal state (the error mask gives a failure it masks no details). Their text is bounded
 * like an error message is: a detail echoing the caller's text must not grow with it (gRPC
 * implementations refuse trailers past 8-16 KiB).
 *
 * @module
 */
import type { DescFile } from "@bufbuild/protobuf";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { file_analytics_v1_error_details, RefusedBatchSchema } from "../../sdk/src/gen/analytics/v1/error_details_pb.js";
import { BadRequestSchema, file_google_rpc_error_details, RetryInfoSchema } from "../../sdk/src/gen/google/rpc/error_details_pb.js";

/** A detail as `new ConnectError(...)` takes it: a message type and the message's fields. */
export type OutgoingDetail = NonNullable<ConstructorParameters<typeof ConnectError>[3]>[number];

/** One invalid field: its proto field path and what is wrong, in words safe to show a client. */
export interface FieldViolation {
  readonly field: string;
  readonly description: string;
}

/** Response header (Connect) or trailer (gRPC, gRPC-Web) with the suggested wait, for older clients. */
export const RETRY_AFTER_HEADER = "retry-after-ms";

/** The longest field path a `BadRequest` detail carries; a longer one is cut, with an ellipsis. */
export const MAX_VIOLATION_FIELD_CHARS = 200;
/** The longest description a `BadRequest` detail carries; a longer one is cut, with an ellipsis. */
export const MAX_VIOLATION_DESCRIPTION_CHARS = 400;
/**
 * Characters of field paths and descriptions one `BadRequest` carries in all: violations past it
 * are left out (the first one never is). Validation names at most a few dozen fields, each in a
 * line; only a description echoing a client's text (a repeated metric name) comes near it.
 */
export const MAX_VIOLATIONS_CHARS = 2048;

/** The files that describe the details above, for server reflection (grpcurl resolves details through it). */
export const ERROR_DETAIL_FILES: readonly DescFile[] = [file_google_rpc_error_details, file_analytics_v1_error_details];

/**
 * `text` as well-formed UTF-16 (lone surrogates as U+FFFD) and at most `maxChars` long: a longer
 * text is cut, never between the halves of a pair, and ends with an ellipsis.
 */
export function wellFormedText(text: string, maxChars: number): string {
  if (text.length <= maxChars) return text.toWellFormed();
  let end = maxChars - 1;
  // Not between the halves of a pair.
  if (/[\ud800-\udbff]/.test(text.charAt(end - 1)) && /[\udc00-\udfff]/.test(text.charAt(end))) end--;
  return `${text.slice(0, end)}…`.toWellFormed();
}

/** A `google.rpc.BadRequest` with one field violation per entry of `violations`, bounded (see the limits above). */
export function badRequest(violations: readonly FieldViolation[]): OutgoingDetail {
  const fieldViolations: { field: string; description: string }[] = [];
  let chars = 0;
  for (const v of violations) {
    const field = wellFormedText(v.field, MAX_VIOLATION_FIELD_CHARS);
    const description = wellFormedText(v.description, MAX_VIOLATION_DESCRIPTION_CHARS);
    chars += field.length + description.length;
    if (chars > MAX_VIOLATIONS_CHARS && fieldViolations.length > 0) break;
    fieldViolations.push({ field, description });
  }
  return { desc: BadRequestSchema, value: { fieldViolations } };
}

/** A `google.rpc.RetryInfo` asking the client to wait `retryAfterMs` (a whole number of ms, at least 0). */
export function retryInfo(retryAfterMs: number): OutgoingDetail {
  return { desc: RetryInfoSchema, value: { retryDelay: durationFromMs(Math.max(0, Math.ceil(retryAfterMs))) } };
}

/** An `analytics.v1.RefusedBatch` naming the device-metrics batch `sequence`. */
export function refusedBatch(sequence: bigint): OutgoingDetail {
  return { desc: RefusedBatchSchema, value: { sequence } };
}

/**
 * `ResourceExhausted` that the same call may pass after `retryAfterMs`: the wait as a
 * `google.rpc.RetryInfo` detail and in the `retry-after-ms` header (which clients from before the
 * detail read). `message` is the human-readable text; nothing must be parsed from it.
 */
export function resourceExhausted(message: string, retryAfterMs: number): ConnectError {
  const ms = Math.max(0, Math.ceil(retryAfterMs));
  return new ConnectError(message, Code.ResourceExhausted, { [RETRY_AFTER_HEADER]: String(ms) }, [retryInfo(ms)]);
}
