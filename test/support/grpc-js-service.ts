/**
 * The `AnalyticsService` client constructor for `@grpc/grpc-js`, built from the repo's .proto files
 * with `@grpc/proto-loader` the way an outside gRPC user would (snake_case fields, enums as
 * strings, 64-bit integers as numbers, defaults filled in).
 */
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { fileURLToPath } from "node:url";

/** Loads `analytics/v1/analytics_service.proto` and returns its service client constructor. */
export async function loadAnalyticsServiceClient(): Promise<grpc.ServiceClientConstructor> {
  const definition = await protoLoader.load("analytics/v1/analytics_service.proto", {
    includeDirs: [fileURLToPath(new URL("../../proto", import.meta.url))],
    keepCase: true,
    longs: Number,
    enums: String,
    defaults: true,
  });
  const pkg = grpc.loadPackageDefinition(definition) as unknown as {
    analytics: { v1: { AnalyticsService: grpc.ServiceClientConstructor } };
  };
  return pkg.analytics.v1.AnalyticsService;
}
