/**
 * Assembles the service: database, routes, one-port HTTP server and graceful shutdown.
 * `buildServer` does not listen, so tests choose the port (0) and production uses `PORT`.
 */
import type { Interceptor } from "@connectrpc/connect";
import { compressionBrotli, compressionGzip } from "@connectrpc/connect-node";
import { setMaxListeners } from "node:events";
import type { AddressInfo } from "node:net";
import { writerStrategyOf, type Config } from "../config.js";
import { openDatabase, type Database } from "../db/database.js";
import { DeviceMetricsIngest, deviceMetricsOptionsFromConfig } from "../metrics/device-metrics-ingest.js";
import { BatchWriter, type FlushHook } from "../storage/batch-writer.js";
import { createSqlPool, ormConnectionSource } from "../db/sql-runner.js";
import { tableSpecs } from "../storage/table-specs.js";
import { startWriterStatsLog } from "../storage/writer-stats-log.js";
import { createLogger, type Logger } from "../util/logger.js";
import { createHealthService, ServingStatus, type HealthService } from "./health.js";
import { createOnePortServer, type OnePortServerStats } from "./one-port-server.js";
import { createRequestLogInterceptor } from "./request-log-interceptor.js";
import { createRequestLogSink } from "./request-log-shedding.js";
import { meterContextValues, meterRequests } from "./request-metering.js";
import { ADVERTISED_SERVICES, createRouteHandler, HEALTH_CHECKED_SERVICES, type RouteDeps } from "./routes.js";
import { createRollupFlushHook } from "../rollups/rollup-flush-hook.js";
import { startRetentionSchedule } from "../rollups/retention.js";
import { createAuthInterceptor } from "../auth/auth-interceptor.js";
import { createRateLimitInterceptor } from "../auth/rate-limit-interceptor.js";
import { createTokenVerifierFromConfig } from "../auth/token-verifier.js";
import { anonymizeIp } from "../util/anonymize-ip.js";
import { withCors } from "./cors.js";
import { createDeadlineInterceptor } from "./deadline-interceptor.js";
import { createErrorMaskInterceptor } from "./error-mask-interceptor.js";
import { withAuthGate, withAuthVerdict } from "./auth-gate.js";
import { withGrpcJsonRefusal } from "./grpc-json-refusal.js";
import { withEarlyAnswerClose } from "./unread-body.js";
import { messageCaps } from "./message-caps.js";

/** A built server. */
export interface AnalyticsServer {
  readonly config: Config;
  readonly db: Database;
  readonly writer: BatchWriter;
  readonly health: HealthService;
  readonly log: Logger;
  /** Binds `config.port` on `config.host` and starts serving. */
  listen(): Promise<AddressInfo>;
  /** `http://host:port` once listening. */
  url(): string;
  /** The transport's counters (open connections, refusals): for probes and benchmarks. */
  transportStats(): OnePortServerStats;
  /**
   * Graceful shutdown: report NOT_SERVING, stop accepting, signal streaming handlers to finish,
   * let in-flight calls complete within `config.shutdownTimeoutMs`, drain the batch writer, then
   * close the database.
   */
  close(): Promise<void>;
}

/** Seams for tests and benchmarks. */
export interface BuildServerOptions {
  readonly log?: Logger;
  /** How often the writer's counters are logged (`writer stats`), default 60 s. */
  readonly writerStatsIntervalMs?: number;
  /** Replaces AnalyticsService methods (the `unary` benchmark's empty-handler baseline). */
  readonly analyticsOverrides?: RouteDeps["analyticsOverrides"];
  /**
   * Serve binary `LogEvents` calls through the compiled decoder (default: `ANALYTICS_WIRE_FAST_PATH`). False sends them
   * through protobuf-es like every other call: the `log-events` benchmark's same-run baseline.
   */
  readonly binaryLogEventsFastPath?: boolean;
}

/** Builds the server (opens and migrates the database) without listening. */
export async function buildServer(config: Config, options: BuildServerOptions = {}): Promise<AnalyticsServer> {
  const log = options.log ?? createLogger(config.logLevel);
  // Before the database: a bad JWKS file fails start-up without anything to clean up.
  const verifyToken = await createTokenVerifierFromConfig(config, log);
  const db = await openDatabase(config, log);
  // NOT_SERVING until listening, so a load balancer never routes to a half-started instance.
  const health = createHealthService({
    statuses: Object.fromEntries(["", ...HEALTH_CHECKED_SERVICES].map((s) => [s, ServingStatus.NOT_SERVING])),
  });
  // Rollups are upserted in the flush transaction that stores their raw rows.
  const hooks: FlushHook[] = [createRollupFlushHook()];
  const writer = new BatchWriter({
    specs: tableSpecs(db.orm),
    source: ormConnectionSource(db.orm.em),
    log,
    hooks,
    options: {
      batchRows: config.writerBatchRows,
      maxDelayMs: config.writerMaxDelayMs,
      maxBufferedRows: config.writerMaxBufferedRows,
      maxBufferedBytes: config.writerMaxBufferedBytes,
      maxWaitMs: config.writerMaxWaitMs,
      strategy: writerStrategyOf(config),
      binaryCopy: config.wireFastPath,
      errorDedupIntervalMs: config.errorDedupIntervalMs,
      drainTimeoutMs: config.shutdownTimeoutMs,
    },
  });
  const shutdown = new AbortController();
  // Connect links every call's signal to this one: one listener per call in flight is expected.
  setMaxListeners(0, shutdown.signal);
  // One SmartDataFilter for the process; idle devices are evicted on a timer stopped at close.
  const deviceMetrics = new DeviceMetricsIngest({ writer, log, ...deviceMetricsOptionsFromConfig(config) });
  const stopEviction = deviceMetrics.startEvictionTimer();
  const stopWriterStatsLog = startWriterStatsLog(writer, log, options.writerStatsIntervalMs ?? 60_000);
  // Order matters: the request log is outermost so it times and records everything after it.
  const interceptors: Interceptor[] = [];
  // Unauthenticated calls' rows may fill only a share of the writer's buffer (calls the auth gate
  // refuses reach the interceptor too: Connect answers them).
  const requestLog = createRequestLogSink(writer, config.requestLogUnauthenticatedShare);
  if (config.analyticsEnabled) {
    interceptors.push(
      createRequestLogInterceptor({
        offer: requestLog.authenticated,
        offerUnauthenticated: requestLog.unauthenticated,
        skip: config.requestLogSkip,
        trustedProxyHops: config.trustedProxyHops,
        anonymizeIp: (ip) => anonymizeIp(ip, config.ipAnonymization) ?? undefined,
      }),
    );
  }
  // Inside the request log (which so records the masked error, correlation id included): mask
  // internal errors, authenticate and authorise (sets kPrincipal), limit per principal, cap time.
  interceptors.push(
    createErrorMaskInterceptor({ log }),
    createAuthInterceptor({ verify: verifyToken, corsOrigins: config.corsOrigins }),
    createRateLimitInterceptor({ limits: config.rateLimits }),
    createDeadlineInterceptor({ maxMs: config.deadlineMs }),
  );
  const routeDeps: RouteDeps = {
    writer,
    em: db.orm.em,
    log,
    health,
    reflection: config.reflection,
    deviceMetrics,
    shutdownSignal: shutdown.signal,
    analyticsOverrides: options.analyticsOverrides,
    messageCaps: messageCaps({ maxMessageBytes: config.maxMessageBytes, metricsMessageBytes: config.metricsMaxMessageBytes }),
  };
  const adapterOptions = {
    interceptors,
    readMaxBytes: config.maxMessageBytes,
    // Named (connectNodeAdapter's default) so the auth gate's refusals accept the same ones.
    acceptCompression: [compressionGzip, compressionBrotli],
    shutdownSignal: shutdown.signal,
    contextValues: withAuthVerdict(meterContextValues),
  };
  // Every procedure, the binary LogEvents fast path's included, is in the route table (routes.ts).
  const routed = createRouteHandler(routeDeps, adapterOptions, { binaryLogEventsFastPath: options.binaryLogEventsFastPath ?? config.wireFastPath });
  // The gate refuses calls without a valid token before their body is read (auth-gate.ts).
  const gate = withAuthGate(routed, { verify: verifyToken, corsOrigins: config.corsOrigins, services: ADVERTISED_SERVICES, connect: adapterOptions, log });
  // gRPC and gRPC-Web in JSON are refused before the gate and Connect (grpc-json-refusal.ts).
  // An HTTP/1.1 answer sent before its body was all read closes the connection (unread-body.ts).
  const handler = withCors(meterRequests(withEarlyAnswerClose(withGrpcJsonRefusal(gate))), { allowedOrigins: config.corsOrigins });
  const http = createOnePortServer(handler, {
    sniffTimeoutMs: config.sniffTimeoutMs,
    headersTimeoutMs: config.headersTimeoutMs,
    idleTimeoutMs: config.idleTimeoutMs,
    maxConcurrentStreams: config.maxConcurrentStreams,
    maxConnections: config.maxConnections,
    maxConnectionsPerClient: config.maxConnectionsPerClient,
    log,
  });

  let retention: { stop(): Promise<void> } | undefined;
  let closing: Promise<void> | undefined;
  return {
    config,
    db,
    writer,
    health,
    log,
    async listen() {
      const address = await http.listen(config.port, config.host);
      for (const s of ["", ...HEALTH_CHECKED_SERVICES]) health.setStatus(s, ServingStatus.SERVING);
      if (config.retentionEnabled) {
        retention ??= startRetentionSchedule(createSqlPool(db.orm.em), {
          retentionDays: config.retentionDays,
          rollupRetentionDays: config.rollupRetentionDays,
          batchSize: config.retentionBatchSize,
          intervalMs: config.retentionIntervalMinutes * 60_000,
          log,
        });
      }
      log.info("listening", { host: address.address, port: address.port, protocols: ["grpc", "grpc-web", "connect"] });
      return address;
    },
    url() {
      const a = http.address();
      if (!a) throw new Error("server is not listening");
      const host = a.family === "IPv6" ? `[${a.address === "::" ? "::1" : a.address}]` : a.address === "0.0.0.0" ? "127.0.0.1" : a.address;
      return `http://${host}:${a.port}`;
    },
    transportStats() {
      return http.stats();
    },
    close() {
      closing ??= (async () => {
        log.info("shutting down", { inFlight: http.inFlight() });
        health.setAllNotServing();
        shutdown.abort();
        stopEviction();
        stopWriterStatsLog();
        await http.close(config.shutdownTimeoutMs);
        await retention?.stop();
        // Drain after the last call has finished (it may still be writing), before the ORM goes.
        await writer.close();
        await db.close();
        log.info("stopped");
      })();
      return closing;
    },
  };
}
