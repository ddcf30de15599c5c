/**
 * Who shares a de-duplicated error, through the real server and database: devices and services
 * report into one group per device, code and message; what a `user` token reports is grouped
 * apart, per user, so it neither counts on nor learns the id or count of anyone else's error,
 * by LogError, by LogEvents (binary fast path and Connect JSON), or by reusing an event_id.
 */
import { createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { describe, expect, it } from "vitest";
import { AnalyticsService } from "../../sdk/src/gen/analytics/v1/analytics_service_pb.js";
import { ErrorCategory, WriteOutcome } from "../../sdk/src/gen/analytics/v1/common_pb.js";
import type { Role } from "../../src/auth/principal.js";
import { bearer, mintTestToken } from "../support/auth.js";
import { useTestServer } from "../support/test-server.js";

const app = useTestServer();

async function clientAs(role: Role, subject: string, kind: "grpc" | "connect-json" = "grpc"): Promise<Client<typeof AnalyticsService>> {
  const token = await mintTestToken(app.server.config, role, subject);
  const options = { baseUrl: app.server.url(), interceptors: [bearer(token)] };
  const transport =
    kind === "grpc" ? createGrpcTransport(options) : createConnectTransport({ ...options, httpVersion: "1.1", useBinaryFormat: false });
  return createClient(AnalyticsService, transport);
}

/** Stored groups of a device: the reporter (`user_id`, the first report's principal) and count. */
async function groups(deviceId: string): Promise<{ id: string; user_id: string; occurrence_count: number }[]> {
  return app.rows(`select id, user_id, occurrence_count from error_logs where device_id = ? order by user_id`, [deviceId]);
}

describe("error groups by reporter", () => {
  it("keeps a user's report of a device's error out of the device's group, and two users apart", async () => {
    const deviceId = "dev-grp-1";
    const report = { category: ErrorCategory.DEVICE, deviceId, errorCode: "E_FAN", errorMessage: "fan stalled" };
    const device = await clientAs("device", deviceId);
    const service = await clientAs("service", "gateway");
    const alice = await clientAs("user", "alice");
    const bob = await clientAs("user", "bob");

    const fromDevice = await device.logError(report);
    expect(fromDevice).toMatchObject({ outcome: WriteOutcome.STORED, occurrenceCount: 1 });
    // Devices and services share groups, as before.
    expect(await service.logError(report)).toMatchObject({ id: fromDevice.id, outcome: WriteOutcome.DEDUPLICATED, occurrenceCount: 2 });

    // The user's identical report starts its own group: no id, no count of the device's.
    const fromAlice = await alice.logError(report);
    expect(fromAlice).toMatchObject({ outcome: WriteOutcome.STORED, occurrenceCount: 1 });
    expect(fromAlice.id).not.toBe(fromDevice.id);
    expect(await alice.logError(report)).toMatchObject({ id: fromAlice.id, outcome: WriteOutcome.DEDUPLICATED, occurrenceCount: 2 });

    const fromBob = await bob.logError(report);
    expect(fromBob).toMatchObject({ outcome: WriteOutcome.STORED, occurrenceCount: 1 });
    expect([fromDevice.id, fromAlice.id]).not.toContain(fromBob.id);

    // The device's group counted only the device and the service.
    expect(await device.logError(report)).toMatchObject({ id: fromDevice.id, outcome: WriteOutcome.DEDUPLICATED, occurrenceCount: 3 });
    expect(await groups(deviceId)).toEqual([
      { id: fromAlice.id, user_id: "alice", occurrence_count: 2 },
      { id: fromBob.id, user_id: "bob", occurrence_count: 1 },
      { id: fromDevice.id, user_id: deviceId, occurrence_count: 3 },
    ]);
  });

  it.each(["grpc", "connect-json"] as const)("applies the same rule to errors inside LogEvents (%s)", async (kind) => {
    const deviceId = `dev-grp-events-${kind}`;
    const report = { category: ErrorCategory.DEVICE, deviceId, errorCode: "E_DISK", errorMessage: "disk full" };
    const device = await clientAs("device", deviceId, kind);
    const user = await clientAs("user", `carol-${kind}`, kind);
    const first = await device.logEvents({ events: [{ kind: { case: "error", value: report } }] });
    expect(first.results[0]).toMatchObject({ outcome: WriteOutcome.STORED });
    const deviceGroup = first.results[0]!.id;

    const mixed = await user.logEvents({
      events: [{ kind: { case: "error", value: report } }, { kind: { case: "error", value: report } }],
    });
    expect(mixed.results.map((r) => r.outcome)).toEqual([WriteOutcome.STORED, WriteOutcome.DEDUPLICATED]);
    expect(mixed.results[0]!.id).not.toBe(deviceGroup);
    expect(mixed.results[1]!.id).toBe(mixed.results[0]!.id);

    const again = await device.logEvents({ events: [{ kind: { case: "error", value: report } }] });
    expect(again.results[0]).toMatchObject({ outcome: WriteOutcome.DEDUPLICATED, id: deviceGroup });
    expect((await groups(deviceId)).map((g) => g.occurrence_count).sort()).toEqual([2, 2]);
  });

  it("does not answer a user's report with another reporter's group when it reuses that report's event_id", async () => {
    const deviceId = "dev-grp-event-id";
    const eventId = crypto.randomUUID();
    const report = { category: ErrorCategory.DEVICE, deviceId, errorCode: "E_PSU", errorMessage: "power supply failed", eventId };
    const device = await clientAs("device", deviceId);
    const mallory = await clientAs("user", "mallory");
    const fromDevice = await device.logError(report);
    expect(fromDevice).toMatchObject({ outcome: WriteOutcome.STORED, occurrenceCount: 1 });
    // A retry by the device itself is still answered from its receipt.
    expect(await device.logError(report)).toMatchObject({ id: fromDevice.id, outcome: WriteOutcome.REPLAYED, occurrenceCount: 1 });

    const replayed = await mallory.logError(report);
    expect(replayed.id).not.toBe(fromDevice.id);
    expect(replayed).toMatchObject({ outcome: WriteOutcome.STORED, occurrenceCount: 1 });
    const stored = await groups(deviceId);
    expect(stored).toEqual([
      { id: fromDevice.id, user_id: deviceId, occurrence_count: 1 },
      { id: replayed.id, user_id: "mallory", occurrence_count: 1 },
    ]);
  });
});
