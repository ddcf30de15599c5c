/**
 * The 64-bit rule of proto/README.md ("Style") and the plain answers that apply it: every 64-bit
 * integer a MetricsService answer carries is marked `jstype = JS_NUMBER` (else `Plain` would
 * promise a number the SDK does not give), identifiers chosen by the other side are not, and
 * `toPlain` turns marked fields into numbers and timestamps into dates.
 */
import { create, ScalarType, type DescMessage } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { StreamDeviceMetricsResponseSchema } from "../src/gen/analytics/v1/analytics_service_pb.js";
import { GetErrorTrendsResponseSchema, GetJobOutcomesResponseSchema, MetricsService } from "../src/gen/analytics/v1/metrics_service_pb.js";
import { ErrorCategory, JobStatus, Severity } from "../src/index.js";
import { isNumberField, toPlain } from "../src/plain-answer.js";

const INT64 = new Set([ScalarType.INT64, ScalarType.UINT64, ScalarType.SINT64, ScalarType.FIXED64, ScalarType.SFIXED64]);

/** `Message.field` of every 64-bit integer field reachable from `desc`, Timestamp's own aside. */
function int64Fields(desc: DescMessage, seen = new Set<string>()): { path: string; marked: boolean }[] {
  if (seen.has(desc.typeName) || desc.typeName === "google.protobuf.Timestamp") return [];
  seen.add(desc.typeName);
  return desc.fields.flatMap((f) => {
    const scalar = f.fieldKind === "scalar" ? f.scalar : (f.fieldKind === "list" && f.listKind === "scalar") || (f.fieldKind === "map" && f.mapKind === "scalar") ? f.scalar : undefined;
    const message = f.fieldKind === "message" || (f.fieldKind === "list" && f.listKind === "message") || (f.fieldKind === "map" && f.mapKind === "message") ? f.message : undefined;
    if (message) return int64Fields(message, seen);
    return scalar !== undefined && INT64.has(scalar) ? [{ path: `${desc.name}.${f.name}`, marked: isNumberField(f) }] : [];
  });
}

describe("the 64-bit rule", () => {
  it("marks every 64-bit integer of every MetricsService answer jstype = JS_NUMBER", () => {
    const fields = MetricsService.methods.flatMap((m) => int64Fields(m.output));
    expect(fields.length).toBeGreaterThanOrEqual(7);
    expect(fields.filter((f) => !f.marked).map((f) => f.path)).toEqual([]);
  });

  it("leaves the device stream's sequence (chosen by the device, echoed back) a full uint64", () => {
    expect(int64Fields(StreamDeviceMetricsResponseSchema)).toEqual([{ path: "StreamDeviceMetricsResponse.sequence", marked: false }]);
  });
});

describe("toPlain", () => {
  it("gives marked counts as numbers, timestamps as dates, and no $typeName: JSON.stringify works", () => {
    const start = Date.UTC(2026, 11, 7, 9, 0, 0, 250);
    const answer = create(GetJobOutcomesResponseSchema, {
      window: { start: timestampFromMs(start), end: timestampFromMs(start + 3_600_000) },
      jobTypes: [{ jobType: "backup", total: 3n, successRate: 2 / 3, statuses: [{ status: JobStatus.SUCCESS, count: 2n, avgDurationMs: 0 }, { status: JobStatus.FAILED, count: 1n }] }],
    });
    expect(() => JSON.stringify(answer)).toThrow(TypeError);
    const plain = toPlain(GetJobOutcomesResponseSchema, answer);
    expect(plain).toEqual({
      window: { start: new Date(start), end: new Date(start + 3_600_000) },
      jobTypes: [{ jobType: "backup", total: 3, successRate: 2 / 3, statuses: [{ status: JobStatus.SUCCESS, count: 2, avgDurationMs: 0 }, { status: JobStatus.FAILED, count: 1 }] }],
    });
    // An absent optional stays absent (0 is a real average, absent is none).
    expect("avgDurationMs" in plain.jobTypes[0]!.statuses[1]!).toBe(false);
    expect(JSON.parse(JSON.stringify(plain))).toEqual({
      window: { start: "2026-12-07T09:00:00.250Z", end: "2026-12-07T10:00:00.250Z" },
      jobTypes: [{ jobType: "backup", total: 3, successRate: 2 / 3, statuses: [{ status: JobStatus.SUCCESS, count: 2, avgDurationMs: 0 }, { status: JobStatus.FAILED, count: 1 }] }],
    });
  });

  it("converts counts inside repeated messages (error trends)", () => {
    const hour = Date.UTC(2026, 11, 7, 9);
    const answer = create(GetErrorTrendsResponseSchema, {
      total: 5n,
      counts: [{ category: ErrorCategory.DEVICE, severity: Severity.CRITICAL, count: 5n }],
      timeline: [{ hourStart: timestampFromMs(hour), count: 5n }],
    });
    expect(JSON.parse(JSON.stringify(toPlain(GetErrorTrendsResponseSchema, answer)))).toEqual({
      total: 5,
      counts: [{ category: ErrorCategory.DEVICE, severity: Severity.CRITICAL, count: 5 }],
      timeline: [{ hourStart: "2026-12-07T09:00:00.000Z", count: 5 }],
    });
  });
});
