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

/** The environment of a command run on `database`, plus `extra`. */
function envFor(database: TestDatabase, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    PORT: "0",
    HOST: "127.0.0.1",
    ANALYTICS_DATA_DIR: database.config.dataDir,
    LOG_LEVEL: "info",
    ...(database.config.databaseUrl ? { DATABASE_URL: database.config.databaseUrl } : {}),
    ...extra,
  };
}

/** Runs a CLI command to its end. */
function runCli(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, ["--import", "tsx", join(root, "src/main.ts"), ...args], { cwd: root, env, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  return new Promise((resolve, reject) => {
    child.once("error", reject);
    child.once("close", (code) => resolve({ code, stdout, stderr }));
  });
}

/** Starts the server process; resolves with its URL once it logs "ready at". */
function serve(database: TestDatabase = db, extraEnv: NodeJS.ProcessEnv = {}): Promise<{ child: ChildProcess; url: string; output: () => string }> {
  const env = envFor(database, extraEnv);
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

describe("a shell set up for the SDK", () => {
  let own: TestDatabase;
  beforeAll(async () => {
    own = await createTestDatabase();
  });
  afterAll(async () => {
    await own?.drop();
  });
  // The README's SDK examples read ANALYTICS_TOKEN; a newcomer exports it and then starts the server.
  const sdkToken = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJzZGstc2hlbGwifQ.c2RrLXNoZWxsLXNpZ25hdHVyZQ";

  it("serves and runs the CLI with ANALYTICS_TOKEN exported, never echoing it", async () => {
    const { child, url, output } = await serve(own, { ANALYTICS_TOKEN: sdkToken });
    const health = createClient(Health, createGrpcTransport({ baseUrl: url }));
    expect((await health.check({})).status).toBe(HealthCheckResponse_ServingStatus.SERVING);
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    child.kill("SIGTERM");
    expect(await exited).toBe(0);
    expect(output()).not.toContain("c2RrLXNoZWxsLXNpZ25hdHVyZQ");

    const minted = await runCli(["token", "--role", "service", "--sub", "sdk-shell"], envFor(own, { ANALYTICS_TOKEN: sdkToken }));
    expect(minted.code, minted.stderr).toBe(0);
    expect(minted.stderr).not.toContain("ANALYTICS_TOKEN");
    expect(decodeJwt(minted.stdout.trim())).toMatchObject({ role: "service", sub: "sdk-shell" });
  });

  it("still refuses a misspelt setting, naming the closest one (exit 2)", async () => {
    const res = await runCli(["token", "--role", "service", "--sub", "x"], envFor(own, { ANALYTICS_TOKEN: sdkToken, ANALYTICS_MAX_MESAGE_BYTES: "1048576" }));
    expect(res.code).toBe(2);
    expect(res.stdout).toBe("");
    expect(res.stderr).toMatch(/^invalid configuration:\n  - ANALYTICS_MAX_MESAGE_BYTES is not a known setting: did you mean ANALYTICS_MAX_MESSAGE_BYTES\?$/m);
    expect(res.stderr).not.toContain("c2RrLXNoZWxsLXNpZ25hdHVyZQ");
  });
});
