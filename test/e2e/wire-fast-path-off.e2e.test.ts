/**
 * `ANALYTICS_WIRE_FAST_PATH=false` (src/wire/README.md): the same binary calls answered by a server
 * with the hand-written wire code and one without it (protobuf-es and text COPY throughout) give
 * the same answers and store the same rows.
 */
import { create } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { describe, expect, it } from "vitest";
import { AnalyticsService, EventSchema } from "../../sdk/src/gen/analytics/v1/analytics_service_pb.js";
import { ActivityType, JobStatus } from "../../sdk/src/gen/analytics/v1/common_pb.js";
import { bearer, mintTestToken } from "../support/auth.js";
import { useTestServer, type TestServer } from "../support/test-server.js";

const fast = useTestServer();
const generic = useTestServer({ wireFastPath: false });

async function clientOf(t: TestServer) {
  const token = await mintTestToken(t.server.config, "service", "wire-switch");
  return createClient(AnalyticsService, createGrpcTransport({ baseUrl: t.server.url(), interceptors: [bearer(token)] }));
}

const events = (tag: string) =>
  [
    { kind: { case: "userActivity" as const, value: { activityType: ActivityType.SEARCH, searchQuery: `q-${tag}`, extraData: { k: [1, "é😀", null, { n: -0.5 }] } } } },
    { kind: { case: "jobOutcome" as const, value: { jobId: `j-${tag}`, jobType: "t", status: JobStatus.TIMEOUT, durationMs: 5, retryCount: 2 } } },
    { kind: { case: "deviceStateChange" as const, value: { deviceId: "", newState: "on" } } },
  ].map((e) => create(EventSchema, e));

describe("ANALYTICS_WIRE_FAST_PATH=false", () => {
  it("is read from the configuration", () => {
    expect(fast.server.config.wireFastPath).toBe(true);
    expect(generic.server.config.wireFastPath).toBe(false);
  });

  it("answers binary LogEvents and unary Log* calls as the fast path does, and stores the same rows", async () => {
    const answers = [];
    for (const t of [fast, generic]) {
      const client = await clientOf(t);
      const batch = await client.logEvents({ events: events("x") });
      const unary = await client.logUserActivity({ activityType: ActivityType.CLICK, pageUrl: "/p", extraData: { a: { b: [true] } } });
      const [activity] = await t.rows<Record<string, unknown>>(`select activity_type, search_query, extra_data from user_activities where id = ?`, [batch.results[0]!.id]);
      const [job] = await t.rows<Record<string, unknown>>(`select job_id, status, duration_ms, retry_count from job_outcomes where id = ?`, [batch.results[1]!.id]);
      const [click] = await t.rows<Record<string, unknown>>(`select page_url, extra_data from user_activities where id = ?`, [unary.id]);
      answers.push({
        results: batch.results.map((r) => ({ outcome: r.outcome, violations: r.violations.map((v) => `${v.field}: ${v.description}`) })),
        counts: [batch.storedCount, batch.rejectedCount],
        rows: { activity, job, click },
      });
    }
    expect(answers[0]!.counts).toEqual([2, 1]);
    expect(answers[1]).toEqual(answers[0]);
  });
});
