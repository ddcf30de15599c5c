/**
 * The real command line: `src/main.ts serve` as its own process, stopped with SIGTERM. It must
 * say where it listens, answer, and on the signal finish what it holds and exit 0.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { readFile, stat } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { decodeJwt } from "jose";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { AnalyticsService } from "../../sdk/src/gen/analytics/v1/analytics_service_pb.js";
import { Health, HealthCheckResponse_ServingStatus } from "../../sdk/src/gen/grpc/health/v1/health_pb.js";
import { bearer, mintTestToken } from "../support/auth.js";
import { createTestDatabase, type TestDatabase } from "../support/test-database.js";

const root = join(dirname(fileURLToPath(import.meta.url)), "../..");
let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db?.drop();
});

/** Starts the server process; resolves with its URL once it logs "ready at". */
function serve(): Promise<{ child: ChildProcess; url: string; output: () => string }> {
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    PORT: "0",
    HOST: "127.0.0.1",
    ANALYTICS_DATA_DIR: db.config.dataDir,
    LOG_LEVEL: "info",
    ...(db.config.databaseUrl ? { DATABASE_URL: db.config.databaseUrl } : {}),
  };
  const child = spawn(process.execPath, ["--import", "tsx", join(root, "src/main.ts"), "serve"], { cwd: root, env, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no "ready at" within 60 s:\n${out}`)), 60_000);
    const onData = (chunk: Buffer) => {
      out += chunk.toString();
      const m = /ready at (http:\/\/[^"\s]+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve({ child, url: m[1]!, output: () => out });
      }
    };
    child.stdout!.on("data", onData);
    child.stderr!.on("data", onData);
    child.once("exit", (code) => reject(new Error(`exited ${code} before ready:\n${out}`)));
  });
}

describe("the serve command", () => {
  it("writes a one-hour admin token to a 0600 file on first start (printing only its path), serves, and on SIGTERM shuts down gracefully with exit code 0", async () => {
    const { child, url, output } = await serve();
    const tokenFile = join(db.config.dataDir, "admin-token");
    expect(output()).toContain(`export TOKEN=$(cat ${tokenFile})`);
    expect((await stat(tokenFile)).mode & 0o777).toBe(0o600);
    const adminToken = (await readFile(tokenFile, "utf8")).trim();
    const claims = decodeJwt(adminToken);
    expect(claims).toMatchObject({ role: "admin", sub: "admin" });
    expect(claims.exp! - claims.iat!).toBe(3600);
    expect(output()).toContain(`valid for 1 hour (until ${new Date(claims.exp! * 1000).toISOString()})`);
    const admin = createClient(AnalyticsService, createGrpcTransport({ baseUrl: url, interceptors: [bearer(adminToken)] }));
    expect((await admin.logDeviceStateChange({ deviceId: "d-first-start", newState: "online" })).id).toMatch(/^[0-9a-f-]{36}$/);
    const health = createClient(Health, createGrpcTransport({ baseUrl: url }));
    expect((await health.check({})).status).toBe(HealthCheckResponse_ServingStatus.SERVING);
    const client = createClient(AnalyticsService, createGrpcTransport({ baseUrl: url, interceptors: [bearer(await mintTestToken(db.config, "service"))] }));
    const stored = await client.logDeviceStateChange({ deviceId: "d-sigterm", newState: "online" });
    expect(stored.id).toMatch(/^[0-9a-f-]{36}$/);

    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    child.kill("SIGTERM");
    expect(await exited).toBe(0);
    expect(output()).toMatch(/"msg":"signal received","signal":"SIGTERM"/);
    expect(output()).toMatch(/"msg":"stopped"/);
    // Nothing of the token reached stdout or stderr: not the whole, not its signature.
    expect(output()).not.toContain(adminToken.split(".")[2]);
    expect(output()).not.toMatch(/ey[A-Za-z0-9_-]{20,}\.ey/);
  });
});
