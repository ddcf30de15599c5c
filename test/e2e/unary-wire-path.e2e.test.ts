/**
 * The unary Log* calls in binary encodings go through wire types (src/wire/unary-log-wire.ts):
 * through the real server, every protocol stores what it stored before, and a Struct field sent
 * thousands of times in one request is merged in time linear in the request (protobuf-es's
 * generated path took ~5 s for 4k repeats, before any interceptor could refuse the call).
 */
import { toBinary } from "@bufbuild/protobuf";
import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { describe, expect, it } from "vitest";
import { AnalyticsService, LogUserActivityRequestSchema } from "../../sdk/src/gen/analytics/v1/analytics_service_pb.js";
import { ActivityType, WriteOutcome } from "../../sdk/src/gen/analytics/v1/common_pb.js";
import { bearer, mintTestToken } from "../support/auth.js";
import { useTestServer } from "../support/test-server.js";

const t = useTestServer();

/** `Struct { key: x }` as field 7 (extra_data) of a LogUserActivityRequest. */
function extraDataField(key: string, x: number): Uint8Array {
  const value = new BinaryWriter().tag(2, WireType.Bit64).double(x).finish();
  const entry = new BinaryWriter().tag(1, WireType.LengthDelimited).string(key).tag(2, WireType.LengthDelimited).bytes(value).finish();
  const struct = new BinaryWriter().tag(1, WireType.LengthDelimited).bytes(entry).finish();
  return new BinaryWriter().tag(7, WireType.LengthDelimited).bytes(struct).finish();
}

describe("unary Log* calls in binary encodings", () => {
  it("store the same row over gRPC, gRPC-Web, Connect binary and Connect JSON, merged Struct included", async () => {
    const token = await mintTestToken(t.server.config, "service");
    const options = { baseUrl: t.server.url(), interceptors: [bearer(token)] };
    const transports = {
      grpc: createGrpcTransport(options),
      "grpc-web": createGrpcWebTransport({ ...options, httpVersion: "1.1" }),
      "connect-proto": createConnectTransport({ ...options, httpVersion: "1.1", useBinaryFormat: true }),
      "connect-json": createConnectTransport({ ...options, httpVersion: "1.1", useBinaryFormat: false }),
    };
    for (const [kind, transport] of Object.entries(transports)) {
      const res = await createClient(AnalyticsService, transport).logUserActivity({
        activityType: ActivityType.PAGE_VIEW,
        pageUrl: `/wire/${kind}`,
        extraData: { tab: "map", zoom: 3.5, list: [1, "a", null, { ok: true }] },
      });
      expect(res.outcome).toBe(WriteOutcome.STORED);
    }
    const stored = await t.rows<{ page_url: string; extra_data: unknown }>(`select page_url, extra_data from user_activities where page_url like '/wire/%' order by page_url`);
    expect(stored.map((r) => r.page_url)).toEqual(["/wire/connect-json", "/wire/connect-proto", "/wire/grpc", "/wire/grpc-web"]);
    for (const row of stored) expect(row.extra_data).toEqual({ tab: "map", zoom: 3.5, list: [1, "a", null, { ok: true }] });
  });

  it("merge extra_data sent 4,400 times in one binary LogUserActivity at once, as protobuf merges it", async () => {
    const token = await mintTestToken(t.server.config, "service");
    const head = toBinary(LogUserActivityRequestSchema, { $typeName: "analytics.v1.LogUserActivityRequest", activityType: ActivityType.CLICK, pageUrl: "/wire/repeats" } as never);
    const writer = new BinaryWriter().raw(head);
    for (let i = 0; i < 4400; i++) writer.raw(extraDataField(`k${i % 4000}`, i)); // k0..k399 sent twice: the last wins
    const body = writer.finish();
    expect(body.length).toBeGreaterThan(90_000);
    const start = performance.now();
    const res = await fetch(`${t.server.url()}/analytics.v1.AnalyticsService/LogUserActivity`, {
      method: "POST",
      headers: { "content-type": "application/proto", "connect-protocol-version": "1", authorization: `Bearer ${token}` },
      body,
    });
    const ms = performance.now() - start;
    expect(res.status).toBe(200);
    // Linear: tens of milliseconds; the quadratic merge took seconds (generous for a loaded box).
    expect(ms).toBeLessThan(1500);
    const [row] = await t.rows<{ extra_data: Record<string, number> }>(`select extra_data from user_activities where page_url = '/wire/repeats'`);
    const expected = Object.fromEntries(Array.from({ length: 4000 }, (_, k) => [`k${k}`, k < 400 ? 4000 + k : k]));
    expect(row!.extra_data).toEqual(expected);
  });
});
