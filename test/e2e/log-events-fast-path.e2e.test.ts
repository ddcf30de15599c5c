/**
 * The binary fast path of LogEvents (compiled event decoder, hand-encoded results) against the
 * generic path (protobuf-es), through the real server: every protocol and encoding gives the same
 * answers and stores the same rows; an undecodable item is rejected alone; the request log and
 * the auth rules see fast-path calls as any other call.
 */
import { create, fromBinary, toBinary, type MessageInitShape } from "@bufbuild/protobuf";
import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import { describe, expect, it } from "vitest";
import {
  AnalyticsService,
  EventSchema,
  LogEventsResponseSchema,
  type LogEventsResponse,
} from "../../sdk/src/gen/analytics/v1/analytics_service_pb.js";
import { ActivityType, ErrorCategory, JobStatus, Severity, WriteOutcome } from "../../sdk/src/gen/analytics/v1/common_pb.js";
import { bearer, mintTestToken } from "../support/auth.js";
import { useTestServer } from "../support/test-server.js";

const t = useTestServer();
const rows = t.rows;

type Kind = "grpc" | "grpc-web" | "connect-proto" | "connect-json";

async function client(kind: Kind, role: "service" | "device" = "service", subject?: string): Promise<Client<typeof AnalyticsService>> {
  const token = await mintTestToken(t.server.config, role, subject);
  const options = { baseUrl: t.server.url(), interceptors: [bearer(token)] };
  const transport =
    kind === "grpc"
      ? createGrpcTransport(options)
      : kind === "grpc-web"
        ? createGrpcWebTransport({ ...options, httpVersion: "1.1" })
        : createConnectTransport({ ...options, httpVersion: "1.1", useBinaryFormat: kind === "connect-proto" });
  return createClient(AnalyticsService, transport);
}

/** A mixed batch whose device, job and user names carry `tag`, so each protocol's rows can be told apart. */
function batch(tag: string): MessageInitShape<typeof EventSchema>[] {
  return [
    {
      kind: {
        case: "userActivity" as const,
        value: { activityType: ActivityType.PAGE_VIEW, pageUrl: `/fleet/${tag}`, userId: `u-${tag}`, durationMs: 0, extraData: { tab: "map", zoom: 3.5 } },
      },
    },
    { kind: { case: "error" as const, value: { errorMessage: "" } } },
    {
      kind: {
        case: "error" as const,
        value: {
          category: ErrorCategory.FRONTEND,
          severity: Severity.WARNING,
          errorCode: "E-Ü",
          errorMessage: `TypeError: x is undefined ✓ ${tag}`,
          deviceId: `d-${tag}`,
          context: { stack: ["a", "b"], nested: { ok: true, none: null, n: -1.25e-7 } },
        },
      },
    },
    {
      kind: {
        case: "deviceStateChange" as const,
        value: {
          deviceId: `d-${tag}`,
          previousState: "online",
          newState: "rebooting 😀",
          reason: "tab\there\nnewline \\ backslash",
          extraData: { attempt: 2, region: "eu-west", tags: [1, "two", false] },
          occurredAt: timestampFromMs(Date.now() - 60_000),
        },
      },
    },
    { kind: { case: "jobOutcome" as const, value: { jobId: `j-${tag}`, jobType: "restart", status: JobStatus.FAILED, errorCode: "E1", retryCount: 3, durationMs: 1500 } } },
    { kind: { case: undefined } },
    { kind: { case: "jobOutcome" as const, value: { jobId: `j2-${tag}`, jobType: "restart", status: JobStatus.SUCCESS, occurredAt: timestampFromMs(Date.UTC(1990, 0, 1)) } } },
    // What the database cannot store, named instead of failing the batch at its flush: U+0000 in
    // text or in a JSON key, a uint32 beyond its integer column.
    { kind: { case: "error" as const, value: { errorMessage: `nul \u0000 ${tag}` } } },
    { kind: { case: "deviceStateChange" as const, value: { deviceId: `d-${tag}`, newState: "on", extraData: { "k\u0000": 1 } } } },
    { kind: { case: "jobOutcome" as const, value: { jobId: `j3-${tag}`, jobType: "restart", status: JobStatus.SUCCESS, retryCount: 4_294_967_295 } } },
  ];
}

/** The stored rows of a batch tagged `tag`, without the columns that differ per call. */
async function storedRows(tag: string) {
  const strip = (r: Record<string, unknown>) => {
    const { id: _id, occurred_at: _at, received_at: _r, event_id: _e, last_seen_at: _l, dedup_key: _d, ...rest } = r;
    return JSON.parse(JSON.stringify(rest, (_k, v: unknown) => (typeof v === "string" ? v.replaceAll(tag, "TAG") : v))) as unknown;
  };
  return {
    activities: (await rows(`select * from user_activities where page_url = ?`, [`/fleet/${tag}`])).map(strip),
    errors: (await rows(`select * from error_logs where device_id = ?`, [`d-${tag}`])).map(strip),
    states: (await rows(`select * from device_state_history where device_id = ?`, [`d-${tag}`])).map(strip),
    jobs: (await rows(`select * from job_outcomes where job_id like ?`, [`%-${tag}`])).map(strip),
  };
}

const shape = (res: LogEventsResponse) => ({
  outcomes: res.results.map((r) => r.outcome),
  hasIds: res.results.map((r) => r.id !== ""),
  violations: res.results.map((r) => r.violations.map((v) => ({ field: v.field, description: v.description }))),
  stored: res.storedCount,
  rejected: res.rejectedCount,
});

describe("LogEvents fast path", () => {
  it("answers and stores a mixed batch the same over gRPC, gRPC-Web, Connect binary (fast path) and Connect JSON (protobuf-es)", async () => {
    const answers: Record<string, unknown> = {};
    const stored: Record<string, unknown> = {};
    for (const kind of ["grpc", "grpc-web", "connect-proto", "connect-json"] as const) {
      const res = await (await client(kind)).logEvents({ events: batch(kind) });
      answers[kind] = shape(res);
      stored[kind] = await storedRows(kind);
    }
    expect(answers["grpc"]).toEqual({
      outcomes: [
        ...[WriteOutcome.STORED, WriteOutcome.REJECTED, WriteOutcome.STORED, WriteOutcome.STORED, WriteOutcome.STORED, WriteOutcome.REJECTED, WriteOutcome.REJECTED],
        ...[WriteOutcome.REJECTED, WriteOutcome.REJECTED, WriteOutcome.REJECTED],
      ],
      hasIds: [true, false, true, true, true, false, false, false, false, false],
      violations: [
        [],
        [{ field: "events[1].error.error_message", description: "is required" }],
        [],
        [],
        [],
        [{ field: "events[5].kind", description: "exactly one event kind must be set" }],
        [{ field: "events[6].job_outcome.occurred_at", description: expect.any(String) }],
        [{ field: "events[7].error.error_message", description: "must not contain the NUL character (U+0000)" }],
        [{ field: "events[8].device_state_change.extra_data", description: "must not contain the NUL character (U+0000) in a key or string" }],
        [{ field: "events[9].job_outcome.retry_count", description: "must be at most 2147483647 (got 4294967295)" }],
      ],
      stored: 4,
      rejected: 6,
    });
    for (const kind of ["grpc-web", "connect-proto", "connect-json"]) expect(answers[kind], kind).toEqual(answers["grpc"]);
    const grpcRows = stored["grpc"] as Record<string, unknown[]>;
    expect(Object.values(grpcRows).map((r) => r.length)).toEqual([1, 1, 1, 1]);
    expect(grpcRows["states"]![0]).toMatchObject({
      new_state: "rebooting 😀",
      reason: "tab\there\nnewline \\ backslash",
      extra_data: { attempt: 2, region: "eu-west", tags: [1, "two", false] },
    });
    expect(grpcRows["errors"]![0]).toMatchObject({ context: { stack: ["a", "b"], nested: { ok: true, none: null, n: -1.25e-7 } }, error_code: "E-Ü" });
    for (const kind of ["grpc-web", "connect-proto", "connect-json"]) expect(stored[kind], kind).toEqual(stored["grpc"]);
  });

  it("rejects an item whose bytes are not an Event, and stores the items beside it", async () => {
    const token = await mintTestToken(t.server.config, "service");
    const good = (deviceId: string) =>
      toBinary(EventSchema, create(EventSchema, { kind: { case: "deviceStateChange", value: { deviceId, newState: "online" } } }));
    // Event.device_state_change (field 3) holding device_id (field 1) with invalid UTF-8 (0xC3 0x28).
    const badUtf8 = Uint8Array.from([0x1a, 0x06, 0x0a, 0x02, 0xc3, 0x28, 0x1a, 0x00]);
    // Event.device_state_change whose length runs past the item.
    const truncated = Uint8Array.from([0x1a, 0x40, 0x0a, 0x02, 0x61, 0x62]);
    const items = [good("d-undecodable-1"), badUtf8, truncated, good("d-undecodable-2")];
    const request = Buffer.concat(items.flatMap((item) => [Buffer.from([0x0a, item.length]), Buffer.from(item)]));

    const raw = new grpc.Client(new URL(t.server.url()).host, grpc.credentials.createInsecure());
    const metadata = new grpc.Metadata();
    metadata.set("authorization", `Bearer ${token}`);
    const answer = await new Promise<Buffer>((resolve, reject) =>
      raw.makeUnaryRequest(
        "/analytics.v1.AnalyticsService/LogEvents",
        (b: Buffer) => b,
        (b: Buffer) => b,
        request,
        metadata,
        (err, res) => (err ? reject(err) : resolve(res!)),
      ),
    );
    raw.close();
    const res = fromBinary(LogEventsResponseSchema, answer);
    expect(res.results.map((r) => r.outcome)).toEqual([WriteOutcome.STORED, WriteOutcome.REJECTED, WriteOutcome.REJECTED, WriteOutcome.STORED]);
    expect(res.results[1]!.violations).toEqual([
      expect.objectContaining({ field: "events[1]", description: expect.stringMatching(/^is not a valid analytics\.v1\.Event encoding: .*UTF-8/) }),
    ]);
    expect(res.results[2]!.violations[0]!.field).toBe("events[2]");
    expect([res.storedCount, res.rejectedCount]).toEqual([2, 2]);
    expect(await rows(`select device_id from device_state_history where device_id like 'd-undecodable-%' order by device_id`)).toEqual([
      { device_id: "d-undecodable-1" },
      { device_id: "d-undecodable-2" },
    ]);
  });

  it("applies the per-item authorisation rules on the fast path (a device writes only its own device id)", async () => {
    for (const kind of ["grpc", "connect-json"] as const) {
      const device = await client(kind, "device", `dev-auth-${kind}`);
      const res = await device.logEvents({
        events: [
          { kind: { case: "error", value: { deviceId: `dev-auth-${kind}`, errorMessage: "overheating" } } },
          { kind: { case: "error", value: { deviceId: "someone-else", errorMessage: "overheating" } } },
        ],
      });
      expect(res.results.map((r) => r.outcome), kind).toEqual([WriteOutcome.STORED, WriteOutcome.REJECTED]);
      expect(res.results[1]!.violations[0]!.field, kind).toBe("events[1].error.device_id");
      expect(res.results[1]!.violations[0]!.description, kind).toMatch(/^permission denied: /);
    }
  });

  it("stores a payload decoded straight to JSON text as jsonb stores the object (repeated keys, NaN, -0, merges, __proto__, escapes)", async () => {
    const token = await mintTestToken(t.server.config, "service");
    const ld = (no: number, ...parts: Uint8Array[]) => new BinaryWriter().tag(no, WireType.LengthDelimited).bytes(Buffer.concat(parts)).finish();
    const str = (no: number, s: string) => new BinaryWriter().tag(no, WireType.LengthDelimited).string(s).finish();
    const entry = (key: string, ...value: Uint8Array[]) => ld(1, str(1, key), ld(2, ...value));
    const text = (s: string) => str(3, s); // Value.string_value
    const number = (n: number) => new BinaryWriter().tag(2, WireType.Bit64).double(n).finish(); // Value.number_value
    const struct = (o: Record<string, string>) => Buffer.concat(Object.entries(o).map(([k, v]) => entry(k, text(v))));
    const payload = Buffer.concat([
      entry("k", text("first")),
      entry("nan", number(Number.NaN)),
      entry("nz", number(-0)),
      entry("__proto__", ld(5, struct({ polluted: "yes" }))),
      entry('q"\\', text('say "hi"\n\u0001 😀')),
      entry("k", text("last")),
    ]);
    // A Value's struct sent twice merges: that payload is decoded through the object instead.
    const merged = entry("merged", ld(5, struct({ a: "1" })), ld(5, struct({ b: "2" })));
    const deviceId = "d-json-text";
    // Event.device_state_change { device_id, new_state, extra_data }
    const event = (payload: Uint8Array) => ld(3, str(1, deviceId), str(3, "on"), ld(6, payload));
    const raw = new grpc.Client(new URL(t.server.url()).host, grpc.credentials.createInsecure());
    const metadata = new grpc.Metadata();
    metadata.set("authorization", `Bearer ${token}`);
    const answer = await new Promise<Buffer>((resolve, reject) =>
      raw.makeUnaryRequest("/analytics.v1.AnalyticsService/LogEvents", (b: Buffer) => b, (b: Buffer) => b, Buffer.concat([ld(1, event(payload)), ld(1, event(merged))]), metadata, (err, res) =>
        err ? reject(err) : resolve(res!),
      ),
    );
    raw.close();
    expect(fromBinary(LogEventsResponseSchema, answer).results.map((r) => r.outcome)).toEqual([WriteOutcome.STORED, WriteOutcome.STORED]);
    const [stored, second] = await rows<{ extra_data: Record<string, unknown>; text: string }>(
      `select extra_data, extra_data::text as text from device_state_history where device_id = ? order by (extra_data -> 'merged') is not null`,
      [deviceId],
    );
    expect(second!.extra_data).toEqual({ merged: { a: "1", b: "2" } });
    expect(stored!.extra_data).toEqual({ k: "last", nan: null, nz: 0, ["__proto__"]: { polluted: "yes" }, 'q"\\': 'say "hi"\n\u0001 😀' });
    expect(Object.getOwnPropertyDescriptor(JSON.parse(stored!.text), "__proto__")?.value).toEqual({ polluted: "yes" });
    expect(stored!.text).not.toContain('"first"');
  });

  it("stores a JSON payload's lone surrogates as U+FFFD on every path (as UTF-8 encoders do; jsonb refuses their escapes)", async () => {
    for (const kind of ["grpc", "connect-json"] as const) {
      const deviceId = `d-surrogate-${kind}`;
      const res = await (await client(kind)).logEvents({
        events: [{ kind: { case: "deviceStateChange", value: { deviceId, newState: "on", extraData: { "k\udc00": "v\ud83d", ok: "😀" } } } }],
      });
      expect(res.results.map((r) => r.outcome), kind).toEqual([WriteOutcome.STORED]);
      expect(await rows(`select extra_data from device_state_history where device_id = ?`, [deviceId]), kind).toEqual([
        { extra_data: { "k\ufffd": "v\ufffd", ok: "😀" } },
      ]);
    }
  });

  it("refuses empty and oversized batches the same way on both paths", async () => {
    const big = Array.from({ length: 501 }, () => ({ kind: { case: "deviceStateChange" as const, value: { deviceId: "d-big", newState: "s" } } }));
    for (const kind of ["grpc", "connect-json"] as const) {
      const c = await client(kind);
      await expect(c.logEvents({ events: [] }), kind).rejects.toMatchObject({ code: Code.InvalidArgument, rawMessage: "invalid request: events: must hold at least one event" });
      await expect(c.logEvents({ events: big }), kind).rejects.toMatchObject({
        code: Code.InvalidArgument,
        rawMessage: "invalid request: events: must hold at most 500 events (got 501)",
      });
    }
    expect(await rows(`select 1 from device_state_history where device_id = 'd-big'`)).toEqual([]);
  });

  it("is recorded by the request log as a gRPC call with its sizes and user", async () => {
    const res = await (await client("grpc")).logEvents({ events: batch("request-log") });
    expect(res.storedCount).toBe(4);
    const deadline = Date.now() + 5000;
    let logged: Record<string, unknown>[] = [];
    while (logged.length === 0 && Date.now() < deadline) {
      logged = await rows(`select * from api_request_logs where endpoint = ? and protocol = 'grpc'`, ["/analytics.v1.AnalyticsService/LogEvents"]);
      if (logged.length === 0) await new Promise((r) => setTimeout(r, 50));
    }
    expect(logged[0]).toMatchObject({ status_code: 0, http_status: 200, request_messages: 1, response_messages: 1, user_id: "test-service" });
    expect(logged[0]!.request_bytes as number).toBeGreaterThan(200);
    expect(logged[0]!.response_bytes as number).toBeGreaterThan(100);
  });
});
