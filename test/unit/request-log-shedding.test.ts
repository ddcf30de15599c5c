/**
 * Request-log rows of unauthenticated calls are kept within their share of the writer's buffer:
 * a flood of them while the database is slow must not make durable `Log*` writes fail.
 *
 * In-process: the real routes' `LogUserActivity`, the real auth and request-log interceptors and a
 * real BatchWriter, whose database is a connection source that answers only when the test lets it
 * (a slow database), so the buffer fills exactly as it would in production.
 */
import { Code, ConnectError, createClient, createRouterTransport, type Interceptor } from "@connectrpc/connect";
import { MikroORM } from "@mikro-orm/core";
import type { PostgreSqlDriver } from "@mikro-orm/postgresql";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AnalyticsService } from "../../sdk/src/gen/analytics/v1/analytics_service_pb.js";
import { ActivityType } from "../../sdk/src/gen/analytics/v1/common_pb.js";
import { createAuthInterceptor } from "../../src/auth/auth-interceptor.js";
import { ConfigError, loadConfig } from "../../src/config.js";
import type { Principal } from "../../src/auth/principal.js";
import { ormOptions } from "../../src/db/orm.js";
import { createAnalyticsService } from "../../src/handlers/analytics-service.js";
import { createRequestLogInterceptor } from "../../src/server/request-log-interceptor.js";
import {
  createRequestLogSink,
  isUnauthenticatedCall,
  type RequestLogSink,
} from "../../src/server/request-log-shedding.js";
import { BatchWriter, fitsShare, OfferShare, type Row } from "../../src/storage/batch-writer.js";
import type { ConnectionSource, SqlClient } from "../../src/db/sql-runner.js";
import { tableSpecs, type TableName, type TableSpec } from "../../src/storage/table-specs.js";
import { writerStatsReport } from "../../src/storage/writer-stats-log.js";
import { silentLogger } from "../../src/util/logger.js";
import { rpcError } from "../support/rpc-error.js";

const SERVICE: Principal = { subject: "svc-1", role: "service" };

describe("isUnauthenticatedCall", () => {
  it("is true without a principal or when the call failed Unauthenticated", () => {
    expect(isUnauthenticatedCall(undefined, 0)).toBe(true);
    expect(isUnauthenticatedCall(undefined, Code.InvalidArgument)).toBe(true);
    expect(isUnauthenticatedCall(SERVICE, Code.Unauthenticated)).toBe(true);
    expect(isUnauthenticatedCall(SERVICE, 0)).toBe(false);
    expect(isUnauthenticatedCall(SERVICE, Code.PermissionDenied)).toBe(false);
  });
});

describe("ANALYTICS_REQUEST_LOG_UNAUTHENTICATED_SHARE", () => {
  it("defaults to 0.1 and takes a number from 0 to 1", () => {
    expect(loadConfig({}).requestLogUnauthenticatedShare).toBe(0.1);
    expect(loadConfig({ ANALYTICS_REQUEST_LOG_UNAUTHENTICATED_SHARE: "0" }).requestLogUnauthenticatedShare).toBe(0);
    expect(loadConfig({ ANALYTICS_REQUEST_LOG_UNAUTHENTICATED_SHARE: "0.25" }).requestLogUnauthenticatedShare).toBe(0.25);
    expect(() => loadConfig({ ANALYTICS_REQUEST_LOG_UNAUTHENTICATED_SHARE: "1.5" })).toThrow(ConfigError);
  });
});

describe("fitsShare", () => {
  const caps = { maxBufferedRows: 100, maxBufferedBytes: 10_000 };
  it("admits rows up to the share of the row cap and while under the share of the byte cap", () => {
    expect(fitsShare({ rows: 9, bytes: 0, fraction: 0.1 }, caps)).toBe(true);
    expect(fitsShare({ rows: 10, bytes: 0, fraction: 0.1 }, caps)).toBe(false);
    expect(fitsShare({ rows: 1, bytes: 999, fraction: 0.1 }, caps)).toBe(true);
    expect(fitsShare({ rows: 1, bytes: 1000, fraction: 0.1 }, caps)).toBe(false);
    expect(fitsShare({ rows: 0, bytes: 0, fraction: 0 }, caps)).toBe(false);
  });
  it("refuses a share outside [0, 1]", () => {
    expect(() => new OfferShare(1.5)).toThrow(RangeError);
    expect(() => new OfferShare(Number.NaN)).toThrow(RangeError);
  });
});

describe("a flood of unauthenticated calls while the database is slow", () => {
  let orm: MikroORM<PostgreSqlDriver>;
  let specs: Record<TableName, TableSpec>;

  beforeAll(async () => {
    // The entities' metadata only, for the table specs: nothing connects.
    orm = await MikroORM.init<PostgreSqlDriver>({ ...ormOptions({ clientUrl: "postgres://nobody@127.0.0.1:1/none", poolMax: 1 }), connect: false });
    specs = tableSpecs(orm);
  });
  afterAll(async () => {
    await orm?.close(true);
  });

  /** A database that takes every statement and answers nothing until `open()`; counts inserted rows per table. */
  function slowDatabase() {
    let open!: () => void;
    const opened = new Promise<void>((resolve) => (open = resolve));
    const inserted = new Map<string, number>();
    const client: SqlClient = {
      async query(sql, params) {
        const table = /insert into "(\w+)"/.exec(sql)?.[1];
        if (table !== undefined) {
          const firstArray = (params ?? []).find(Array.isArray) as unknown[] | undefined;
          inserted.set(table, (inserted.get(table) ?? 0) + (firstArray?.length ?? 1));
        }
        return { rows: [] };
      },
    };
    const source: ConnectionSource = {
      acquire: async () => {
        await opened;
        return client;
      },
      release: () => undefined,
    };
    return { source, open, inserted };
  }

  /**
   * The routes with the interceptors of the server, in its order. `wiring` chooses where the
   * request log's rows go: the sink (this change) or the writer's plain `offer` (before it).
   */
  function setUp(wiring: "sink" | "plain") {
    const db = slowDatabase();
    const writer = new BatchWriter({
      specs,
      source: db.source,
      log: silentLogger,
      options: { maxBufferedRows: 200, maxBufferedBytes: 64 * 1024 * 1024, maxDelayMs: 1, offerMaxDelayMs: 1, strategy: "unnest" },
    });
    const offered: { user: unknown; kept: boolean }[] = [];
    const sink: RequestLogSink = createRequestLogSink(writer, 0.1);
    const track = (offer: (row: Row) => boolean) => (row: Row) => void offered.push({ user: row.user_id, kept: offer(row) });
    const requestLog =
      wiring === "sink"
        ? createRequestLogInterceptor({ offer: track(sink.authenticated), offerUnauthenticated: track(sink.unauthenticated) })
        : createRequestLogInterceptor({ offer: track((row) => writer.offer("api_request_logs", row)) });
    const verify = async (token: string): Promise<Principal> => {
      if (token !== "good-token") throw new ConnectError("invalid token", Code.Unauthenticated);
      return SERVICE;
    };
    const interceptors: Interceptor[] = [requestLog, createAuthInterceptor({ verify, corsOrigins: [] })];
    const service = createAnalyticsService({ writer, em: orm.em as never, log: silentLogger });
    const transport = (token?: string) =>
      createRouterTransport((router) => router.service(AnalyticsService, service), {
        router: { interceptors },
        transport: { interceptors: token ? [(next) => (req) => (req.header.set("authorization", `Bearer ${token}`), next(req))] : [] },
      });
    return {
      db,
      writer,
      offered,
      anonymous: createClient(AnalyticsService, transport()),
      badToken: createClient(AnalyticsService, transport("forged")),
      service: createClient(AnalyticsService, transport("good-token")),
    };
  }

  async function flood(s: ReturnType<typeof setUp>, calls: number): Promise<void> {
    const answers = await Promise.all(
      Array.from({ length: calls }, (_, i) => rpcError((i % 2 === 0 ? s.anonymous : s.badToken).logUserActivity({ pageUrl: "/x" }))),
    );
    for (const err of answers) expect(err.code).toBe(Code.Unauthenticated);
    // The rows are offered once each call's answer is written; let those callbacks run.
    await new Promise((resolve) => setTimeout(resolve, 20));
  }

  it("without shedding (the wiring before this change) the flood fills the buffer and durable writes fail ResourceExhausted", async () => {
    const s = setUp("plain");
    await flood(s, 400);
    expect(s.writer.stats().bufferedRows).toBe(200);
    const err = await rpcError(s.service.logUserActivity({ activityType: ActivityType.PAGE_VIEW, pageUrl: "/durable" }));
    expect(err.code).toBe(Code.ResourceExhausted);
    s.db.open();
    await s.writer.close();
  });

  it("keeps the flood's rows within their share: durable writes are taken and stored, the shed rows are counted and reported", async () => {
    const s = setUp("sink");
    const before = s.writer.stats();
    await flood(s, 400);
    // 10 % of 200 rows; the other 390 rows are dropped and counted.
    expect(s.writer.stats()).toMatchObject({ bufferedRows: 20, shedOffers: 380, droppedOffers: 0 });

    // Durable writes while the database is still slow: all taken (none refused for a full buffer).
    const started = performance.now();
    const durable = Array.from({ length: 100 }, (_, i) => s.service.logUserActivity({ activityType: ActivityType.PAGE_VIEW, pageUrl: `/durable/${i}` }));
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(s.writer.stats()).toMatchObject({ bufferedRows: 120, rejectedFull: 0 });
    s.db.open();
    const answers = await Promise.all(durable);
    expect(answers.every((a) => a.id !== "")).toBe(true);
    // Answered as soon as the database answers: nothing waited on the flood's rows.
    expect(performance.now() - started).toBeLessThan(2_000);
    await s.writer.flush();
    await new Promise((resolve) => setTimeout(resolve, 20));
    await s.writer.flush();

    // Every authenticated call's request-log row was kept; of the flood's, 20 were stored.
    const authenticated = s.offered.filter((o) => o.user === "svc-1");
    expect(authenticated).toHaveLength(100);
    expect(authenticated.every((o) => o.kept)).toBe(true);
    expect(s.offered.filter((o) => o.user === null && o.kept)).toHaveLength(20);
    expect(s.db.inserted.get("user_activities")).toBe(100);
    expect(s.db.inserted.get("api_request_logs")).toBe(120);

    // The operator sees what was shed, at warn, in the periodic writer-stats line.
    const report = writerStatsReport(before, s.writer.stats());
    expect(report).toMatchObject({ warn: true, fields: { shedOffers: 380 } });
    expect(report?.fields).not.toHaveProperty("droppedOffers");
    await s.writer.close();
  });
});
