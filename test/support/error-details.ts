/**
 * Error details as clients outside TypeScript see them: the `details` entry of a Connect JSON
 * error, and the `google.rpc.Status` of a gRPC `grpc-status-details-bin` trailer read by grpc-js.
 */
import { create, toBinary } from "@bufbuild/protobuf";
import { base64Encode } from "@bufbuild/protobuf/wire";
import { ConnectError } from "@connectrpc/connect";
import { findTrailerError } from "@connectrpc/connect/protocol-grpc";
import { BadRequestSchema } from "../../sdk/src/gen/google/rpc/error_details_pb.js";

/**
 * The `details` entry of a Connect JSON error body carrying a `google.rpc.BadRequest` with
 * `violations`, as the server writes it: type, the message in base64 (unpadded), and `debug`, the
 * same message as JSON.
 */
export function badRequestJson(...violations: { field: string; description: string }[]) {
  const value = base64Encode(toBinary(BadRequestSchema, create(BadRequestSchema, { fieldViolations: violations })), "std_raw");
  return { type: "google.rpc.BadRequest", value, debug: { fieldViolations: violations } };
}

/**
 * The error a grpc-js client received, as a `ConnectError` whose details come from its
 * `grpc-status-details-bin` metadata (grpc-js hands `-bin` values over decoded).
 */
export function grpcJsErrorDetails(err: { code: number; metadata: { get(key: string): unknown[] } }): ConnectError {
  const [bin] = err.metadata.get("grpc-status-details-bin") as Buffer[];
  const trailer = new Headers({ "grpc-status": String(err.code) });
  if (bin !== undefined) trailer.set("grpc-status-details-bin", bin.toString("base64"));
  return findTrailerError(trailer) ?? new ConnectError("no error", err.code);
}
