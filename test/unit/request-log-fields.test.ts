import { Code } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { clientIpOf, DEFAULT_REQUEST_LOG_SKIP, httpStatusOf, isSkipped, protocolOf, rememberPerAddress, storableText } from "../../src/server/request-log-fields.js";

describe("protocolOf", () => {
  it.each([
    ["application/grpc", "grpc"],
    ["application/grpc+proto", "grpc"],
    ["application/grpc-web+proto", "grpc-web"],
    ["application/grpc-web-text", "grpc-web"],
    ["application/json", "connect"],
    ["application/proto", "connect"],
    ["application/connect+json", "connect"],
    [null, "connect"],
  ])("%s is %s", (ct, protocol) => expect(protocolOf(ct)).toBe(protocol));
});

describe("httpStatusOf", () => {
  it("maps RPC codes the way Connect does", () => {
    expect(httpStatusOf(0)).toBe(200);
    expect(httpStatusOf(Code.InvalidArgument)).toBe(400);
    expect(httpStatusOf(Code.Unauthenticated)).toBe(401);
    expect(httpStatusOf(Code.PermissionDenied)).toBe(403);
    expect(httpStatusOf(Code.NotFound)).toBe(404);
    expect(httpStatusOf(Code.ResourceExhausted)).toBe(429);
    expect(httpStatusOf(Code.Canceled)).toBe(499);
    expect(httpStatusOf(Code.Unimplemented)).toBe(501);
    expect(httpStatusOf(Code.Unavailable)).toBe(503);
    expect(httpStatusOf(Code.DeadlineExceeded)).toBe(504);
  });
});

describe("clientIpOf", () => {
  it("uses the socket peer unless proxies are trusted", () => {
    expect(clientIpOf("::ffff:10.0.0.9", "1.2.3.4", 0)).toBe("10.0.0.9");
    expect(clientIpOf("10.0.0.9", undefined, 1)).toBe("10.0.0.9");
  });
  it("takes the entry as many hops back as there are trusted proxies, never a client-written one", () => {
    expect(clientIpOf("10.0.0.9", "6.6.6.6, 203.0.113.7", 1)).toBe("203.0.113.7");
    expect(clientIpOf("10.0.0.9", "6.6.6.6, 203.0.113.7, 10.0.0.2", 2)).toBe("203.0.113.7");
    expect(clientIpOf("10.0.0.9", "203.0.113.7", 3)).toBe("203.0.113.7");
  });
});

describe("isSkipped", () => {
  it("skips health, reflection and admin queries by default", () => {
    expect(isSkipped("/grpc.health.v1.Health/Check", DEFAULT_REQUEST_LOG_SKIP)).toBe(true);
    expect(isSkipped("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", DEFAULT_REQUEST_LOG_SKIP)).toBe(true);
    expect(isSkipped("/analytics.v1.MetricsService/GetApiPerformance", DEFAULT_REQUEST_LOG_SKIP)).toBe(true);
    expect(isSkipped("/analytics.v1.AnalyticsService/LogError", DEFAULT_REQUEST_LOG_SKIP)).toBe(false);
    expect(isSkipped("/analytics.v1.AnalyticsService/LogError", [])).toBe(false);
  });
});

describe("storableText", () => {
  it("replaces every U+0000 with U+FFFD and keeps other text, null and absent as they are", () => {
    expect(storableText("a\u0000b\u0000")).toBe("a\uFFFDb\uFFFD");
    expect(storableText("plain \u00e9 text")).toBe("plain \u00e9 text");
    expect(storableText(null)).toBeNull();
    expect(storableText(undefined)).toBeNull();
  });
});

describe("rememberPerAddress", () => {
  it("works an address out once while it is remembered, null answers included", () => {
    const asked: string[] = [];
    const stored = rememberPerAddress((ip) => (asked.push(ip), ip === "bad" ? null : `${ip}/x`), 3);
    expect([stored("a"), stored("a"), stored("bad"), stored("bad"), stored("b")]).toEqual(["a/x", "a/x", null, null, "b/x"]);
    expect(asked).toEqual(["a", "bad", "b"]);
  });

  it("holds at most its limit, starting over when full", () => {
    const asked: string[] = [];
    const stored = rememberPerAddress((ip) => (asked.push(ip), ip), 2);
    for (const ip of ["a", "b", "c", "a", "c"]) stored(ip);
    // "c" found the memo full (a, b) and started it over; "a" was then asked again, "c" was not.
    expect(asked).toEqual(["a", "b", "c", "a"]);
  });
});
