/**
 * Every procedure the server answers, registered in one place. Tests mount the same routes
 * in-process with `createRouterTransport(createRoutes(deps))`.
 */
import { Code, ConnectError, type ConnectRouter, type ServiceImpl } from "@connectrpc/connect";
import type { DescMethod, DescService } from "@bufbuild/protobuf";
import { AnalyticsService } from "../../sdk/src/gen/analytics/v1/analytics_service_pb.js";
import { MetricsService } from "../../sdk/src/gen/analytics/v1/metrics_service_pb.js";
import { Health } from "../../sdk/src/gen/grpc/health/v1/health_pb.js";
import { ServerReflection as ServerReflectionV1 } from "../../sdk/src/gen/grpc/reflection/v1/reflection_pb.js";
import { ServerReflection as ServerReflectionV1Alpha } from "../../sdk/src/gen/grpc/reflection/v1alpha/reflection_pb.js";
import { createAnalyticsService, type AnalyticsServiceDeps } from "../handlers/analytics-service.js";
import { createLogEventsHandlers } from "../handlers/log-events.js";
import { isBinaryFastPathRequest, logEventsWireMethod } from "../wire/log-events-wire.js";
import { fromUnaryWire, unaryWireMethod } from "../wire/unary-log-wire.js";
import type { UniversalHandler } from "./one-port-server.js";
import { createDeviceMetricsHandlers } from "../handlers/device-metrics.js";
import { createMetricsService } from "../handlers/metrics-service.js";
import { createMetricsQueries, type MetricsQueries } from "../queries/metrics-queries.js";
import { createSqlPool } from "../queries/sql-runner.js";
import { DeviceMetricsIngest } from "../metrics/device-metrics-ingest.js";
import { ERROR_DETAIL_FILES } from "../errors/error-details.js";
import type { HealthService } from "./health.js";
import { createReflectionRoutes } from "./reflection.js";
import type { MessageCaps } from "./message-caps.js";

/** What the routes need. */
export interface RouteDeps extends AnalyticsServiceDeps {
  readonly health: HealthService;
  /** Serve gRPC server reflection (default true). */
  readonly reflection?: boolean;
  /** Replaces AnalyticsService methods (benchmarks compare the real handlers with empty ones). */
  readonly analyticsOverrides?: Partial<ServiceImpl<typeof AnalyticsService>>;
  /** The process-wide device metrics ingest (one SmartDataFilter); a default one when absent. */
  readonly deviceMetrics?: DeviceMetricsIngest;
  /** The server's shutdown signal: metrics streams acknowledge what they took, then end. */
  readonly shutdownSignal?: AbortSignal;
  /** The MetricsService queries; by default over `em`'s connection pool. */
  readonly metricsQueries?: MetricsQueries;
  /** Each procedure's read cap by path (`messageCaps(...)`); none: only the adapter's global cap. */
  readonly messageCaps?: MessageCaps;
}

/** The services every client can discover through reflection. */
export const ADVERTISED_SERVICES = [AnalyticsService, MetricsService, Health, ServerReflectionV1, ServerReflectionV1Alpha];

/** Services whose health is reported by name (besides "", the whole server). */
export const HEALTH_CHECKED_SERVICES = [AnalyticsService.typeName, MetricsService.typeName];

/** Builds the route registration for `connectNodeAdapter` or `createRouterTransport`. */
export function createRoutes(deps: RouteDeps): (router: ConnectRouter) => void {
  const reflection = deps.reflection === false ? undefined : createReflectionRoutes({ services: ADVERTISED_SERVICES, files: ERROR_DETAIL_FILES });
  const ingest = deps.deviceMetrics ?? new DeviceMetricsIngest({ writer: deps.writer, log: deps.log, now: deps.now });
  const deviceMetrics = createDeviceMetricsHandlers({ ...deps, ingest });
  const metrics = createMetricsService({
    metricsQueries: deps.metricsQueries ?? createMetricsQueries(createSqlPool(deps.em)),
    log: deps.log,
    now: deps.now,
  });
  return (connectRouter) => {
    const router = withMessageCaps(connectRouter, deps.messageCaps);
    router.service(AnalyticsService, { ...createAnalyticsService(deps), ...deps.analyticsOverrides });
    // Registered after the service, so they replace its Unimplemented entries (routers key
    // handlers by path; the last wins), each with its own per-message size cap.
    const perMessage = { readMaxBytes: ingest.limits.maxMessageBytes };
    router.rpc(AnalyticsService.method.streamDeviceMetrics, deviceMetrics.streamDeviceMetrics, perMessage);
    router.rpc(AnalyticsService.method.ingestDeviceMetrics, deviceMetrics.ingestDeviceMetrics, perMessage);
    router.service(MetricsService, { ...metrics, getDeviceMetrics: deviceMetrics.getDeviceMetrics });
    deps.health.register(router);
    reflection?.(router);
  };
}

/**
 * The binary fast path of `LogEvents` (`src/wire/log-events-wire.ts`) as its own route
 * registration, for a second adapter with the same interceptors; undefined when `LogEvents` is
 * overridden (benchmarks), so the override answers every encoding.
 */
export function createBinaryLogEventsRoutes(deps: RouteDeps): ((router: ConnectRouter) => void) | undefined {
  if (deps.analyticsOverrides?.logEvents) return undefined;
  const handlers = createLogEventsHandlers({ writer: deps.writer, log: deps.log, now: deps.now ?? Date.now });
  // The unary Log* calls with a Struct field, read through wire types (src/wire/unary-log-wire.ts:
  // a repeated Struct field costs linear time there, quadratic in protobuf-es's generated path).
  const unary = { ...createAnalyticsService(deps), ...deps.analyticsOverrides };
  const { logUserActivity, logError, logDeviceStateChange, logJobOutcome } = AnalyticsService.method;
  return (router) => {
    // The caps of the methods they stand for: the fast path reads the same requests.
    const capped = withMessageCaps(router, deps.messageCaps);
    capped.rpc(logEventsWireMethod, handlers.logEventsWire);
    capped.rpc(unaryWireMethod(logUserActivity), (req, ctx) => unary.logUserActivity!(fromUnaryWire(logUserActivity.input, req), ctx));
    capped.rpc(unaryWireMethod(logError), (req, ctx) => unary.logError!(fromUnaryWire(logError.input, req), ctx));
    capped.rpc(unaryWireMethod(logDeviceStateChange), (req, ctx) => unary.logDeviceStateChange!(fromUnaryWire(logDeviceStateChange.input, req), ctx));
    capped.rpc(unaryWireMethod(logJobOutcome), (req, ctx) => unary.logJobOutcome!(fromUnaryWire(logJobOutcome.input, req), ctx));
  };
}

/**
 * `router` registering every procedure with its read cap from `caps` (the smaller one when a
 * registration names its own), one method at a time: `service()`'s options would give every
 * method of a service the same cap. Without `caps`, `router` itself.
 */
export function withMessageCaps(router: ConnectRouter, caps: MessageCaps | undefined): ConnectRouter {
  if (caps === undefined) return router;
  const optionsOf = (method: DescMethod, options: { readMaxBytes?: number } | undefined) => {
    const cap = caps.get(`/${method.parent.typeName}/${method.name}`);
    if (cap === undefined) return options;
    return { ...options, readMaxBytes: Math.min(cap, options?.readMaxBytes ?? cap) };
  };
  const capped: ConnectRouter = {
    handlers: router.handlers,
    service(service: DescService, impl: Record<string, unknown>, options?: { readMaxBytes?: number }) {
      for (const method of service.methods) {
        const fn = impl[method.localName];
        // As `router.service` does: bound to its object, and Unimplemented when absent.
        const bound = typeof fn === "function" ? fn.bind(impl) : unimplemented(service, method);
        // The method's kind and implementation come from the same service description.
        router.rpc(method as never, bound as never, optionsOf(method, options));
      }
      return capped;
    },
    rpc(method: DescMethod, impl: unknown, options?: { readMaxBytes?: number }) {
      router.rpc(method as never, impl as never, optionsOf(method, options));
      return capped;
    },
  } as ConnectRouter;
  return capped;
}

function unimplemented(service: DescService, method: DescMethod) {
  const message = `${service.typeName}.${method.name} is not implemented`;
  return function unimplemented(): never {
    throw new ConnectError(message, Code.Unimplemented);
  };
}

/** Sends binary `LogEvents` and unary `Log*` calls to `binaryLogEvents`, everything else to `main`. */
export function routeBinaryLogEvents(main: UniversalHandler, binaryLogEvents: UniversalHandler): UniversalHandler {
  return (req, res) =>
    isBinaryFastPathRequest(req.method, req.url, req.headers["content-type"]) ? binaryLogEvents(req, res) : main(req, res);
}
