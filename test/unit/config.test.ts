import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig, writerStrategyOf } from "../../src/config.js";

describe("loadConfig", () => {
  it("has documented defaults", () => {
    const c = loadConfig({});
    expect(c).toMatchObject({
      port: 8080,
      host: "0.0.0.0",
      databaseUrl: undefined,
      analyticsEnabled: true,
      retentionDays: 90,
      migrateOnStart: true,
      logLevel: "info",
    });
    expect(c.dataDir).toMatch(/\/data$/);
  });

  it("reads every variable", () => {
    const c = loadConfig({
      PORT: "9090",
      HOST: "127.0.0.1",
      DATABASE_URL: "postgres://postgres@127.0.0.1:5432/x",
      ANALYTICS_ENABLED: "false",
      ANALYTICS_RETENTION_DAYS: "30",
      ANALYTICS_DATA_DIR: "/var/lib/analytics",
      ANALYTICS_SHUTDOWN_TIMEOUT_MS: "500",
      LOG_LEVEL: "DEBUG",
    });
    expect(c).toMatchObject({
      port: 9090,
      host: "127.0.0.1",
      databaseUrl: "postgres://postgres@127.0.0.1:5432/x",
      analyticsEnabled: false,
      retentionDays: 30,
      dataDir: "/var/lib/analytics",
      shutdownTimeoutMs: 500,
      logLevel: "debug",
    });
  });

  it("treats empty values as unset", () => {
    expect(loadConfig({ PORT: "", DATABASE_URL: "" })).toMatchObject({ port: 8080, databaseUrl: undefined });
  });

  it.each([
    ["PORT", "80a", /PORT="80a" must be an integer from 0 to 65535/],
    ["PORT", "70000", /PORT="70000" must be an integer/],
    ["ANALYTICS_ENABLED", "maybe", /ANALYTICS_ENABLED="maybe" must be true or false/],
    ["ANALYTICS_RETENTION_DAYS", "0", /ANALYTICS_RETENTION_DAYS="0" must be an integer from 1/],
    ["DATABASE_URL", "mysql://x", /DATABASE_URL="mysql:\/\/x" must start with postgres:\/\//],
    ["DATABASE_URL", "not a url", /DATABASE_URL="not a url" must be a URL/],
    ["LOG_LEVEL", "loud", /LOG_LEVEL="loud" must be one of debug, info, warn, error/],
  ])("rejects %s=%s with a message naming it", (name, value, message) => {
    expect(() => loadConfig({ [name]: value })).toThrowError(ConfigError);
    expect(() => loadConfig({ [name]: value })).toThrowError(message);
  });

  it("rejects unknown ANALYTICS_ variables (typos never fall back to defaults)", () => {
    expect(() => loadConfig({ ANALYTICS_RETENTON_DAYS: "30" })).toThrowError(/ANALYTICS_RETENTON_DAYS is not a known setting/);
  });

  it("reports every problem at once", () => {
    try {
      loadConfig({ PORT: "x", ANALYTICS_ENABLED: "y" });
      expect.unreachable();
    } catch (err) {
      expect((err as Error).message).toMatch(/PORT[\s\S]*ANALYTICS_ENABLED/);
    }
  });

  it("lets overrides win over the environment", () => {
    expect(loadConfig({ PORT: "1" }, { port: 0 }).port).toBe(0);
  });

  it("chooses COPY on a real server and unnest on the embedded one, and refuses COPY without DATABASE_URL", () => {
    expect(writerStrategyOf(loadConfig({}))).toBe("unnest");
    expect(writerStrategyOf(loadConfig({ DATABASE_URL: "postgres://db.internal/analytics" }))).toBe("copy");
    expect(writerStrategyOf(loadConfig({ DATABASE_URL: "postgres://db.internal/analytics", ANALYTICS_WRITER_STRATEGY: "unnest" }))).toBe("unnest");
    expect(() => loadConfig({ ANALYTICS_WRITER_STRATEGY: "copy" })).toThrow(/ANALYTICS_WRITER_STRATEGY=copy needs DATABASE_URL/);
    expect(() => loadConfig({ ANALYTICS_WRITER_STRATEGY: "bulk" })).toThrow(ConfigError);
  });
});
