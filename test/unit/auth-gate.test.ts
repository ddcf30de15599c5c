/**
 * The auth gate's pure parts: which procedures it guards (every one the access matrix does not
 * open) and the stand-in body a refused call is handed to Connect with, in each codec and
 * protocol (each parsed back here with protobuf-es as Connect would).
 */
import { fromBinary, fromJsonString } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { AnalyticsService, LogEventsRequestSchema } from "../../sdk/src/gen/analytics/v1/analytics_service_pb.js";
import { MetricsService } from "../../sdk/src/gen/analytics/v1/metrics_service_pb.js";
import { gatedMethods, standInBody } from "../../src/server/auth-gate.js";
import { ADVERTISED_SERVICES } from "../../src/server/routes.js";

describe("gatedMethods", () => {
  it("guards every AnalyticsService and MetricsService method, and no health or reflection one", () => {
    const gated = [...gatedMethods(ADVERTISED_SERVICES).keys()].sort();
    const expected = [AnalyticsService, MetricsService].flatMap((s) => s.methods.map((m) => `/${s.typeName}/${m.name}`)).sort();
    expect(gated).toEqual(expected);
  });
});

describe("standInBody", () => {
  /** The message inside a stand-in body, unwrapped from its envelope when it has one. */
  function messageOf(body: Uint8Array, enveloped: boolean): Uint8Array {
    if (!enveloped) return body;
    expect(body[0]).toBe(0); // not compressed
    const length = new DataView(body.buffer, body.byteOffset).getUint32(1);
    expect(body.length).toBe(5 + length);
    return body.subarray(5);
  }

  it.each([
    ["application/proto", false, false],
    ["application/json", false, true],
    ["application/json; charset=utf-8", false, true],
    ["application/grpc", true, false],
    ["application/grpc+proto", true, false],
    ["application/grpc+json", true, true],
    ["application/grpc-web+proto", true, false],
    ["application/grpc-web+json", true, true],
    ["application/connect+proto", true, false],
    ["application/connect+json", true, true],
    ["APPLICATION/GRPC", true, false],
  ])("%s: an empty message, enveloped %s, in JSON %s", (contentType, enveloped, json) => {
    const message = messageOf(standInBody(contentType), enveloped);
    const text = new TextDecoder().decode(message);
    if (json) {
      expect(text).toBe("{}");
      expect(fromJsonString(LogEventsRequestSchema, text).events).toEqual([]);
    } else {
      expect(message.length).toBe(0);
      expect(fromBinary(LogEventsRequestSchema, message).events).toEqual([]);
    }
  });

  it("is empty for anything else (Connect answers it as it would the real request)", () => {
    expect(standInBody(undefined).length).toBe(0);
    expect(standInBody("text/plain").length).toBe(0);
  });
});
