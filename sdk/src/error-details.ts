/**
 * What the server's errors carry for a program to act on, read from their details, never from
 * their message (whose wording is for people and may change):
 * - `google.rpc.BadRequest` on `InvalidArgument`: one violation per invalid field;
 * - `google.rpc.RetryInfo` on a `ResourceExhausted` that a retry may pass (read by `retryHintMs`);
 * - `analytics.v1.RefusedBatch` when a device-metrics stream refuses a batch.
 *
 * Platform-neutral: details arrive the same way over gRPC, gRPC-Web and Connect.
 *
 * @module
 */
import { durationMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { RefusedBatchSchema } from "./gen/analytics/v1/error_details_pb.js";
import { BadRequestSchema, RetryInfoSchema, type BadRequest_FieldViolation } from "./gen/google/rpc/error_details_pb.js";

/**
 * The invalid fields an error names, from its `google.rpc.BadRequest` details, in order: each
 * with its `field` path as in the .proto file (`"device_id"`, `"columns.values"`) and a
 * `description`. Empty for an error without them (another code, or not a `ConnectError`).
 *
 * ```ts
 * catch (err) {
 *   for (const v of fieldViolationsOf(err)) form.markInvalid(v.field, v.description);
 * }
 * ```
 */
export function fieldViolationsOf(err: unknown): BadRequest_FieldViolation[] {
  if (!(err instanceof ConnectError)) return [];
  return err.findDetails(BadRequestSchema).flatMap((b) => b.fieldViolations);
}

/**
 * The sequence of the batch a `StreamDeviceMetrics` error refuses (its `analytics.v1.RefusedBatch`
 * detail), or `undefined` when it names none.
 */
export function refusedBatchSequence(err: unknown): bigint | undefined {
  if (!(err instanceof ConnectError)) return undefined;
  return err.findDetails(RefusedBatchSchema)[0]?.sequence;
}

/**
 * The wait the server asks for before a retry, in ms, from the error's `google.rpc.RetryInfo`
 * detail; `undefined` when it has none, or a negative one.
 */
export function retryInfoMs(err: unknown): number | undefined {
  if (!(err instanceof ConnectError)) return undefined;
  const delay = err.findDetails(RetryInfoSchema)[0]?.retryDelay;
  if (delay === undefined) return undefined;
  const ms = durationMs(delay);
  return Number.isFinite(ms) && ms >= 0 ? ms : undefined;
}

/**
 * An `InvalidArgument` the SDK raises itself, before calling, shaped as the server's are: the
 * message for people, a `google.rpc.BadRequest` detail naming the field for programs.
 */
export function invalidFieldError(message: string, field: string, description: string): ConnectError {
  return new ConnectError(message, Code.InvalidArgument, undefined, [{ desc: BadRequestSchema, value: { fieldViolations: [{ field, description }] } }]);
}
