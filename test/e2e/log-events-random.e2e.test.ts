/**
 * Random `LogEvents` batches (every event kind, text that stresses UTF-8 and PostgreSQL — NUL,
 * lone surrogates, BOMs, 18 kB strings —, JSON payloads, extreme timestamps, unknown enums,
 * uint32 extremes) against the real server and database: a batch is never answered with a
 * server error, every item is either stored or rejected naming its field, and exactly the
 * stored items are in the database.
 */
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { describe, expect, it } from "vitest";
import { AnalyticsService } from "../../sdk/src/gen/analytics/v1/analytics_service_pb.js";
import { WriteOutcome } from "../../sdk/src/gen/analytics/v1/common_pb.js";
import { bearer, mintTestToken } from "../support/auth.js";
import { generators } from "../support/random-messages.js";
import { seededRandom } from "../support/seeded-random.js";
import { useTestServer } from "../support/test-server.js";

const t = useTestServer();

const TABLES = { userActivity: "user_activities", error: "error_logs", deviceStateChange: "device_state_history", jobOutcome: "job_outcomes" } as const;

describe("LogEvents with random batches", () => {
  it.each([1, 2, 3, 42, 20_260_101])("never answers a server error, and stores exactly the items it says it stored (seed %i)", async (seed) => {
    const client = createClient(AnalyticsService, createGrpcTransport({ baseUrl: t.server.url(), interceptors: [bearer(await mintTestToken(t.server.config, "service"))] }));
    const random = seededRandom(seed);
    const g = generators(random);
    let stored = 0;
    let rejected = 0;
    for (let round = 0; round < 30; round++) {
      const { events } = g.request();
      // Mostly valid ids (random text is rarely a UUID), so that most items reach the database.
      for (const e of events) if (e.kind.value !== undefined && random() < 0.8) e.kind.value.eventId = random() < 0.1 ? "" : crypto.randomUUID();
      const res = await client.logEvents({ events });
      expect(res.results).toHaveLength(events.length);
      for (const [i, r] of res.results.entries()) {
        if (r.outcome === WriteOutcome.REJECTED) {
          expect(r.violations.length, `events[${i}]`).toBeGreaterThan(0);
          for (const v of r.violations) expect(v.field).toMatch(new RegExp(`^events\\[${i}\\]`));
          continue;
        }
        expect([WriteOutcome.STORED, WriteOutcome.REPLAYED, WriteOutcome.DEDUPLICATED], `events[${i}]`).toContain(r.outcome);
        const kind = events[i]!.kind.case!;
        const [row] = await t.rows<{ n: number }>(`select count(*)::int as n from "${TABLES[kind]}" where id = ?`, [r.id]);
        expect(row!.n, `events[${i}] (${kind}) stored as ${r.id}`).toBe(1);
      }
      expect(res.storedCount + res.rejectedCount).toBe(events.length);
      stored += res.storedCount;
      rejected += res.rejectedCount;
    }
    // Both outcomes are exercised, the database's side included.
    expect(stored, `stored ${stored}, rejected ${rejected}`).toBeGreaterThan(20);
    expect(rejected).toBeGreaterThan(5);
  });
});
