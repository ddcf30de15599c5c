/**
 * Per-method read caps in-process: `withMessageCaps` gives each method registered through it
 * (whole services, single methods) its own cap, keeps a registration's smaller one, and leaves
 * unimplemented methods Unimplemented; the binary `LogEvents` fast path's routes take the cap of
 * `LogEvents`. A request one byte over its cap is refused with ResourceExhausted naming the
 * cap before anything is parsed; one of exactly the cap is read and handled.
 */
import { create } from "@bufbuild/protobuf";
import { Code, createClient, createRouterTransport, type ConnectRouter } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { AnalyticsService, LogEventsRequestSchema } from "../../sdk/src/gen/analytics/v1/analytics_service_pb.js";
import { WriteOutcome } from "../../sdk/src/gen/analytics/v1/common_pb.js";
import { Health, HealthCheckRequestSchema } from "../../sdk/src/gen/grpc/health/v1/health_pb.js";
import { createHealthService } from "../../src/server/health.js";
import { createBinaryLogEventsRoutes, withMessageCaps, type RouteDeps } from "../../src/server/routes.js";
import { silentLogger } from "../../src/util/logger.js";
import { rpcError } from "../support/rpc-error.js";
import { sizedMessage } from "../support/sized-message.js";

const CHECK = "/grpc.health.v1.Health/Check";
const LOG_EVENTS = `/${AnalyticsService.typeName}/${AnalyticsService.method.logEvents.name}`;

describe("withMessageCaps", () => {
  const health = createHealthService();

  function healthClient(caps: Map<string, number>, register: (router: ConnectRouter) => void) {
    return createClient(Health, createRouterTransport((router) => register(withMessageCaps(router, caps))));
  }

  it("caps each method of a service registered whole: one byte over is ResourceExhausted naming the cap", async () => {
    const client = healthClient(new Map([[CHECK, 1024]]), health.register);
    const over = await rpcError(client.check(sizedMessage(HealthCheckRequestSchema, create(HealthCheckRequestSchema, { service: "x" }), 1025)));
    expect(over.code).toBe(Code.ResourceExhausted);
    expect(over.rawMessage).toMatch(/readMaxBytes 1024$/);
    // Exactly the cap is read, parsed and answered by the handler (the name is unknown).
    const at = await rpcError(client.check(sizedMessage(HealthCheckRequestSchema, create(HealthCheckRequestSchema, { service: "x" }), 1024)));
    expect(at.code).toBe(Code.NotFound);
    // Another method of the service, without an entry, is not capped.
    await client.list({});
  });

  it("keeps a registration's own smaller cap, and a method left out stays Unimplemented", async () => {
    const client = healthClient(new Map([[CHECK, 4096]]), (router) => {
      router.rpc(Health.method.check, health.impl.check.bind(health.impl), { readMaxBytes: 1024 });
      router.service(Health, { list: health.impl.list.bind(health.impl) });
    });
    // `service` registered Check again, unimplemented: the last registration wins, as without caps.
    const err = await rpcError(client.check({ service: "" }));
    expect(err.code).toBe(Code.Unimplemented);
    expect(err.rawMessage).toBe("grpc.health.v1.Health.Check is not implemented");
    const own = healthClient(new Map([[CHECK, 4096]]), (router) => router.rpc(Health.method.check, health.impl.check.bind(health.impl), { readMaxBytes: 1024 }));
    const over = await rpcError(own.check(sizedMessage(HealthCheckRequestSchema, create(HealthCheckRequestSchema), 1025)));
    expect(over.message).toMatch(/readMaxBytes 1024$/);
  });
});

describe("the binary LogEvents fast path", () => {
  // Neither call reaches the writer: one is refused while read, the other holds no valid event.
  const unreachable = () => {
    throw new Error("the writer is not reached in these tests");
  };
  const deps = {
    writer: { write: unreachable, hasRoom: unreachable, bufferFullError: unreachable },
    log: silentLogger,
    now: Date.now,
    messageCaps: new Map([[LOG_EVENTS, 2048]]),
  } as unknown as RouteDeps;
  const client = createClient(AnalyticsService, createRouterTransport(createBinaryLogEventsRoutes(deps)!));
  const batch = create(LogEventsRequestSchema, { events: [{}] });

  it("takes the cap of LogEvents", async () => {
    const over = await rpcError(client.logEvents(sizedMessage(LogEventsRequestSchema, batch, 2049)));
    expect(over.code).toBe(Code.ResourceExhausted);
    expect(over.rawMessage).toMatch(/readMaxBytes 2048$/);
    const at = await client.logEvents(sizedMessage(LogEventsRequestSchema, batch, 2048));
    expect(at.results.map((r) => r.outcome)).toEqual([WriteOutcome.REJECTED]);
  });
});
