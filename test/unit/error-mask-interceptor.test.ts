/**
 * The error mask passes deliberate errors on with a message fit for a gRPC trailer: well-formed
 * (Connect's `encodeURIComponent` of `grpc-message` throws on a lone surrogate, which left the
 * call unanswered) and capped, code, metadata, details and cause kept.
 */
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type UnaryRequest } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { HealthCheckRequestSchema, Health } from "../../sdk/src/gen/grpc/health/v1/health_pb.js";
import { createErrorMaskInterceptor, MAX_ERROR_MESSAGE_CHARS, wellFormedMessage } from "../../src/server/error-mask-interceptor.js";

const quiet = { error() {}, warn() {}, info() {}, debug() {} } as never;

/** What the interceptor makes of `thrown`. */
async function masked(thrown: unknown): Promise<ConnectError> {
  const interceptor = createErrorMaskInterceptor({ log: quiet });
  const req = { stream: false, service: Health, method: Health.method.check, message: create(HealthCheckRequestSchema) } as unknown as UnaryRequest;
  try {
    await interceptor(async () => {
      throw thrown;
    })(req);
  } catch (err) {
    return err as ConnectError;
  }
  throw new Error("no error");
}

describe("createErrorMaskInterceptor: messages", () => {
  it("replaces a lone surrogate (which encodeURIComponent refuses)", async () => {
    const err = await masked(new ConnectError(`bad value "\ud86d" here`, Code.InvalidArgument));
    expect(err.code).toBe(Code.InvalidArgument);
    expect(err.rawMessage).toBe(`bad value "\ufffd" here`);
    expect(() => encodeURIComponent(err.rawMessage)).not.toThrow();
  });

  it("caps a message echoing unbounded caller text, keeping code, metadata, details and cause", async () => {
    const cause = new Error("root");
    const detail = { desc: HealthCheckRequestSchema, value: { service: "why" } };
    const thrown = new ConnectError(`field too long: ${"\u{1F600}".repeat(5000)}`, Code.ResourceExhausted, { "x-why": "size" }, [detail], cause);
    const err = await masked(thrown);
    expect(err.rawMessage.length).toBeLessThanOrEqual(MAX_ERROR_MESSAGE_CHARS);
    expect(err.rawMessage.isWellFormed()).toBe(true);
    expect(err.rawMessage.startsWith("field too long: \u{1F600}")).toBe(true);
    expect(err.code).toBe(Code.ResourceExhausted);
    expect(err.metadata.get("x-why")).toBe("size");
    expect(err.details).toEqual([detail]);
    expect(err.cause).toBe(cause);
  });

  it("passes a fit error on as it is", async () => {
    const thrown = new ConnectError("no such error group", Code.NotFound);
    expect(await masked(thrown)).toBe(thrown);
  });

  it("wellFormedMessage never splits a pair at the cut", () => {
    for (let n = 0; n < 4; n++) {
      const m = wellFormedMessage("x".repeat(n) + "\u{2B4FA}".repeat(600));
      expect(m.isWellFormed()).toBe(true);
      expect(m).not.toContain("\ufffd");
      expect(m.length).toBeLessThanOrEqual(MAX_ERROR_MESSAGE_CHARS);
    }
  });
});
