import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import type { MessageInitShape } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { createClient, createRouterTransport, type ConnectRouter } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { GrpcReflection } from "grpc-js-reflection-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AnalyticsService } from "../../sdk/src/gen/analytics/v1/analytics_service_pb.js";
import { MetricsService } from "../../sdk/src/gen/analytics/v1/metrics_service_pb.js";
import { Health } from "../../sdk/src/gen/grpc/health/v1/health_pb.js";
import {
  ServerReflection,
  type ServerReflectionRequestSchema,
} from "../../sdk/src/gen/grpc/reflection/v1/reflection_pb.js";
import { ServerReflection as ServerReflectionV1Alpha } from "../../sdk/src/gen/grpc/reflection/v1alpha/reflection_pb.js";
import { createHealthService } from "../../src/server/health.js";
import { createReflectionRoutes } from "../../src/server/reflection.js";
import { bufCurl } from "../support/buf-curl.js";

const expectedServices = [
  "analytics.v1.AnalyticsService",
  "analytics.v1.MetricsService",
  "grpc.health.v1.Health",
  "grpc.reflection.v1.ServerReflection",
  "grpc.reflection.v1alpha.ServerReflection",
];

const health = createHealthService();
const reflection = createReflectionRoutes({ services: [AnalyticsService, MetricsService, Health] });

function routes(router: ConnectRouter): void {
  // Empty implementations answer UNIMPLEMENTED; reflection only needs the descriptors.
  router.service(AnalyticsService, {});
  router.service(MetricsService, {});
  health.register(router);
  reflection(router);
}

let server: http2.Http2Server;
let address: string;
const sessions = new Set<http2.ServerHttp2Session>();

beforeAll(async () => {
  server = http2.createServer(connectNodeAdapter({ routes }));
  // grpc-js-reflection-client offers no way to close its channel; track sessions so afterAll can.
  server.on("session", (session) => {
    sessions.add(session);
    session.on("close", () => sessions.delete(session));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  address = `127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  for (const session of sessions) session.destroy();
  await closed;
});

async function bufCurlOut(...args: string[]): Promise<string> {
  return (await bufCurl(...args)).stdout;
}

function lines(out: string): string[] {
  return out.split("\n").filter((l) => l !== "");
}

describe("buf curl through server reflection", () => {
  for (const protocol of ["grpc-v1", "grpc-v1alpha"]) {
    it(`lists services with --reflect-protocol ${protocol}`, async () => {
      const out = await bufCurlOut("--list-services", "--reflect-protocol", protocol, `http://${address}`);
      expect(lines(out).sort()).toEqual(expectedServices);
    });
  }

  it("lists every method of every advertised service", async () => {
    const out = await bufCurlOut("--list-methods", `http://${address}`);
    const services = [AnalyticsService, MetricsService, Health, ServerReflection, ServerReflectionV1Alpha];
    const expected = services.flatMap((s) => s.methods.map((m) => `${s.typeName}/${m.name}`));
    expect(lines(out).sort()).toEqual(expected.sort());
    expect(lines(out)).toContain("analytics.v1.AnalyticsService/StreamDeviceMetrics");
  });

  it("calls Health/Check with a schema learned through reflection", async () => {
    const out = await bufCurlOut("-d", "{}", `http://${address}/grpc.health.v1.Health/Check`);
    expect(JSON.parse(out)).toEqual({ status: "SERVING" });
  });

  it("encodes a request with google.protobuf.Struct and Timestamp fields", async () => {
    // The empty implementation answers UNIMPLEMENTED, which proves the request was encoded, i.e.
    // buf curl resolved the message and its well-known-type dependencies through reflection.
    const body = JSON.stringify({
      activityType: "ACTIVITY_TYPE_CLICK",
      extraData: { nested: { a: [1, "two"] } },
      occurredAt: "2024-05-01T12:00:00Z",
    });
    const url = `http://${address}/analytics.v1.AnalyticsService/LogUserActivity`;
    const err = await bufCurlOut("-d", body, url).then(
      () => undefined,
      (e: { stderr?: string }) => e,
    );
    expect(err?.stderr).toContain('"code": "unimplemented"');
  });
});

describe("grpc-js-reflection-client", () => {
  for (const version of ["v1", "v1alpha"]) {
    it(`lists services (${version})`, async () => {
      const client = new GrpcReflection(address, grpc.credentials.createInsecure(), {}, version);
      expect((await client.listServices()).sort()).toEqual(expectedServices);
    });
  }

  it("resolves analytics.v1.AnalyticsService with its google.protobuf dependencies", async () => {
    const client = new GrpcReflection(address, grpc.credentials.createInsecure(), {}, "v1");
    const descriptor = await client.getDescriptorBySymbol("analytics.v1.AnalyticsService");
    const root = descriptor.getProtobufJsRoot();
    root.resolveAll();

    const service = root.lookupService("analytics.v1.AnalyticsService");
    expect(Object.keys(service.methods)).toEqual(
      expect.arrayContaining(["LogUserActivity", "LogEvents", "StreamDeviceMetrics", "ResolveError"]),
    );
    const request = root.lookupType("analytics.v1.LogUserActivityRequest");
    expect(request.fields["extraData"]?.resolvedType?.fullName).toBe(".google.protobuf.Struct");
    expect(request.fields["occurredAt"]?.resolvedType?.fullName).toBe(".google.protobuf.Timestamp");
    expect(request.fields["activityType"]?.resolvedType?.fullName).toBe(".analytics.v1.ActivityType");
    const kind = root.lookupType("google.protobuf.Value").oneofs["kind"];
    expect(kind?.fieldsArray.map((f) => f.name)).toContain("structValue");
  });

  it("lists methods of a service", async () => {
    const client = new GrpcReflection(address, grpc.credentials.createInsecure(), {}, "v1");
    const methods = await client.listMethods("analytics.v1.MetricsService");
    expect(methods.map((m) => m.name).sort()).toEqual([
      "GetApiPerformance",
      "GetDeviceMetrics",
      "GetDeviceStateHistory",
      "GetErrorTrends",
      "GetJobOutcomes",
    ]);
  });

  it("builds a working grpc-js client from the reflected descriptor", async () => {
    const reflect = new GrpcReflection(address, grpc.credentials.createInsecure(), {}, "v1alpha");
    const pkg = (await reflect.getDescriptorBySymbol("grpc.health.v1.Health")).getPackageObject({
      keepCase: true,
      enums: String,
    });
    const v1 = ((pkg["grpc"] as grpc.GrpcObject)["health"] as grpc.GrpcObject)["v1"] as grpc.GrpcObject;
    const HealthClient = v1["Health"] as grpc.ServiceClientConstructor;
    const client = new HealthClient(address, grpc.credentials.createInsecure());
    try {
      const res = await new Promise<unknown>((resolve, reject) =>
        client["Check"]?.({ service: "" }, (err: Error | null, value: unknown) =>
          err ? reject(err) : resolve(value),
        ),
      );
      expect(res).toEqual({ status: "SERVING" });
    } finally {
      client.close();
    }
  });
});

describe("reflection stream (in-process)", () => {
  it("answers an unknown symbol with NOT_FOUND and keeps answering", async () => {
    const client = createClient(ServerReflection, createRouterTransport(routes));
    async function* requests(): AsyncIterable<MessageInitShape<typeof ServerReflectionRequestSchema>> {
      yield { host: "h", messageRequest: { case: "fileContainingSymbol", value: "no.such.Symbol" } };
      yield { host: "h", messageRequest: { case: "listServices", value: "" } };
      const symbol = "grpc.health.v1.Health.Check";
      yield { host: "h", messageRequest: { case: "fileContainingSymbol", value: symbol } };
    }
    const responses = [];
    for await (const res of client.serverReflectionInfo(requests())) responses.push(res);

    expect(responses.map((r) => r.messageResponse.case)).toEqual([
      "errorResponse",
      "listServicesResponse",
      "fileDescriptorResponse",
    ]);
    expect(responses[0]?.messageResponse.value).toMatchObject({
      errorCode: 5,
      errorMessage: "symbol not found: no.such.Symbol",
    });
    expect(responses[0]?.originalRequest?.messageRequest).toEqual({
      case: "fileContainingSymbol",
      value: "no.such.Symbol",
    });
    expect(responses[0]?.validHost).toBe("h");
  });
});
