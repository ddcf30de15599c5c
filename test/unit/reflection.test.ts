import { create, createFileRegistry, fromBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema, type FileDescriptorProto } from "@bufbuild/protobuf/wkt";
import { createClient, createRouterTransport } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { AnalyticsService } from "../../sdk/src/gen/analytics/v1/analytics_service_pb.js";
import { MetricsService } from "../../sdk/src/gen/analytics/v1/metrics_service_pb.js";
import { Health } from "../../sdk/src/gen/grpc/health/v1/health_pb.js";
import {
  ExtensionRequestSchema,
  ServerReflection,
  type ServerReflectionRequest,
  type ServerReflectionResponse,
} from "../../sdk/src/gen/grpc/reflection/v1/reflection_pb.js";
import { ServerReflection as ServerReflectionV1Alpha } from "../../sdk/src/gen/grpc/reflection/v1alpha/reflection_pb.js";
import { ERROR_DETAIL_FILES } from "../../src/errors/error-details.js";
import { createReflectionRoutes } from "../../src/server/reflection.js";

const transport = createRouterTransport(
  createReflectionRoutes({ services: [AnalyticsService, MetricsService, Health] }),
);

type MessageRequest = ServerReflectionRequest["messageRequest"];

/** Sends each request on one stream and returns the answers in order. */
async function ask(...messageRequests: MessageRequest[]): Promise<ServerReflectionResponse[]> {
  const client = createClient(ServerReflection, transport);
  async function* requests() {
    for (const messageRequest of messageRequests) yield { host: "localhost:50051", messageRequest };
  }
  const responses: ServerReflectionResponse[] = [];
  for await (const res of client.serverReflectionInfo(requests())) responses.push(res);
  return responses;
}

async function askOne(messageRequest: MessageRequest): Promise<ServerReflectionResponse> {
  const [res] = await ask(messageRequest);
  if (res === undefined) throw new Error("no response");
  return res;
}

/** The files of a file_descriptor_response, decoded. */
async function files(messageRequest: MessageRequest): Promise<FileDescriptorProto[]> {
  const res = await askOne(messageRequest);
  if (res.messageResponse.case !== "fileDescriptorResponse") {
    throw new Error(`expected files, got ${JSON.stringify(res.messageResponse.value)}`);
  }
  const { fileDescriptorProto } = res.messageResponse.value;
  return fileDescriptorProto.map((bytes) => fromBinary(FileDescriptorProtoSchema, bytes));
}

describe("list_services", () => {
  it("lists the advertised services and both reflection services", async () => {
    const res = await askOne({ case: "listServices", value: "*" });
    if (res.messageResponse.case !== "listServicesResponse") throw new Error("no service list");
    expect(res.messageResponse.value.service.map((s) => s.name).sort()).toEqual([
      "analytics.v1.AnalyticsService",
      "analytics.v1.MetricsService",
      "grpc.health.v1.Health",
      "grpc.reflection.v1.ServerReflection",
      "grpc.reflection.v1alpha.ServerReflection",
    ]);
  });

  it("lists a service once when it is also passed explicitly", async () => {
    const routes = createReflectionRoutes({ services: [Health, ServerReflection, Health] });
    const client = createClient(ServerReflection, createRouterTransport(routes));
    async function* one() {
      yield { messageRequest: { case: "listServices" as const, value: "" } };
    }
    for await (const res of client.serverReflectionInfo(one())) {
      if (res.messageResponse.case !== "listServicesResponse") throw new Error("no service list");
      expect(res.messageResponse.value.service.map((s) => s.name)).toEqual([
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
      ]);
    }
  });

  it("echoes the host and the original request", async () => {
    const res = await askOne({ case: "listServices", value: "" });
    expect(res.validHost).toBe("localhost:50051");
    expect(res.originalRequest?.messageRequest).toEqual({ case: "listServices", value: "" });
  });

  it("is also served as grpc.reflection.v1alpha", async () => {
    const client = createClient(ServerReflectionV1Alpha, transport);
    async function* one() {
      yield { messageRequest: { case: "listServices" as const, value: "" } };
    }
    for await (const res of client.serverReflectionInfo(one())) {
      expect(res.messageResponse.case).toBe("listServicesResponse");
    }
  });
});

describe("file_by_filename", () => {
  it("returns the file first, then its transitive imports", async () => {
    const got = await files({ case: "fileByFilename", value: "analytics/v1/analytics_service.proto" });
    expect(got[0]?.name).toBe("analytics/v1/analytics_service.proto");
    expect(got.map((f) => f.name).sort()).toEqual([
      "analytics/v1/analytics_service.proto",
      "analytics/v1/common.proto",
      "google/protobuf/struct.proto",
      "google/protobuf/timestamp.proto",
    ]);
  });

  it("sends self-consistent descriptors with imports and json_name filled in", async () => {
    const got = await files({ case: "fileByFilename", value: "analytics/v1/metrics_service.proto" });
    expect(got[0]?.dependency).toEqual([
      "analytics/v1/common.proto",
      "google/protobuf/struct.proto",
      "google/protobuf/timestamp.proto",
    ]);
    // createFileRegistry links every type reference, so it throws on a missing import or type.
    const [main] = got;
    if (main === undefined) throw new Error("no files");
    const registry = createFileRegistry(main, (file) => got.find((f) => f.name === file));
    const message = registry.getMessage("analytics.v1.GetApiPerformanceRequest");
    expect(message?.fields.map((f) => f.name)).toEqual(["hours", "endpoint"]);
    const fields = got[0]?.messageType.flatMap((m) => m.field) ?? [];
    expect(fields.length).toBeGreaterThan(0);
    expect(fields.every((f) => f.jsonName !== "")).toBe(true);
    expect(fields.find((f) => f.name === "avg_response_ms")?.jsonName).toBe("avgResponseMs");
  });

  it("serves well-known type files", async () => {
    const got = await files({ case: "fileByFilename", value: "google/protobuf/struct.proto" });
    expect(got.map((f) => f.name)).toEqual(["google/protobuf/struct.proto"]);
  });
});

describe("file_containing_symbol", () => {
  it.each([
    ["service", "analytics.v1.MetricsService", "analytics/v1/metrics_service.proto"],
    ["method", "analytics.v1.AnalyticsService.LogUserActivity", "analytics/v1/analytics_service.proto"],
    ["message", "analytics.v1.LogEventsRequest", "analytics/v1/analytics_service.proto"],
    ["nested message", "analytics.v1.MetricSample.MetricsEntry", "analytics/v1/analytics_service.proto"],
    ["nested enum", "grpc.health.v1.HealthCheckResponse.ServingStatus", "grpc/health/v1/health.proto"],
    ["enum", "analytics.v1.ActivityType", "analytics/v1/common.proto"],
    ["enum value", "analytics.v1.ACTIVITY_TYPE_CLICK", "analytics/v1/common.proto"],
    ["field", "analytics.v1.LogUserActivityRequest.extra_data", "analytics/v1/analytics_service.proto"],
    ["oneof", "analytics.v1.Event.kind", "analytics/v1/analytics_service.proto"],
    ["well-known type", "google.protobuf.Struct", "google/protobuf/struct.proto"],
    ["leading dot", ".analytics.v1.Severity", "analytics/v1/common.proto"],
  ])("finds a %s", async (_kind, symbol, file) => {
    const got = await files({ case: "fileContainingSymbol", value: symbol });
    expect(got[0]?.name).toBe(file);
  });

  it("answers NOT_FOUND for an unknown symbol and keeps the stream open", async () => {
    const [miss, hit] = await ask(
      { case: "fileContainingSymbol", value: "analytics.v1.Nope" },
      { case: "fileContainingSymbol", value: "analytics.v1.MetricsService" },
    );
    expect(miss?.messageResponse).toEqual({
      case: "errorResponse",
      value: expect.objectContaining({
        errorCode: 5,
        errorMessage: "symbol not found: analytics.v1.Nope",
      }),
    });
    expect(hit?.messageResponse.case).toBe("fileDescriptorResponse");
  });
});

describe("extensions", () => {
  it("lists no extension numbers for a known message", async () => {
    const res = await askOne({ case: "allExtensionNumbersOfType", value: "analytics.v1.Event" });
    expect(res.messageResponse).toEqual({
      case: "allExtensionNumbersResponse",
      value: expect.objectContaining({ baseTypeName: "analytics.v1.Event", extensionNumber: [] }),
    });
  });

  it.each(["analytics.v1.Nope", "analytics.v1.MetricsService"])(
    "answers NOT_FOUND for extension numbers of %s, which is no message",
    async (type) => {
      const res = await askOne({ case: "allExtensionNumbersOfType", value: type });
      expect(res.messageResponse.value).toMatchObject({
        errorCode: 5,
        errorMessage: `message type not found: ${type}`,
      });
    },
  );

  it("answers NOT_FOUND for file_containing_extension", async () => {
    const res = await askOne({
      case: "fileContainingExtension",
      value: create(ExtensionRequestSchema, {
        containingType: "analytics.v1.Event",
        extensionNumber: 100,
      }),
    });
    expect(res.messageResponse.value).toMatchObject({
      errorCode: 5,
      errorMessage: "extension not found: analytics.v1.Event 100",
    });
  });
});

describe("bad requests", () => {
  it("answers an empty request with UNIMPLEMENTED", async () => {
    const res = await askOne({ case: undefined });
    expect(res.messageResponse.value).toMatchObject({ errorCode: 12 });
  });

  it("answers NOT_FOUND for an unknown file name", async () => {
    const res = await askOne({ case: "fileByFilename", value: "nope.proto" });
    expect(res.messageResponse.value).toMatchObject({
      errorCode: 5,
      errorMessage: "file not found: nope.proto",
    });
  });
});

describe("files served beside the services' (error details)", () => {
  const withDetails = createRouterTransport(createReflectionRoutes({ services: [AnalyticsService], files: ERROR_DETAIL_FILES }));

  it("resolves the detail types a client meets in errors, without advertising a service for them", async () => {
    const client = createClient(ServerReflection, withDetails);
    async function* requests() {
      yield { host: "", messageRequest: { case: "fileContainingSymbol" as const, value: "google.rpc.BadRequest" } };
      yield { host: "", messageRequest: { case: "fileContainingSymbol" as const, value: "analytics.v1.RefusedBatch" } };
      yield { host: "", messageRequest: { case: "listServices" as const, value: "*" } };
    }
    const answers: ServerReflectionResponse[] = [];
    for await (const res of client.serverReflectionInfo(requests())) answers.push(res);
    const names = (res: ServerReflectionResponse | undefined) =>
      res?.messageResponse.case === "fileDescriptorResponse" ? res.messageResponse.value.fileDescriptorProto.map((b) => fromBinary(FileDescriptorProtoSchema, b).name) : [];
    expect(names(answers[0])).toEqual(["google/rpc/error_details.proto", "google/protobuf/duration.proto"]);
    expect(names(answers[1])).toEqual(["analytics/v1/error_details.proto"]);
    const listed = answers[2]?.messageResponse;
    expect(listed?.case === "listServicesResponse" ? listed.value.service.map((s) => s.name).sort() : []).toEqual([
      "analytics.v1.AnalyticsService",
      "grpc.reflection.v1.ServerReflection",
      "grpc.reflection.v1alpha.ServerReflection",
    ]);
  });
});
