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

/** A benchmark server running in its own process (`bench/_serve.ts`). */
export interface ServerProcess {
  readonly url: string;
  /** A service token the server accepts. */
  readonly token: string;
  /** The server's process id (for its CPU time). */
  readonly pid: number;
  /** Stops the server (it closes its database connections) and waits for the process to exit. */
  close(): Promise<void>;
}

/**
 * Starts a server on `databaseUrl` in a process of its own, with the Node flags `npm start` uses
 * (the process's heap and collections are the server's alone, as in production).
 */
export async function startServerProcess(
  name: string,
  databaseUrl: string,
  config: Partial<Config> = {},
  options: Pick<BuildServerOptions, "binaryLogEventsFastPath"> = {},
): Promise<ServerProcess> {
  const { spawn } = await import("node:child_process");
  const { fileURLToPath } = await import("node:url");
  const script = fileURLToPath(new URL("./_serve.ts", import.meta.url));
  // BENCH_SERVER_NODE_FLAGS adds Node flags to the server (e.g. "--cpu-prof --cpu-prof-dir=DIR"),
  // as in bench/stream.ts.
  const extraFlags = process.env.BENCH_SERVER_NODE_FLAGS?.split(" ").filter(Boolean) ?? [];
  const child = spawn(
    process.execPath,
    [...extraFlags, "--max-semi-space-size=64", "--import", import.meta.resolve("tsx"), script, JSON.stringify({ name, databaseUrl, config, options })],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
  const ready = await new Promise<{ url: string; token: string; pid: number }>((resolve, reject) => {
    let out = "";
    child.stdout!.on("data", (chunk: Buffer) => {
      out += chunk.toString();
      const line = out.split("\n").find((l) => l.startsWith("{"));
      if (line) resolve(JSON.parse(line));
    });
    void exited.then((code) => reject(new Error(`bench server ${name} exited (${code}) before it was ready`)));
  });
  return {
    ...ready,
    async close() {
      child.kill("SIGTERM");
      await exited;
    },
  };
}

/** A service token for `server` (for clients in other processes). */
export async function serviceToken(server: AnalyticsServer): Promise<string> {
  const secret = await loadSigningSecret(server.config);
  return mintToken(secret.key, { role: "service", sub: "bench", ttlSeconds: 3600, issuer: server.config.jwtIssuer, audience: server.config.jwtAudience });
}
