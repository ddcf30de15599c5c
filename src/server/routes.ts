/**
 * The route table: every procedure the server answers, each registered once, here, with the
 * handler that answers it. Tests mount the same routes in-process with
 * `createRouterTransport(createRoutes(deps))`.
 *
 * Three tables, because binary `LogEvents` and unary `Log*` requests have a fast path
 * (`src/wire/`) on the same paths as the generic one, and their JSON requests a decoder of their own:
 * {@link createRoutes} holds every procedure as protobuf-es decodes it,
 * {@link createBinaryLogEventsRoutes} the fast path's five, {@link createJsonBodyRoutes}
 * JSON `LogEvents` and unary `Log*`, and {@link createRouteHandler} serves them from three Connect adapters,
 * picking one per request by its path and content type. `binaryLogEventsFastPath: false` serves
 * binary requests from the first.
 */
import { Code, ConnectError, type ConnectRouter, type ServiceImpl } from "@connectrpc/connect";
import { connectNodeAdapter, type ConnectNodeAdapterOptions } from "@connectrpc/connect-node";
import type { DescMethod, DescService } from "@bufbuild/protobuf";
import { AnalyticsService, EventSchema } from "../../sdk/src/gen/analytics/v1/analytics_service_pb.js";
import { MetricsService } from "../../sdk/src/gen/analytics/v1/metrics_service_pb.js";
import { Health } from "../../sdk/src/gen/grpc/health/v1/health_pb.js";
import { ServerReflection as ServerReflectionV1 } from "../../sdk/src/gen/grpc/reflection/v1/reflection_pb.js";
import { ServerReflection as ServerReflectionV1Alpha } from "../../sdk/src/gen/grpc/reflection/v1alpha/reflection_pb.js";
import { createAnalyticsService, type AnalyticsServiceDeps } from "../handlers/analytics-service.js";
import { createDeviceMetricsHandlers } from "../handlers/device-metrics.js";
import { createLogEventsHandlers } from "../handlers/log-events.js";
import { createMetricsService } from "../handlers/metrics-service.js";
import { DeviceMetricsIngest } from "../metrics/device-metrics-ingest.js";
import { createMetricsQueries, type MetricsQueries } from "../queries/metrics-queries.js";
import { createSqlPool } from "../db/sql-runner.js";
import { isBinaryFastPathRequest, logEventsWireMethod } from "../wire/log-events-wire.js";
import { fromUnaryWire, unaryWireMethod } from "../wire/unary-log-wire.js";
import { createJsonBodyCapture, isJsonRequestTo, jsonBodyMethod, type JsonBodyCapture } from "../wire/json-body-capture.js";
import { UNARY_JSON_METHODS, unaryJsonDecoder } from "../wire/unary-log-json.js";
import { largestValidMessageBytes } from "./message-caps.js";
import { ERROR_DETAIL_FILES } from "../errors/error-details.js";
import type { HealthService } from "./health.js";
import type { MessageCaps } from "./message-caps.js";
import type { UniversalHandler } from "./one-port-server.js";
import { createReflectionService } from "./reflection.js";

/** What the routes need. */
export interface RouteDeps extends AnalyticsServiceDeps {
  readonly health: HealthService;
  /** Serve gRPC server reflection (default true). */
  readonly reflection?: boolean;
  /**
   * Replaces AnalyticsService methods (benchmarks compare the real handlers with empty ones). The
   * device-metrics methods are not replaceable: they always answer from `deviceMetrics`.
   */
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
  const analytics = { ...createAnalyticsService(deps), ...deps.analyticsOverrides };
  const logEvents = createLogEventsHandlers({ writer: deps.writer, log: deps.log, now: deps.now ?? Date.now });
  const ingest = deps.deviceMetrics ?? new DeviceMetricsIngest({ writer: deps.writer, log: deps.log, now: deps.now });
  const deviceMetrics = createDeviceMetricsHandlers({ ...deps, ingest });
  const metrics = createMetricsService({
    metricsQueries: deps.metricsQueries ?? createMetricsQueries(createSqlPool(deps.em)),
    log: deps.log,
    now: deps.now,
  });
  const health = deps.health.impl;
  const reflection = deps.reflection === false ? undefined : createReflectionService({ services: ADVERTISED_SERVICES, files: ERROR_DETAIL_FILES });
  const A = AnalyticsService.method;
  const M = MetricsService.method;
  // A device-metrics message is capped by the ingest's own limit too (the smaller cap applies).
  const perMessage = { readMaxBytes: ingest.limits.maxMessageBytes };
  return (connectRouter) => {
    const router = withMessageCaps(connectRouter, deps.messageCaps);
    const rpc = checkedRpc(router);
    // analytics.v1.AnalyticsService
    rpc(A.logUserActivity, analytics.logUserActivity);
    rpc(A.logError, analytics.logError);
    rpc(A.logDeviceStateChange, analytics.logDeviceStateChange);
    rpc(A.logJobOutcome, analytics.logJobOutcome);
    rpc(A.logEvents, deps.analyticsOverrides?.logEvents ?? logEvents.logEvents);
    rpc(A.resolveError, analytics.resolveError);
    rpc(A.streamDeviceMetrics, deviceMetrics.streamDeviceMetrics, perMessage);
    rpc(A.ingestDeviceMetrics, deviceMetrics.ingestDeviceMetrics, perMessage);
    // analytics.v1.MetricsService
    rpc(M.getApiPerformance, metrics.getApiPerformance);
    rpc(M.getJobOutcomes, metrics.getJobOutcomes);
    rpc(M.getErrorTrends, metrics.getErrorTrends);
    rpc(M.getDeviceStateHistory, metrics.getDeviceStateHistory);
    rpc(M.getDeviceMetrics, metrics.getDeviceMetrics);
    // grpc.health.v1.Health
    rpc(Health.method.check, health.check);
    rpc(Health.method.list, health.list);
    rpc(Health.method.watch, health.watch);
    // grpc.reflection.v1 and v1alpha
    if (reflection) {
      rpc(ServerReflectionV1.method.serverReflectionInfo, reflection.v1.serverReflectionInfo);
      rpc(ServerReflectionV1Alpha.method.serverReflectionInfo, reflection.v1alpha.serverReflectionInfo);
    }
    rpc.assertComplete(reflection ? ADVERTISED_SERVICES : [AnalyticsService, MetricsService, Health]);
  };
}

/**
 * The binary fast path of `LogEvents` (`src/wire/log-events-wire.ts`) and of the unary `Log*`
 * calls with a Struct field (`src/wire/unary-log-wire.ts`: a repeated Struct field costs linear
 * time there, quadratic in protobuf-es's generated path), as routes of their own for a second
 * adapter with the same interceptors; undefined when `LogEvents` is overridden (benchmarks), so
 * the override answers every encoding. Each takes the read cap of the method it stands for.
 */
export function createBinaryLogEventsRoutes(deps: RouteDeps): ((router: ConnectRouter) => void) | undefined {
  if (deps.analyticsOverrides?.logEvents) return undefined;
  const logEvents = createLogEventsHandlers({ writer: deps.writer, log: deps.log, now: deps.now ?? Date.now });
  const unary = { ...createAnalyticsService(deps), ...deps.analyticsOverrides };
  const { logUserActivity, logError, logDeviceStateChange, logJobOutcome } = AnalyticsService.method;
  return (router) => {
    const capped = withMessageCaps(router, deps.messageCaps);
    capped.rpc(logEventsWireMethod, logEvents.logEventsWire);
    capped.rpc(unaryWireMethod(logUserActivity), (req, ctx) => unary.logUserActivity!(fromUnaryWire(logUserActivity.input, req), ctx));
    capped.rpc(unaryWireMethod(logError), (req, ctx) => unary.logError!(fromUnaryWire(logError.input, req), ctx));
    capped.rpc(unaryWireMethod(logDeviceStateChange), (req, ctx) => unary.logDeviceStateChange!(fromUnaryWire(logDeviceStateChange.input, req), ctx));
    capped.rpc(unaryWireMethod(logJobOutcome), (req, ctx) => unary.logJobOutcome!(fromUnaryWire(logJobOutcome.input, req), ctx));
  };
}

/**
 * The calls whose JSON bodies are decoded here rather than by Connect (`src/wire/json-body-capture.ts`):
 * `LogEvents` (split into events and parsed one by one, between turns of the event loop:
 * `log-events-json.ts`) and the unary `Log*` calls (their `Struct` payloads kept as `JSON.parse`
 * gives them: `unary-log-json.ts`), as routes of an adapter of their own, which must run
 * `capture.interceptor` first and decode JSON with `capture.jsonOptions`; undefined when
 * `LogEvents` is overridden (benchmarks). `paths` are the procedures it serves.
 */
export function createJsonBodyRoutes(deps: RouteDeps): { routes: (router: ConnectRouter) => void; capture: JsonBodyCapture; paths: ReadonlySet<string> } | undefined {
  if (deps.analyticsOverrides?.logEvents) return undefined;
  const capture = createJsonBodyCapture(new Map(UNARY_JSON_METHODS.map((m) => [m.name, unaryJsonDecoder(m.input)])));
  // A UTF-16 code unit is at least one byte: a longer text cannot be a valid event.
  const json = { capture, maxEventChars: largestValidMessageBytes(EventSchema) };
  const logEvents = createLogEventsHandlers({ writer: deps.writer, log: deps.log, now: deps.now ?? Date.now, json });
  const unary = { ...createAnalyticsService(deps), ...deps.analyticsOverrides };
  const { logUserActivity, logError, logDeviceStateChange, logJobOutcome } = AnalyticsService.method;
  // The capture's interceptor replaced each unary call's message with the decoded request.
  const decoded = <T>(impl: ((req: T, ctx: never) => unknown) | undefined) => impl as never;
  const methods = [AnalyticsService.method.logEvents, ...UNARY_JSON_METHODS];
  return {
    routes: (router) => {
      const capped = withMessageCaps(router, deps.messageCaps);
      capped.rpc(jsonBodyMethod(AnalyticsService.method.logEvents), logEvents.logEventsJson);
      capped.rpc(jsonBodyMethod(logUserActivity), decoded(unary.logUserActivity));
      capped.rpc(jsonBodyMethod(logError), decoded(unary.logError));
      capped.rpc(jsonBodyMethod(logDeviceStateChange), decoded(unary.logDeviceStateChange));
      capped.rpc(jsonBodyMethod(logJobOutcome), decoded(unary.logJobOutcome));
    },
    capture,
    paths: new Set(methods.map((m) => `/${m.parent.typeName}/${m.name}`)),
  };
}

/** Whether binary `LogEvents` and unary `Log*` calls take their fast path (default true). */
export interface RouteHandlerOptions {
  readonly binaryLogEventsFastPath?: boolean;
}

/**
 * The HTTP handler serving the route tables with `adapter`'s options (interceptors, caps,
 * compression, shutdown signal): binary `LogEvents` and unary `Log*` calls go to the fast path's
 * adapter, JSON `LogEvents` and unary `Log*` calls to theirs, everything else (and everything, with `LogEvents`
 * overridden; binary calls, with the fast path off) to the generic one. Same RPCs, same paths,
 * same interceptors: only how the request is decoded differs.
 */
export function createRouteHandler(
  deps: RouteDeps,
  adapter: Omit<ConnectNodeAdapterOptions, "routes">,
  options: RouteHandlerOptions = {},
): UniversalHandler {
  const main = connectNodeAdapter({ ...adapter, routes: createRoutes(deps) });
  const binaryRoutes = options.binaryLogEventsFastPath === false ? undefined : createBinaryLogEventsRoutes(deps);
  const binary = binaryRoutes && connectNodeAdapter({ ...adapter, routes: binaryRoutes });
  const jsonRoutes = createJsonBodyRoutes(deps);
  const json =
    jsonRoutes &&
    connectNodeAdapter({
      ...adapter,
      routes: jsonRoutes.routes,
      // First: nothing may refuse the call between its decoding and this (json-body-capture.ts).
      interceptors: [jsonRoutes.capture.interceptor, ...(adapter.interceptors ?? [])],
      jsonOptions: { ...adapter.jsonOptions, ...jsonRoutes.capture.jsonOptions },
    });
  return (req, res) => {
    const contentType = req.headers["content-type"];
    if (binary && isBinaryFastPathRequest(req.method, req.url, contentType)) return binary(req, res);
    if (json && isJsonRequestTo(jsonRoutes.paths, req.method, req.url, contentType)) return json(req, res);
    return main(req, res);
  };
}

/**
 * `router.rpc` that refuses a second registration of a path (a table where the last one wins
 * hides a handler) and, at the end, a service with a method left out (it would answer 404 rather
 * than a handler).
 */
function checkedRpc(router: ConnectRouter) {
  const registered = new Set<string>();
  const rpc = <M extends DescMethod>(method: M, impl: unknown, options?: { readMaxBytes?: number }): void => {
    const path = `/${method.parent.typeName}/${method.name}`;
    if (registered.has(path)) throw new Error(`route table: ${path} is registered twice`);
    if (typeof impl !== "function") throw new Error(`route table: ${path} has no handler`);
    registered.add(path);
    router.rpc(method as never, impl as never, options);
  };
  return Object.assign(rpc, {
    assertComplete(services: readonly DescService[]): void {
      for (const service of services) {
        for (const method of service.methods) {
          const path = `/${service.typeName}/${method.name}`;
          if (!registered.has(path)) throw new Error(`route table: ${path} is not registered`);
        }
      }
    },
  });
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
