/**
 * Assembles the service: database, routes, one-port HTTP server and graceful shutdown.
 * `buildServer` does not listen, so tests choose the port (0) and production uses `PORT`.
 */
import { connectNodeAdapter } from "@connectrpc/connect-node";
import type { AddressInfo } from "node:net";
import type { Config } from "../config.js";
import { openDatabase, type Database } from "../db/database.js";
import { createDirectEventSink } from "../storage/event-store.js";
import { createLogger, type Logger } from "../util/logger.js";
import { createHealthService, ServingStatus, type HealthService } from "./health.js";
import { createOnePortServer } from "./one-port-server.js";
import { createRoutes, HEALTH_CHECKED_SERVICES } from "./routes.js";

/** A built server. */
export interface AnalyticsServer {
  readonly config: Config;
  readonly db: Database;
  readonly health: HealthService;
  readonly log: Logger;
  /** Binds `config.port` on `config.host` and starts serving. */
  listen(): Promise<AddressInfo>;
  /** `http://host:port` once listening. */
  url(): string;
  /**
   * Graceful shutdown: report NOT_SERVING, stop accepting, signal streaming handlers to finish,
   * let in-flight calls complete within `config.shutdownTimeoutMs`, then close the database.
   */
  close(): Promise<void>;
}

/** Builds the server (opens and migrates the database) without listening. */
export async function buildServer(config: Config, options: { log?: Logger } = {}): Promise<AnalyticsServer> {
  const log = options.log ?? createLogger(config.logLevel);
  const db = await openDatabase(config, log);
  // NOT_SERVING until listening, so a load balancer never routes to a half-started instance.
  const health = createHealthService({
    statuses: Object.fromEntries(["", ...HEALTH_CHECKED_SERVICES].map((s) => [s, ServingStatus.NOT_SERVING])),
  });
  const shutdown = new AbortController();
  const routes = createRoutes({
    events: createDirectEventSink(db.orm.em),
    log,
    health,
  });
  const handler = connectNodeAdapter({ routes, shutdownSignal: shutdown.signal });
  const http = createOnePortServer(handler, { sniffTimeoutMs: config.sniffTimeoutMs, log });

  let closing: Promise<void> | undefined;
  return {
    config,
    db,
    health,
    log,
    async listen() {
      const address = await http.listen(config.port, config.host);
      for (const s of ["", ...HEALTH_CHECKED_SERVICES]) health.setStatus(s, ServingStatus.SERVING);
      log.info("listening", { host: address.address, port: address.port, protocols: ["grpc", "grpc-web", "connect"] });
      return address;
    },
    url() {
      const a = http.address();
      if (!a) throw new Error("server is not listening");
      const host = a.family === "IPv6" ? `[${a.address === "::" ? "::1" : a.address}]` : a.address === "0.0.0.0" ? "127.0.0.1" : a.address;
      return `http://${host}:${a.port}`;
    },
    close() {
      closing ??= (async () => {
        log.info("shutting down", { inFlight: http.inFlight() });
        health.setAllNotServing();
        shutdown.abort();
        await http.close(config.shutdownTimeoutMs);
        await db.close();
        log.info("stopped");
      })();
      return closing;
    },
  };
}
