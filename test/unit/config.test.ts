import { describe, expect, it } from "vitest";
import { CLIENT_VARIABLES, closestSetting, CONFIG_VARIABLES, ConfigError, loadConfig, writerStrategyOf } from "../../src/config.js";

/** The message of the ConfigError `loadConfig(env)` throws (failing when it does not throw one). */
function configErrorOf(env: Record<string, string>): string {
  try {
    loadConfig(env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error("expected a ConfigError");
}

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

  it("names the closest known setting for a misspelt variable, without its value", () => {
    const text = configErrorOf;
    expect(text({ ANALYTICS_MAX_MESAGE_BYTES: "1048576" })).toMatch(/ANALYTICS_MAX_MESAGE_BYTES is not a known setting: did you mean ANALYTICS_MAX_MESSAGE_BYTES\?$/);
    expect(text({ ANALYTICS_JWT_SECERT: "hunter2-hunter2-hunter2-hunter2-hunter2" })).toMatch(/did you mean ANALYTICS_JWT_SECRET\?/);
    expect(text({ ANALYTICS_JWT_SECERT: "hunter2-hunter2-hunter2-hunter2-hunter2" })).not.toContain("hunter2");
    expect(text({ ANALYTICS_TOKNE: "eyJhbGciOiJIUzI1NiJ9.e30.sig" })).toMatch(/did you mean ANALYTICS_TOKEN \(read by the clients, not the server\)\?/);
    expect(text({ ANALYTICS_WIDGETS: "on" })).toMatch(/ANALYTICS_WIDGETS is not a known setting \(no setting has a similar name; they are listed in docs\/CONFIGURATION.md; if another program reads it, unset it for this one\)$/);
  });

  it.each([
    ["ANALYTICS_RETENTON_DAYS", "ANALYTICS_RETENTION_DAYS"],
    ["ANALYTICS_RETENTOIN_DAYS", "ANALYTICS_RETENTION_DAYS"],
    ["ANALYTICS_MAX_MSG_BYTES", "ANALYTICS_MAX_MESSAGE_BYTES"],
    ["ANALYTICS_METRICS_MAX_MESAGE_BYTES", "ANALYTICS_METRICS_MAX_MESSAGE_BYTES"],
    ["ANALYTICS_LOG_LEVEL", "LOG_LEVEL"],
    ["ANALYTICS_PORT", "PORT"],
    ["ANALYTICS_DATABASE_URL", "DATABASE_URL"],
    ["ANALYTICS_TOKENS_NOT_BEFOR", "ANALYTICS_TOKENS_NOT_BEFORE"],
  ])("suggests %s -> %s", (typo, meant) => {
    expect(closestSetting(typo)).toBe(meant);
  });

  it("suggests nothing for a name unlike any setting", () => {
    expect(closestSetting("ANALYTICS_WIDGETS")).toBeUndefined();
    expect(closestSetting("ANALYTICS_API_KEY")).toBeUndefined();
  });

  it("starts with the client-side variables the docs tell people to export (ANALYTICS_TOKEN), never reading or echoing them", () => {
    const token = "eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoiYWRtaW4ifQ.c2lnbmF0dXJl";
    expect(loadConfig({ ANALYTICS_TOKEN: token, PORT: "9090" })).toMatchObject({ port: 9090 });
    expect(JSON.stringify(loadConfig({ ANALYTICS_TOKEN: token }))).not.toContain(token);
    // Another problem still refuses start-up, and the message says nothing of the token.
    try {
      loadConfig({ ANALYTICS_TOKEN: token, ANALYTICS_RETENTION_DAYS: "0" });
      expect.unreachable();
    } catch (err) {
      expect((err as Error).message).toMatch(/^invalid configuration:\n  - ANALYTICS_RETENTION_DAYS="0" must be an integer from 1 to 36500$/);
    }
  });

  it("keeps client-side and server names apart", () => {
    expect(Object.keys(CLIENT_VARIABLES)).toContain("ANALYTICS_TOKEN");
    for (const name of Object.keys(CLIENT_VARIABLES)) {
      expect(name).toMatch(/^ANALYTICS_/);
      expect(CONFIG_VARIABLES).not.toContain(name);
    }
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

describe("token settings", () => {
  const message = configErrorOf;
  const JWKS = { ANALYTICS_JWT_ISSUER: "https://id.example.com", ANALYTICS_JWT_AUDIENCE: "analytics" };

  it("reads ANALYTICS_TOKENS_NOT_BEFORE as epoch seconds, a date or a date-time with its zone", () => {
    expect(loadConfig({}).tokensNotBeforeMs).toBeUndefined();
    expect(loadConfig({ ANALYTICS_TOKENS_NOT_BEFORE: "1767225600" }).tokensNotBeforeMs).toBe(Date.UTC(2026, 0, 1));
    expect(loadConfig({ ANALYTICS_TOKENS_NOT_BEFORE: "2026-01-01" }).tokensNotBeforeMs).toBe(Date.UTC(2026, 0, 1));
    expect(loadConfig({ ANALYTICS_TOKENS_NOT_BEFORE: "2026-01-01T09:30:00Z" }).tokensNotBeforeMs).toBe(Date.UTC(2026, 0, 1, 9, 30));
    expect(loadConfig({ ANALYTICS_TOKENS_NOT_BEFORE: "2026-01-01T10:30:00.250+01:00" }).tokensNotBeforeMs).toBe(Date.UTC(2026, 0, 1, 9, 30, 0, 250));
  });

  it.each([
    ["a zone-less date-time", "2026-01-01T09:30:00", /ANALYTICS_TOKENS_NOT_BEFORE="2026-01-01T09:30:00" must be epoch seconds or an ISO-8601 time with its zone/],
    ["words", "yesterday", /ANALYTICS_TOKENS_NOT_BEFORE="yesterday" must be epoch seconds/],
    ["an impossible date", "2026-13-45", /ANALYTICS_TOKENS_NOT_BEFORE="2026-13-45" must be epoch seconds/],
    ["the future", "2999-01-01T00:00:00Z", /ANALYTICS_TOKENS_NOT_BEFORE="2999-01-01T00:00:00Z" is in the future .* would refuse every token/],
  ])("refuses ANALYTICS_TOKENS_NOT_BEFORE as %s", (_name, value, expected) => {
    expect(message({ ANALYTICS_TOKENS_NOT_BEFORE: value })).toMatch(expected);
  });

  it("accepts a JWKS URL over https, and over plain http only for a loopback host", () => {
    for (const url of ["https://id.example.com/jwks.json", "http://localhost:8081/jwks", "http://127.0.0.1/jwks", "http://127.9.8.7/jwks", "http://[::1]:9/jwks"]) {
      expect(loadConfig({ ANALYTICS_JWKS_URL: url, ...JWKS }).jwksUrl).toBe(new URL(url).toString());
    }
    for (const url of ["http://id.example.com/jwks.json", "http://10.0.0.1/jwks", "http://128.0.0.1/jwks", "http://localhost.evil.com/jwks", "http://[::2]/jwks"]) {
      expect(message({ ANALYTICS_JWKS_URL: url, ...JWKS })).toMatch(/ANALYTICS_JWKS_URL=.* must start with https:\/\/: plain http:\/\/ is accepted only for a loopback host/);
    }
  });

  it("requires the issuer and the audience with a JWKS, naming the missing variable", () => {
    const sources: Record<string, string>[] = [{ ANALYTICS_JWKS_URL: "https://id.example.com/jwks.json" }, { ANALYTICS_JWKS_FILE: "/etc/analytics/jwks.json" }];
    for (const source of sources) {
      const name = Object.keys(source)[0]!;
      expect(message(source)).toMatch(new RegExp(`ANALYTICS_JWT_ISSUER must be set with ${name}[\\s\\S]*ANALYTICS_JWT_AUDIENCE must be set with ${name}`));
      expect(message({ ...source, ANALYTICS_JWT_ISSUER: "https://id.example.com" })).not.toMatch(/ANALYTICS_JWT_ISSUER/);
      expect(message({ ...source, ANALYTICS_JWT_AUDIENCE: "analytics" })).toMatch(/^invalid configuration:\n  - ANALYTICS_JWT_ISSUER must be set with/);
      expect(loadConfig({ ...source, ...JWKS })).toMatchObject({ jwtIssuer: "https://id.example.com", jwtAudience: "analytics" });
    }
    expect(message({ ANALYTICS_JWKS_URL: "https://id.example.com/jwks.json", ANALYTICS_JWKS_FILE: "/x.json", ...JWKS })).toMatch(/set only one of ANALYTICS_JWKS_URL and ANALYTICS_JWKS_FILE/);
  });

  it("never echoes the JWT secret or a password in an error", () => {
    const secret = message({ ANALYTICS_JWT_SECRET: "hunter2-short" });
    expect(secret).toMatch(/ANALYTICS_JWT_SECRET="\(hidden\)" must be at least 32 characters/);
    expect(secret).not.toContain("hunter2");
    const cases: [string, string][] = [
      ["mysql://app:hunter2@db.internal/analytics", 'DATABASE_URL="mysql://app:***@db.internal/analytics" must start with postgres://'],
      ["postgres://app:hunter2@db.internal:port/analytics", 'DATABASE_URL="postgres://app:***@db.internal:port/analytics" must be a URL'],
      ["postgres://app:hun@ter2@db.internal:x/a", 'DATABASE_URL="postgres://app:***@db.internal:x/a" must be a URL'],
      ["mysql://db.internal/a?user=app&password=hunter2&sslmode=require", 'DATABASE_URL="mysql://db.internal/a?user=app&password=***&sslmode=require"'],
    ];
    for (const [url, shown] of cases) {
      const text = message({ DATABASE_URL: url });
      expect(text).toContain(shown);
      expect(text).not.toMatch(/hunter2|ter2/);
    }
    // With the SDK's token exported beside it, neither the secret nor the token is shown.
    const withToken = message({ ANALYTICS_JWT_SECRET: "hunter2-short", ANALYTICS_TOKEN: "eyJ.hunter3.sig" });
    expect(withToken).toBe('invalid configuration:\n  - ANALYTICS_JWT_SECRET="(hidden)" must be at least 32 characters (e.g. `openssl rand -base64 32`)');
    const jwks = message({ ANALYTICS_JWKS_URL: "http://reader:hunter2@id.example.com/jwks", ...JWKS });
    expect(jwks).toContain('ANALYTICS_JWKS_URL="http://reader:***@id.example.com/jwks"');
    expect(jwks).not.toContain("hunter2");
  });
});
