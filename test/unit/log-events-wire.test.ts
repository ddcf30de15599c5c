import { describe, expect, it } from "vitest";
import { create, fromBinary, ScalarType, toBinary } from "@bufbuild/protobuf";
import { encodeLogEventsResponse, isBinaryLogEventsRequest, logEventsResponseWire, logEventsWireMethod } from "../../src/wire/log-events-wire.js";
import { compileDecoder } from "../../src/wire/message-decoder.js";
import {
  AnalyticsService,
  EventResultSchema,
  EventSchema,
  LogEventsRequestSchema,
  LogEventsResponseSchema,
  type EventResult,
} from "../../sdk/src/gen/analytics/v1/analytics_service_pb.js";
import { ActivityType, JobStatus, WriteOutcome } from "../../sdk/src/gen/analytics/v1/common_pb.js";
import { seededRandom } from "../support/seeded-random.js";

const SEEDS = [1, 2, 3, 42, 20_260_101];
const OUTCOMES = [WriteOutcome.UNSPECIFIED, WriteOutcome.STORED, WriteOutcome.REPLAYED, WriteOutcome.DEDUPLICATED, WriteOutcome.REJECTED];

/**
 * Random results. `wellFormed` leaves out what protobuf-es does not read back as written (a lone
 * surrogate is sent as U+FFFD, a leading byte order mark is dropped), for tests comparing with the
 * original message rather than with bytes.
 */
function randomResult(random: () => number, wellFormed = false): EventResult {
  const int = (n: number) => Math.floor(random() * n);
  const pick = <T>(items: readonly T[]): T => items[int(items.length)]!;
  const pieces = ["a", "Z", "-", "é", "✓", "日本語", "😀", "\u0000", "\n", "\uFFFD", ...(wellFormed ? [] : ["\uD800", "\uDFFF", "\uFEFF"])];
  const text = (max: number) => Array.from({ length: int(max) }, () => pick(pieces)).join("");
  const description = (): string => {
    const r = random();
    if (r < 0.15) return "";
    if (r < 0.3) return "x".repeat(pick([126, 127, 128, 129, 16_382, 16_383, 16_384])); // around the varint steps
    if (r < 0.4) return "é".repeat(64 + int(10)) + text(3); // > 127 bytes
    if (r < 0.45) return "✓".repeat(5_461 + int(10)) + text(3); // > 16 383 bytes
    return text(12);
  };
  return create(EventResultSchema, {
    outcome: random() < 0.9 ? pick(OUTCOMES) : (pick([5, 127, 128, 16_384, 2 ** 31 - 1]) as WriteOutcome), // unknown values as well
    id: random() < 0.3 ? "" : random() < 0.5 ? "0198c6f2-7d3a-7c1e-9a51-3b0f5f8e2a10" : text(40),
    violations: Array.from({ length: int(4) }, () => ({ field: random() < 0.2 ? "" : text(6), description: description() })),
  });
}

/** Same bytes, naming the first difference when they are not (a 16 KB hex diff helps nobody). */
function expectSameBytes(actual: Uint8Array, expected: Uint8Array): void {
  let first = 0;
  while (first < actual.length && first < expected.length && actual[first] === expected[first]) first++;
  expect({ length: actual.length, firstDifference: first }).toEqual({ length: expected.length, firstDifference: expected.length });
}

/** `encodeLogEventsResponse` of `results` beside what protobuf-es writes for the same response. */
function bothEncodings(results: EventResult[], storedCount = 0, rejectedCount = 0): { ours: Uint8Array; protobufEs: Uint8Array } {
  return {
    ours: encodeLogEventsResponse(results, storedCount, rejectedCount),
    protobufEs: toBinary(LogEventsResponseSchema, create(LogEventsResponseSchema, { results, storedCount, rejectedCount })),
  };
}

/** Asserts that `results` encode as protobuf-es encodes them; returns our encoding. */
function expectEncodedAsProtobufEs(results: EventResult[], storedCount = 0, rejectedCount = 0): Uint8Array {
  const { ours, protobufEs } = bothEncodings(results, storedCount, rejectedCount);
  expectSameBytes(ours, protobufEs);
  return ours;
}

describe("encodeLogEventsResponse", () => {
  it("writes exactly the bytes of toBinary(LogEventsResponseSchema, response) for random results", () => {
    const seen = new Set<number>();
    let results = 0;
    for (const seed of SEEDS) {
      const random = seededRandom(seed);
      for (let n = 0; n < 200; n++) {
        const batch = Array.from({ length: Math.floor(random() * 8) }, () => randomResult(random));
        for (const r of batch) seen.add(r.outcome);
        expectEncodedAsProtobufEs(batch, Math.floor(random() * 600), random() < 0.5 ? 0 : Math.floor(random() * 70_000));
        results += batch.length;
      }
    }
    expect(results).toBeGreaterThan(3_000);
    for (const outcome of OUTCOMES) expect(seen).toContain(outcome);
  });

  it("writes the boundary cases: no results, an empty result, empty violations, every outcome alone", () => {
    expect(encodeLogEventsResponse([], 0, 0).length).toBe(0);
    expectEncodedAsProtobufEs([], 300, 70_000);
    expectEncodedAsProtobufEs([], 2 ** 32 - 1, 0);
    // An empty result is still one (tag 0x0a, length 0): the list keeps its length.
    expect(Buffer.from(expectEncodedAsProtobufEs([create(EventResultSchema)])).toString("hex")).toBe("0a00");
    for (const outcome of OUTCOMES) expectEncodedAsProtobufEs([create(EventResultSchema, { outcome })], 1);
    const emptyViolations = create(EventResultSchema, { outcome: WriteOutcome.REJECTED, violations: [{}, { field: "f" }, { description: "d" }] });
    // An empty violation is still one (tag 0x1a, length 0).
    expect(Buffer.from(expectEncodedAsProtobufEs([emptyViolations])).toString("hex")).toBe("0a0e08041a001a030a01661a03120164");
    const stored = create(EventResultSchema, { outcome: WriteOutcome.STORED, id: "é" });
    expect(Buffer.from(expectEncodedAsProtobufEs([stored], 1)).toString("hex")).toBe("0a0608011202c3a91001");
  });

  it("writes multi-byte lengths: a description over 127, over 16 383 and over 2 097 151 bytes", () => {
    for (const length of [127, 128, 16_383, 16_384, 16_400, 2_097_151, 2_097_152, 2_100_000]) {
      const result = create(EventResultSchema, {
        outcome: WriteOutcome.REJECTED,
        id: "i".repeat(length % 300),
        violations: [{ field: "error_message", description: "d".repeat(length) }, { field: "é".repeat(length >> 4), description: "" }],
      });
      const encoded = expectEncodedAsProtobufEs([result, result], 0, 2);
      expect(fromBinary(LogEventsResponseSchema, encoded).results).toEqual([result, result]);
    }
  });

  it("writes an unknown negative outcome as toBinary does: sign-extended to a 10-byte varint", () => {
    for (const outcome of [-1, -2, -128, -(2 ** 31)]) {
      const result = create(EventResultSchema, { outcome: outcome as WriteOutcome, id: "x", violations: [{ field: "f" }] });
      const encoded = expectEncodedAsProtobufEs([result]);
      expect(fromBinary(LogEventsResponseSchema, encoded).results[0]!.outcome).toBe(outcome);
    }
    expect(Buffer.from(encodeLogEventsResponse([create(EventResultSchema, { outcome: -1 as WriteOutcome })], 0, 0)).toString("hex")).toBe("0a0b08ffffffffffffffffff01");
  });

  it("writes a lone surrogate as U+FFFD, as toBinary does, in short and long text", () => {
    for (const pad of ["", "p".repeat(70)]) {
      const result = create(EventResultSchema, { id: `a\uD800b${pad}`, violations: [{ field: "\uDC00", description: `x\uD83D${pad}` }] });
      const encoded = expectEncodedAsProtobufEs([result]);
      expect(fromBinary(LogEventsResponseSchema, encoded).results[0]!.id).toBe(`a\uFFFDb${pad}`);
    }
  });
});

describe("the LogEvents wire types", () => {
  it("a LogEventsResponseWire of an encoded response is written as exactly that encoding", () => {
    for (const seed of SEEDS) {
      const random = seededRandom(seed * 3);
      for (let n = 0; n < 40; n++) {
        const results = Array.from({ length: Math.floor(random() * 30) }, () => randomResult(random, true));
        const storedCount = results.filter((r) => r.outcome !== WriteOutcome.REJECTED).length;
        const rejectedCount = results.length - storedCount;
        const encoded = encodeLogEventsResponse(results, storedCount, rejectedCount);
        // As Connect writes an answer: toBinary of the method's output type, default options.
        const wire = toBinary(logEventsWireMethod.output, logEventsResponseWire(encoded));
        expectSameBytes(wire, encoded);
        const response = fromBinary(LogEventsResponseSchema, wire);
        expect(response).toEqual(create(LogEventsResponseSchema, { results, storedCount, rejectedCount }));
        expect(response.results).toHaveLength(results.length);
      }
    }
    // Counts alone (the first field written is then a count), and nothing at all.
    for (const [stored, rejected] of [[300, 70_000], [0, 5], [7, 0]] as const) {
      const encoded = encodeLogEventsResponse([], stored, rejected);
      expectSameBytes(toBinary(logEventsWireMethod.output, logEventsResponseWire(encoded)), encoded);
      expect(fromBinary(LogEventsResponseSchema, encoded)).toEqual(create(LogEventsResponseSchema, { storedCount: stored, rejectedCount: rejected }));
    }
    expect(toBinary(logEventsWireMethod.output, logEventsResponseWire(new Uint8Array(0)))).toEqual(new Uint8Array(0));
  });

  it("a LogEventsRequest read as LogEventsRequestWire holds each event's own encoding", () => {
    const decodeEvent = compileDecoder(EventSchema);
    for (const seed of SEEDS) {
      const random = seededRandom(seed * 5);
      const int = (n: number) => Math.floor(random() * n);
      for (let n = 0; n < 40; n++) {
        const events = Array.from({ length: 1 + int(20) }, (_, i) => {
          switch (int(5)) {
            case 0:
              return create(EventSchema, { kind: { case: "userActivity", value: { activityType: ActivityType.CLICK, pageUrl: `/p/${i}/é`, durationMs: int(3) === 0 ? undefined : int(1e6), extraData: { i, s: "😀", l: [null, true] } } } });
            case 1:
              return create(EventSchema, { kind: { case: "error", value: { errorMessage: "x".repeat(int(300)), context: {}, occurredAt: { seconds: BigInt(int(2e9)) - 1_000_000_000n, nanos: int(1e9) } } } });
            case 2:
              return create(EventSchema, { kind: { case: "deviceStateChange", value: { deviceId: `d${i}`, newState: "online" } } });
            case 3:
              return create(EventSchema, { kind: { case: "jobOutcome", value: { jobId: "j", status: JobStatus.SUCCESS, retryCount: int(5) } } });
            default:
              return create(EventSchema); // an empty event: a zero-length item
          }
        });
        const request = create(LogEventsRequestSchema, { events });
        const bytes = toBinary(LogEventsRequestSchema, request);
        const wire = fromBinary(logEventsWireMethod.input, bytes);
        expect(wire.$typeName).toBe("analytics.internal.LogEventsRequestWire");
        expect(wire.events).toHaveLength(events.length);
        wire.events.forEach((item, i) => {
          expect(item).toEqual(toBinary(EventSchema, events[i]!));
          expect(decodeEvent(item)).toEqual(events[i]);
        });
        // And back: the items written as bytes are the request's encoding.
        expect(toBinary(logEventsWireMethod.input, create(logEventsWireMethod.input, { events: wire.events }))).toEqual(bytes);
      }
    }
    expect(fromBinary(logEventsWireMethod.input, new Uint8Array(0)).events).toEqual([]);
  });

  it("declares the same field numbers as the messages they stand for, as bytes (and uint32 counts)", () => {
    const shape = (fields: readonly { number: number; name: string }[]) => fields.map((f) => [f.number, f.name]);
    expect(shape(logEventsWireMethod.input.fields)).toEqual(shape(LogEventsRequestSchema.fields));
    expect(shape(logEventsWireMethod.output.fields)).toEqual(shape(LogEventsResponseSchema.fields));
    for (const f of [logEventsWireMethod.input.fields[0]!, logEventsWireMethod.output.fields[0]!]) {
      expect(f.fieldKind === "list" && f.listKind === "scalar" && f.scalar).toBe(ScalarType.BYTES);
    }
    for (const f of logEventsWireMethod.output.fields.slice(1)) expect(f.fieldKind === "scalar" && f.scalar).toBe(ScalarType.UINT32);
    expect(logEventsWireMethod.input.typeName).toBe("analytics.internal.LogEventsRequestWire");
    expect(logEventsWireMethod.output.typeName).toBe("analytics.internal.LogEventsResponseWire");
  });

  it("logEventsWireMethod is AnalyticsService.LogEvents (name, service, kind), and leaves the original alone", () => {
    const original = AnalyticsService.method.logEvents;
    expect(logEventsWireMethod.name).toBe("LogEvents");
    expect(logEventsWireMethod.name).toBe(original.name);
    expect(logEventsWireMethod.localName).toBe(original.localName);
    expect(logEventsWireMethod.parent).toBe(AnalyticsService);
    expect(logEventsWireMethod.parent.typeName).toBe("analytics.v1.AnalyticsService");
    expect(logEventsWireMethod.methodKind).toBe("unary");
    expect(logEventsWireMethod.methodKind).toBe(original.methodKind);
    expect(logEventsWireMethod.kind).toBe(original.kind);
    expect(logEventsWireMethod.idempotency).toBe(original.idempotency);
    expect(original.input).toBe(LogEventsRequestSchema);
    expect(original.output).toBe(LogEventsResponseSchema);
  });
});

describe("isBinaryLogEventsRequest", () => {
  const PATH = "/analytics.v1.AnalyticsService/LogEvents";

  it("is true for a POST to LogEvents in gRPC, gRPC-Web or Connect binary, with parameters and in any case", () => {
    const binary = ["application/grpc", "application/grpc+proto", "application/grpc-web", "application/grpc-web+proto", "application/proto"];
    for (const type of binary) {
      for (const contentType of [type, `${type}; charset=utf-8`, `${type};charset=utf-8`, `${type} ; charset=UTF-8`, type.toUpperCase(), `${type.replace("application", "Application")}; Charset=utf-8`]) {
        expect(isBinaryLogEventsRequest("POST", PATH, contentType), contentType).toBe(true);
      }
    }
  });

  it("is false for JSON encodings, other methods, other paths, a query string or no content type", () => {
    const json = ["application/json", "application/grpc+json", "application/grpc-web+json", "application/connect+json", "application/json; charset=utf-8", "APPLICATION/GRPC+JSON"];
    for (const contentType of json) expect(isBinaryLogEventsRequest("POST", PATH, contentType), contentType).toBe(false);
    expect(isBinaryLogEventsRequest("GET", PATH, "application/proto")).toBe(false);
    expect(isBinaryLogEventsRequest("PUT", PATH, "application/proto")).toBe(false);
    expect(isBinaryLogEventsRequest(undefined, PATH, "application/proto")).toBe(false);
    for (const url of [
      "/analytics.v1.AnalyticsService/LogError",
      "/analytics.v1.AnalyticsService/LogEvents/",
      "/analytics.v1.AnalyticsService/logevents",
      "/analytics.v1.MetricsService/LogEvents",
      "/prefix/analytics.v1.AnalyticsService/LogEvents",
      `${PATH}?encoding=proto`,
      "",
      undefined,
    ]) {
      expect(isBinaryLogEventsRequest("POST", url, "application/grpc"), String(url)).toBe(false);
    }
    expect(isBinaryLogEventsRequest("POST", PATH, undefined)).toBe(false);
    expect(isBinaryLogEventsRequest("POST", PATH, "")).toBe(false);
    // Look-alikes of the binary types.
    for (const contentType of ["application/grpcx", "application/grpc-webx", "application/proto2", "text/proto", "x-application/proto", "application/grpc+proto+json"]) {
      expect(isBinaryLogEventsRequest("POST", PATH, contentType), contentType).toBe(false);
    }
  });
});
