/**
 * The auth interceptor in-process, with and without the auth gate's verdict: alone (no gate, as
 * in `createRouterTransport` tests) it verifies the token itself; behind the gate it takes the
 * gate's principal for the same token without verifying again, verifies a token the verdict
 * is not about, and never lets a refused call through, whatever token it carries.
 */
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, createRouterTransport, type ConnectRouter, type Interceptor } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { AnalyticsService, LogUserActivityResponseSchema } from "../../sdk/src/gen/analytics/v1/analytics_service_pb.js";
import { createAuthInterceptor, kAuthVerdict, type AuthVerdict } from "../../src/auth/auth-interceptor.js";
import { mintToken } from "../../src/auth/mint-token.js";
import { kPrincipal } from "../../src/auth/principal.js";
import { createTokenVerifier, type TokenVerifier } from "../../src/auth/token-verifier.js";
import { rpcError } from "../support/rpc-error.js";

const secret = new TextEncoder().encode("gate-verdict-secret-gate-verdict-secret");
const userToken = (sub: string) => mintToken(secret, { role: "user", sub, ttlSeconds: 600 });

let handled = 0;
function routes(router: ConnectRouter): void {
  router.service(AnalyticsService, {
    logUserActivity(_req, ctx) {
      handled++;
      const p = ctx.values.get(kPrincipal);
      return create(LogUserActivityResponseSchema, { id: `${p?.role}:${p?.subject}` });
    },
  });
}

/** The real verifier, counting its calls. */
function countingVerifier(): TokenVerifier & { calls: number } {
  const verify = createTokenVerifier({ secret });
  const counted = Object.assign(async (token: string) => {
    counted.calls++;
    return verify(token);
  }, { calls: 0 });
  return counted;
}

/** Stands in for the gate: puts `verdict` in the call's context, as the server's adapter does. */
const withVerdict =
  (verdict: AuthVerdict): Interceptor =>
  (next) =>
  (req) => {
    req.contextValues.set(kAuthVerdict, verdict);
    return next(req);
  };

function client(verify: TokenVerifier, before: Interceptor[] = []) {
  const auth = createAuthInterceptor({ verify, corsOrigins: [] });
  return createClient(AnalyticsService, createRouterTransport(routes, { router: { interceptors: [...before, auth] } }));
}

describe("the auth interceptor without the gate (in-process)", () => {
  it("verifies the token itself and refuses a call without one", async () => {
    const verify = countingVerifier();
    const c = client(verify);
    const res = await c.logUserActivity({}, { headers: { authorization: `Bearer ${await userToken("u-1")}` } });
    expect(res.id).toBe("user:u-1");
    expect(verify.calls).toBe(1);
    const err = await rpcError(c.logUserActivity({}));
    expect(err.code).toBe(Code.Unauthenticated);
    expect(err.rawMessage).toMatch(/^missing credentials/);
  });
});

describe("the auth interceptor behind the gate", () => {
  it("takes the gate's principal for the token the gate verified, without verifying it again", async () => {
    const verify = countingVerifier();
    const token = await userToken("u-2");
    // A principal only the verdict could have supplied: the token's subject is u-2.
    const c = client(verify, [withVerdict({ token, principal: { subject: "from-the-gate", role: "user" } })]);
    const res = await c.logUserActivity({}, { headers: { authorization: `Bearer ${token}` } });
    expect(res.id).toBe("user:from-the-gate");
    expect(verify.calls).toBe(0);
  });

  it("verifies a token the verdict is not about", async () => {
    const verify = countingVerifier();
    const c = client(verify, [withVerdict({ token: await userToken("someone-else"), principal: { subject: "someone-else", role: "admin" } })]);
    const res = await c.logUserActivity({}, { headers: { authorization: `Bearer ${await userToken("u-3")}` } });
    expect(res.id).toBe("user:u-3");
    expect(verify.calls).toBe(1);
  });

  it("fails a refused call with the gate's reason, even with a valid token, before any handler", async () => {
    const verify = countingVerifier();
    handled = 0;
    const reason = new ConnectError("invalid token: signature verification failed", Code.Unauthenticated);
    const c = client(verify, [withVerdict({ refused: reason })]);
    const err = await rpcError(c.logUserActivity({}, { headers: { authorization: `Bearer ${await userToken("u-4")}` } }));
    expect(err.code).toBe(Code.Unauthenticated);
    expect(err.rawMessage).toBe("invalid token: signature verification failed");
    expect(handled).toBe(0);
    expect(verify.calls).toBe(0);
  });
});
