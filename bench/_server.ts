/**
 * A real server for benchmarks: fresh PostgreSQL database, port 0, rate limits off (they would
 * measure the limiter), and a gRPC client carrying a service token.
 */
import { createGrpcTransport } from "@connectrpc/connect-node";
import type { Transport } from "@connectrpc/connect";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { mintToken } from "../src/auth/mint-token.js";
import { parseRateLimits } from "../src/auth/rate-limit-policy.js";
import { loadSigningSecret } from "../src/auth/signing-secret.js";
import { loadConfig, type Config } from "../src/config.js";
import { buildServer, type AnalyticsServer, type BuildServerOptions } from "../src/server/build-server.js";
import { benchDatabase } from "./_support.js";

/** A server under benchmark and a client transport to it. */
export interface BenchServer {
  readonly server: AnalyticsServer;
  readonly transport: Transport;
  readonly databaseUrl: string;
  close(): Promise<void>;
}

/** Starts a server on its own database (or on `databaseUrl` when given, sharing it). */
export async function startBenchServer(
  name: string,
  overrides: Partial<Config> = {},
  options: BuildServerOptions & { databaseUrl?: string } = {},
): Promise<BenchServer> {
  const owned = options.databaseUrl ? undefined : await benchDatabase(name);
  const databaseUrl = options.databaseUrl ?? owned!.url;
  const dataDir = await mkdtemp(join(tmpdir(), `bench-${name}-`));
  const config = loadConfig({}, { port: 0, host: "127.0.0.1", databaseUrl, dataDir, logLevel: "warn", rateLimits: parseRateLimits("off"), ...overrides });
  const server = await buildServer(config, options);
  await server.listen();
  const secret = await loadSigningSecret(config);
  const token = await mintToken(secret.key, { role: "service", sub: "bench", ttlSeconds: 3600, issuer: config.jwtIssuer, audience: config.jwtAudience });
  const transport = createGrpcTransport({
    baseUrl: server.url(),
    interceptors: [
      (next) => (req) => {
        req.header.set("authorization", `Bearer ${token}`);
        return next(req);
      },
    ],
  });
  return {
    server,
    transport,
    databaseUrl,
    async close() {
      await server.close();
      await owned?.drop();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** Runs `bench/_client.ts` in its own process with `job`; resolves with its JSON result. */
export async function runBenchClient<T>(job: Record<string, unknown>): Promise<T> {
  const { execFile } = await import("node:child_process");
  const { fileURLToPath } = await import("node:url");
  const script = fileURLToPath(new URL("./_client.ts", import.meta.url));
  return new Promise<T>((resolve, reject) => {
    execFile(
      process.execPath,
      ["--import", import.meta.resolve("tsx"), script, JSON.stringify(job)],
      { maxBuffer: 512 * 1024 * 1024 },
      (err, stdout, stderr) => {
        if (err) return reject(new Error(`bench client failed: ${err.message}\n${stderr}`));
        const last = stdout.trim().split("\n").pop()!;
        resolve(JSON.parse(last) as T);
      },
    );
  });
}

/** A service token for `server` (for clients in other processes). */
export async function serviceToken(server: AnalyticsServer): Promise<string> {
  const secret = await loadSigningSecret(server.config);
  return mintToken(secret.key, { role: "service", sub: "bench", ttlSeconds: 3600, issuer: server.config.jwtIssuer, audience: server.config.jwtAudience });
}
