import { describe, expect, it } from "vitest";
import { anonymizeIp, DEFAULT_IP_ANONYMIZATION } from "../../src/util/anonymize-ip.js";
import { loadConfig } from "../../src/config.js";

describe("anonymizeIp", () => {
  it.each([
    ["203.0.113.77", "203.0.113.0"],
    ["10.0.0.1", "10.0.0.0"],
    ["::ffff:198.51.100.9", "198.51.100.0"],
    ["2001:db8:1234:5678:9abc:def0:1234:5678", "2001:db8:1234::"],
    ["2001:db8:1234::1", "2001:db8:1234::"],
    ["2001:DB8::1", "2001:db8::"],
    ["::1", "::"],
    ["fe80::1%eth0", "fe80::"],
    ["2001:db8:1:2:3:4:1.2.3.4", "2001:db8:1::"],
  ])("truncates %s to %s", (ip, expected) => {
    expect(anonymizeIp(ip, "truncate")).toBe(expected);
  });

  it("keeps addresses with none (normalised), drops them with drop", () => {
    expect(anonymizeIp("203.0.113.77", "none")).toBe("203.0.113.77");
    expect(anonymizeIp("::ffff:203.0.113.77", "none")).toBe("203.0.113.77");
    expect(anonymizeIp("2001:0DB8:0000:0000:0000:0000:0000:0001", "none")).toBe("2001:db8::1");
    expect(anonymizeIp("203.0.113.77", "drop")).toBeNull();
    expect(anonymizeIp("2001:db8::1", "drop")).toBeNull();
  });

  it("never stores something that is not an address", () => {
    expect(anonymizeIp("unknown", "none")).toBeNull();
    expect(anonymizeIp("", "truncate")).toBeNull();
    expect(anonymizeIp(undefined, "truncate")).toBeNull();
  });

  it("defaults to truncate, and the config reads the mode", () => {
    expect(DEFAULT_IP_ANONYMIZATION).toBe("truncate");
    expect(loadConfig({}).ipAnonymization).toBe("truncate");
    expect(loadConfig({ ANALYTICS_IP_ANONYMIZATION: "drop" }).ipAnonymization).toBe("drop");
    expect(() => loadConfig({ ANALYTICS_IP_ANONYMIZATION: "hash" })).toThrow(/must be one of none, truncate, drop/);
  });
});

describe("auth and abuse settings", () => {
  it("has safe defaults", () => {
    const c = loadConfig({});
    expect(c).toMatchObject({ jwtSecret: undefined, corsOrigins: [], reflection: true, maxMessageBytes: 4 * 1024 * 1024, deadlineMs: 30_000 });
  });

  it("reads them", () => {
    const c = loadConfig({
      ANALYTICS_JWT_SECRET: "s".repeat(40),
      ANALYTICS_JWT_ISSUER: "https://auth.example.com",
      ANALYTICS_JWT_AUDIENCE: "analytics",
      ANALYTICS_CORS_ORIGINS: "https://app.example.com, http://localhost:5173/",
      ANALYTICS_REFLECTION: "off",
      ANALYTICS_RATE_LIMITS: "user=1/s:2",
      ANALYTICS_MAX_MESSAGE_BYTES: "65536",
      ANALYTICS_DEADLINE_MS: "0",
    });
    expect(c).toMatchObject({
      jwtIssuer: "https://auth.example.com",
      jwtAudience: "analytics",
      corsOrigins: ["https://app.example.com", "http://localhost:5173"],
      reflection: false,
      maxMessageBytes: 65536,
      deadlineMs: 0,
    });
    expect(c.rateLimits.user).toEqual({ perSecond: 1, burst: 2 });
  });

  it.each([
    ["ANALYTICS_JWT_SECRET", "short", /at least 32 characters/],
    ["ANALYTICS_CORS_ORIGINS", "*", /not an origin/],
    ["ANALYTICS_CORS_ORIGINS", "https://app.example.com/path", /not an origin/],
    ["ANALYTICS_JWKS_URL", "ftp://x", /must start with https:\/\/ or http:\/\//],
    ["ANALYTICS_RATE_LIMITS", "user=fast", /ANALYTICS_RATE_LIMITS="user=fast" has a bad entry/],
  ])("rejects %s=%s", (name, value, message) => {
    expect(() => loadConfig({ [name]: value })).toThrow(message);
  });
});
