import { Code, ConnectError, createClient, createRouterTransport, type Interceptor } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { AnalyticsService } from "../../sdk/src/gen/analytics/v1/analytics_service_pb.js";
import { kPrincipal } from "../../src/auth/principal.js";
import type { Row } from "../../src/storage/batch-writer.js";
import { createRequestLogInterceptor } from "../../src/server/request-log-interceptor.js";
import { rpcError } from "../support/rpc-error.js";

const asUser: Interceptor = (next) => (req) => {
  req.contextValues.set(kPrincipal, { subject: "user-42", role: "user" });
  return next(req);
};

function transport(offer: (row: Row) => void) {
  return createRouterTransport(
    (router) =>
      router.service(AnalyticsService, {
        logUserActivity: () => ({ id: "x" }),
        logError: () => {
          throw new Error("boom");
        },
      }),
    { router: { interceptors: [createRequestLogInterceptor({ offer }), asUser] } },
  );
}

describe("createRequestLogInterceptor (in-process)", () => {
  it("hands one row per call to offer, with the principal set further in", async () => {
    const rows: Row[] = [];
    const client = createClient(AnalyticsService, transport((r) => rows.push(r)));
    await client.logUserActivity({});
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ endpoint: "/analytics.v1.AnalyticsService/LogUserActivity", status_code: 0, http_status: 200, user_id: "user-42" });
  });

  it("records handler failures without their internal details leaking into other columns", async () => {
    const rows: Row[] = [];
    const client = createClient(AnalyticsService, transport((r) => rows.push(r)));
    const err = await rpcError(client.logError({ errorMessage: "x" }));
    expect(err.code).toBe(Code.Internal);
    expect(rows[0]).toMatchObject({ status_code: Code.Internal, http_status: 500, response_messages: 0, error_message: "internal error" });
  });

  it("turns U+0000 in the text it records into U+FFFD (PostgreSQL's text cannot hold it; the row would be refused)", async () => {
    const rows: Row[] = [];
    const nulUser: Interceptor = (next) => (req) => {
      req.contextValues.set(kPrincipal, { subject: "user\u000042", role: "user" });
      return next(req);
    };
    const client = createClient(
      AnalyticsService,
      createRouterTransport(
        (router) =>
          router.service(AnalyticsService, {
            logUserActivity: () => {
              throw new ConnectError('names "a\u0000b" more than once', Code.InvalidArgument);
            },
          }),
        { router: { interceptors: [createRequestLogInterceptor({ offer: (r) => rows.push(r) }), nulUser] } },
      ),
    );
    const err = await rpcError(client.logUserActivity({}));
    expect(err.rawMessage).toBe('names "a\u0000b" more than once'); // the caller's answer is untouched
    expect(rows[0]).toMatchObject({ user_id: "user\uFFFD42", error_message: 'names "a\uFFFDb" more than once' });
  });

  it("hands the rows of unauthenticated calls to offerUnauthenticated, and only those", async () => {
    const plain: Row[] = [];
    const unauthenticated: Row[] = [];
    const routes = (router: Parameters<Parameters<typeof createRouterTransport>[0]>[0]) =>
      router.service(AnalyticsService, {
        logUserActivity: () => ({ id: "x" }),
        logError: () => {
          throw new ConnectError("token expired", Code.Unauthenticated);
        },
      });
    const log = createRequestLogInterceptor({ offer: (r) => plain.push(r), offerUnauthenticated: (r) => unauthenticated.push(r) });
    const anonymous = createClient(AnalyticsService, createRouterTransport(routes, { router: { interceptors: [log] } }));
    const signedIn = createClient(AnalyticsService, createRouterTransport(routes, { router: { interceptors: [log, asUser] } }));
    await anonymous.logUserActivity({}); // no principal by the end: unauthenticated
    await signedIn.logUserActivity({});
    await rpcError(signedIn.logError({})); // a principal, yet failed Unauthenticated
    expect(plain.map((r) => r.user_id)).toEqual(["user-42"]);
    expect(unauthenticated.map((r) => [r.user_id, r.status_code])).toEqual([
      [null, 0],
      ["user-42", Code.Unauthenticated],
    ]);
  });

  it("never fails a call because logging failed", async () => {
    const client = createClient(
      AnalyticsService,
      transport(() => {
        throw new Error("writer exploded");
      }),
    );
    await expect(client.logUserActivity({})).resolves.toMatchObject({ id: "x" });
  });
});
