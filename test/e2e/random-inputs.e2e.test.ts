/**
 * Random inputs for device metrics and every query (text that stresses UTF-8 and PostgreSQL —
 * NUL, lone surrogates, long strings —, extreme numbers, out-of-range hours and page sizes, made-up
 * ids), over gRPC and Connect JSON: each call is answered or refused with a client error
 * (InvalidArgument, NotFound), never with a server error.
 */
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { describe, expect, it } from "vitest";
import { AnalyticsService } from "../../sdk/src/gen/analytics/v1/analytics_service_pb.js";
import { MetricsService } from "../../sdk/src/gen/analytics/v1/metrics_service_pb.js";
import { parseRateLimits } from "../../src/auth/rate-limit-policy.js";
import { bearer, mintTestToken } from "../support/auth.js";
import { generators } from "../support/random-messages.js";
import { seededRandom } from "../support/seeded-random.js";
import { useTestServer } from "../support/test-server.js";

// Rate limits off: the calls come fast, and the limiter is not what is tested here.
const t = useTestServer({ rateLimits: parseRateLimits("off") });

/** A client error's code name in a ConnectError's text. */
const CLIENT_ERROR = /\[(invalid_argument|not_found)\]/;

describe("random inputs", () => {
  it.each(["grpc", "connect-json"] as const)("to IngestDeviceMetrics and the queries never get a server error (%s)", async (protocol) => {
    const transport = async (role: "service" | "admin") => {
      const options = { baseUrl: t.server.url(), interceptors: [bearer(await mintTestToken(t.server.config, role))] };
      return protocol === "grpc" ? createGrpcTransport(options) : createConnectTransport({ ...options, httpVersion: "1.1" });
    };
    const analytics = createClient(AnalyticsService, await transport("service"));
    const metrics = createClient(MetricsService, await transport("admin"));
    const admin = createClient(AnalyticsService, await transport("admin"));
    const random = seededRandom(protocol === "grpc" ? 7 : 8);
    const g = generators(random);
    const serverErrors: string[] = [];
    const attempt = async (label: string, call: () => Promise<unknown>) => {
      try {
        await call();
      } catch (err) {
        if (!CLIENT_ERROR.test(String(err))) serverErrors.push(`${label}: ${String(err)}`);
      }
    };
    for (let i = 0; i < 60; i++) {
      const deviceId = random() < 0.7 ? `dev-${i % 7}` : g.text();
      const samples = Array.from({ length: 1 + g.int(5) }, () => ({
        occurredAt: timestampFromMs(Date.now() - g.int(1e9)),
        metrics: Object.fromEntries(Array.from({ length: g.int(4) }, () => [g.text(), g.pick([1, -0, 1e308, 5e-324, -1e-300, g.int(100), 2 ** 53 + 2])])),
      }));
      await attempt("IngestDeviceMetrics", () => analytics.ingestDeviceMetrics({ deviceId, samples }));
      await attempt("GetDeviceMetrics", () => metrics.getDeviceMetrics({ deviceId: g.text() || "x", pageSize: g.int(2000), pageToken: random() < 0.2 ? g.text() : "" }));
      await attempt("GetDeviceStateHistory", () => metrics.getDeviceStateHistory({ deviceId: g.text() || "x", hours: g.int(800) }));
      await attempt("GetApiPerformance", () => metrics.getApiPerformance({ endpoint: g.text(), hours: g.int(200) }));
      await attempt("GetJobOutcomes", () => metrics.getJobOutcomes({ jobType: g.text() }));
      await attempt("GetErrorTrends", () => metrics.getErrorTrends({ category: g.int(12) }));
      await attempt("ResolveError", () => admin.resolveError({ errorId: random() < 0.5 ? crypto.randomUUID() : g.text(), resolved: true }));
    }
    expect(serverErrors).toEqual([]);
  });
});
