/**
 * Every procedure the server answers, registered in one place. Tests mount the same routes
 * in-process with `createRouterTransport(createRoutes(deps))`.
 */
import type { ConnectRouter } from "@connectrpc/connect";
import { AnalyticsService } from "../../sdk/src/gen/analytics/v1/analytics_service_pb.js";
import { MetricsService } from "../../sdk/src/gen/analytics/v1/metrics_service_pb.js";
import { Health } from "../../sdk/src/gen/grpc/health/v1/health_pb.js";
import { ServerReflection as ServerReflectionV1 } from "../../sdk/src/gen/grpc/reflection/v1/reflection_pb.js";
import { ServerReflection as ServerReflectionV1Alpha } from "../../sdk/src/gen/grpc/reflection/v1alpha/reflection_pb.js";
import { createAnalyticsService, type AnalyticsServiceDeps } from "../handlers/analytics-service.js";
import type { HealthService } from "./health.js";
import { createReflectionRoutes } from "./reflection.js";

/** What the routes need. */
export interface RouteDeps extends AnalyticsServiceDeps {
  readonly health: HealthService;
  /** Serve gRPC server reflection (default true). */
  readonly reflection?: boolean;
}

/** The services every client can discover through reflection. */
export const ADVERTISED_SERVICES = [AnalyticsService, MetricsService, Health, ServerReflectionV1, ServerReflectionV1Alpha];

/** Services whose health is reported by name (besides "", the whole server). */
export const HEALTH_CHECKED_SERVICES = [AnalyticsService.typeName, MetricsService.typeName];

/** Builds the route registration for `connectNodeAdapter` or `createRouterTransport`. */
export function createRoutes(deps: RouteDeps): (router: ConnectRouter) => void {
  const reflection = deps.reflection === false ? undefined : createReflectionRoutes({ services: ADVERTISED_SERVICES });
  return (router) => {
    router.service(AnalyticsService, createAnalyticsService(deps));
    // MetricsService lands with the metrics-queries issue; until then every method is Unimplemented.
    router.service(MetricsService, {});
    deps.health.register(router);
    reflection?.(router);
  };
}
