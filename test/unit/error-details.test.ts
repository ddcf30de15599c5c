/**
 * The details errors carry for programs: a `google.rpc.BadRequest` with one violation per field
 * on every InvalidArgument about fields (the message unchanged), bounded so a detail echoing the
 * caller's text stays fit for a trailer; a `google.rpc.RetryInfo` beside the `retry-after-ms`
 * header; the refused batch of a device-metrics stream. Read back as a client reads them
 * (`findDetails`), also after a round trip through the error mask and the Connect protocol
 * (gRPC, grpc-js and buf curl: the end-to-end tests).
 */
import { create } from "@bufbuild/protobuf";
import { durationMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createRouterTransport, createClient } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { RefusedBatchSchema } from "../../sdk/src/gen/analytics/v1/error_details_pb.js";
import { BadRequestSchema, RetryInfoSchema } from "../../sdk/src/gen/google/rpc/error_details_pb.js";
import { Health, HealthCheckRequestSchema } from "../../sdk/src/gen/grpc/health/v1/health_pb.js";
import {
  badRequest,
  MAX_VIOLATION_DESCRIPTION_CHARS,
  MAX_VIOLATION_FIELD_CHARS,
  MAX_VIOLATIONS_CHARS,
  refusedBatch,
  resourceExhausted,
  RETRY_AFTER_HEADER,
  wellFormedText,
} from "../../src/errors/error-details.js";
import { createErrorMaskInterceptor } from "../../src/server/error-mask-interceptor.js";
import { invalidArgument } from "../../src/validation/field-rules.js";
import { rpcError } from "../support/rpc-error.js";

const violationsOf = (err: ConnectError) => err.findDetails(BadRequestSchema).flatMap((b) => b.fieldViolations.map((v) => ({ field: v.field, description: v.description })));

describe("invalidArgument", () => {
  it("keeps its message and adds one BadRequest field violation per field, in order", () => {
    const violations = [
      { field: "job_id", description: "is required" },
      { field: "events[3].error.context", description: "must encode to at most 65536 bytes of JSON (got 70000)" },
    ];
    const err = invalidArgument(violations);
    expect(err.code).toBe(Code.InvalidArgument);
    expect(err.rawMessage).toBe("invalid request: job_id: is required; events[3].error.context: must encode to at most 65536 bytes of JSON (got 70000)");
    expect(err.findDetails(BadRequestSchema)).toHaveLength(1);
    expect(violationsOf(err)).toEqual(violations);
  });

  it("appends context to the message and more details after the BadRequest", () => {
    const err = invalidArgument([{ field: "device_id", description: "is required" }], { context: " (batch sequence 7)", details: [refusedBatch(7n)] });
    expect(err.rawMessage).toBe("invalid request: device_id: is required (batch sequence 7)");
    expect(violationsOf(err)).toEqual([{ field: "device_id", description: "is required" }]);
    expect(err.findDetails(RefusedBatchSchema).map((d) => d.sequence)).toEqual([7n]);
  });
});

describe("badRequest", () => {
  const violationsIn = (detail: ReturnType<typeof badRequest>) => create(BadRequestSchema, detail.value as never).fieldViolations;

  it("cuts a field path or description echoing the caller's text, well-formed, with an ellipsis", () => {
    const [v] = violationsIn(badRequest([{ field: `metrics.${"f".repeat(5000)}`, description: `names "${"\u{1F600}".repeat(5000)}" more than once` }]));
    expect(v!.field.length).toBeLessThanOrEqual(MAX_VIOLATION_FIELD_CHARS);
    expect(v!.description.length).toBeLessThanOrEqual(MAX_VIOLATION_DESCRIPTION_CHARS);
    expect(v!.field.endsWith("…")).toBe(true);
    expect(v!.description.startsWith('names "\u{1F600}')).toBe(true);
    expect(v!.description.endsWith("…")).toBe(true);
    expect(v!.description.isWellFormed()).toBe(true);
  });

  it("replaces a lone surrogate", () => {
    expect(violationsIn(badRequest([{ field: "device_id", description: 'must stay "\ud86d"' }]))).toMatchObject([{ description: 'must stay "\ufffd"' }]);
  });

  it("leaves out violations past its character budget, never the first", () => {
    const many = Array.from({ length: 50 }, (_, i) => ({ field: `samples[${i}].values`, description: "x".repeat(300) }));
    const kept = violationsIn(badRequest(many));
    expect(kept.length).toBeGreaterThan(1);
    expect(kept.length).toBeLessThan(50);
    expect(kept.reduce((n, v) => n + v.field.length + v.description.length, 0)).toBeLessThanOrEqual(MAX_VIOLATIONS_CHARS);
    expect(kept.map((v) => v.field)).toEqual(many.slice(0, kept.length).map((v) => v.field));
    const huge = violationsIn(badRequest([{ field: "a", description: "y".repeat(10_000) }, { field: "b", description: "z".repeat(10_000) }]));
    expect(huge.map((v) => v.field)).toEqual(["a", "b"]);
    const wide = violationsIn(badRequest(Array.from({ length: 20 }, () => ({ field: "f".repeat(1000), description: "d".repeat(1000) }))));
    expect(wide.length).toBe(3); // 600 characters each once cut
  });

  it("wellFormedText leaves a short text as it is", () => {
    expect(wellFormedText("fine", 10)).toBe("fine");
    expect(wellFormedText("0123456789abc", 10)).toBe("012345678…");
  });
});

describe("resourceExhausted", () => {
  it("carries the wait as RetryInfo and in the retry-after-ms header", () => {
    const err = resourceExhausted("write buffer is full (10 rows buffered); retry after 1500 ms", 1500);
    expect(err.code).toBe(Code.ResourceExhausted);
    expect(err.rawMessage).toBe("write buffer is full (10 rows buffered); retry after 1500 ms");
    expect(err.metadata.get(RETRY_AFTER_HEADER)).toBe("1500");
    const [info] = err.findDetails(RetryInfoSchema);
    expect(info?.retryDelay).toMatchObject({ seconds: 1n, nanos: 500_000_000 });
  });

  it("rounds a fractional wait up, and never asks for a negative one", () => {
    expect(durationMs(resourceExhausted("x", 0.2).findDetails(RetryInfoSchema)[0]!.retryDelay!)).toBe(1);
    expect(resourceExhausted("x", 0.2).metadata.get(RETRY_AFTER_HEADER)).toBe("1");
    expect(durationMs(resourceExhausted("x", -5).findDetails(RetryInfoSchema)[0]!.retryDelay!)).toBe(0);
  });
});

describe("over the wire", () => {
  const quiet = { error() {}, warn() {}, info() {}, debug() {} } as never;

  it("reaches a Connect client through the error mask, details readable with findDetails", async () => {
    const thrown = [
      invalidArgument([{ field: "service", description: "is not served here" }], { context: " (batch sequence 3)", details: [refusedBatch(3n)] }),
      resourceExhausted("rate limit exceeded: retry in 250 ms", 250),
    ];
    let call = 0;
    const transport = createRouterTransport(
      ({ service }) =>
        service(Health, {
          check() {
            throw thrown[call++]!;
          },
        }),
      { router: { interceptors: [createErrorMaskInterceptor({ log: quiet })] } },
    );
    const client = createClient(Health, transport);
    const bad = await rpcError(client.check(create(HealthCheckRequestSchema)));
    expect(bad.code).toBe(Code.InvalidArgument);
    expect(bad.rawMessage).toBe("invalid request: service: is not served here (batch sequence 3)");
    expect(violationsOf(bad)).toEqual([{ field: "service", description: "is not served here" }]);
    expect(bad.findDetails(RefusedBatchSchema)[0]?.sequence).toBe(3n);
    const limited = await rpcError(client.check({}));
    expect(limited.code).toBe(Code.ResourceExhausted);
    expect(durationMs(limited.findDetails(RetryInfoSchema)[0]!.retryDelay!)).toBe(250);
  });

  it("masks an unexpected failure without any of its details", async () => {
    const transport = createRouterTransport(
      ({ service }) =>
        service(Health, {
          check() {
            // Not deliberate (Unknown): whatever it carries is nothing the client should see.
            throw new ConnectError("select * from secrets failed", Code.Unknown, undefined, [badRequest([{ field: "sql", description: "select * from secrets" }])]);
          },
        }),
      { router: { interceptors: [createErrorMaskInterceptor({ log: quiet })] } },
    );
    const err = await rpcError(createClient(Health, transport).check({}));
    expect(err.code).toBe(Code.Internal);
    expect(err.details).toEqual([]);
    expect(err.rawMessage).toMatch(/^internal error \(correlation id [0-9a-f-]{36}\)$/);
  });
});
