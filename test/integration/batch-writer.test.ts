/**
 * The batch writer against a real database (PostgreSQL with DATABASE_URL, else embedded), reached
 * through a TCP proxy so the database can be taken away mid-write.
 */
import { durationMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RetryInfoSchema } from "../../sdk/src/gen/google/rpc/error_details_pb.js";
import { openDatabase, type Database } from "../../src/db/database.js";
import { startEmbeddedPostgres, type EmbeddedPostgres } from "../../src/db/embedded-postgres.js";
import { writerStrategyOf } from "../../src/config.js";
import { dedupKey } from "../../src/ingest/error-dedup.js";
import { BatchWriter, JsonText, type BatchWriterOptions, type FlushHook, type Row } from "../../src/storage/batch-writer.js";
import { ormConnectionSource, type ConnectionSource, type SqlClient } from "../../src/db/sql-runner.js";
import { tableSpecs } from "../../src/storage/table-specs.js";
import { silentLogger } from "../../src/util/logger.js";
import { uuidV7 } from "../../src/util/uuid-v7.js";
import { rpcError } from "../support/rpc-error.js";
import { startTcpProxy, type TcpProxy } from "../support/tcp-proxy.js";
import { createTestDatabase, needsDatabaseUrl, type TestDatabase } from "../support/test-database.js";

let testDb: TestDatabase;
let embedded: EmbeddedPostgres | undefined;
let embeddedDir: string | undefined;
let proxy: TcpProxy;
let db: Database;
/** What the database layer logged (knex's own warnings included), by message. */
const dbLogged: string[] = [];
const dbLog = { ...silentLogger, warn: (msg: string) => void dbLogged.push(msg), error: (msg: string) => void dbLogged.push(msg) };

beforeAll(async () => {
  testDb = await createTestDatabase();
  let url = testDb.config.databaseUrl;
  if (url === undefined) {
    embeddedDir = await mkdtemp(join(tmpdir(), "writer-test-"));
    embedded = await startEmbeddedPostgres({ dataDir: embeddedDir });
    url = embedded.url;
  }
  const target = new URL(url);
  proxy = await startTcpProxy({ host: decodeURIComponent(target.hostname), port: Number(target.port) });
  db = await openDatabase({ ...testDb.config, databaseUrl: proxy.via(url), dbPoolMax: embedded ? 1 : 4 }, dbLog);
});

afterAll(async () => {
  await db?.close();
  await proxy?.close();
  await embedded?.stop();
  if (embeddedDir) await rm(embeddedDir, { recursive: true, force: true });
  await testDb?.drop();
});

/** Strategies that run on this database: COPY only on a real server (it hangs the embedded one's socket). */
const STRATEGIES = needsDatabaseUrl("the batch writer's COPY strategy", "the embedded PGlite hangs on COPY over its socket") ? (["copy", "unnest", "multi-row"] as const) : (["unnest", "multi-row"] as const);
/** What the server chooses here (`writerStrategyOf`), so the tests below exercise the production path. */
const SERVER_STRATEGY = writerStrategyOf({ writerStrategy: undefined, databaseUrl: process.env.DATABASE_URL });

function writer(options: Partial<BatchWriterOptions> = {}, hooks: FlushHook[] = []): BatchWriter {
  return new BatchWriter({
    specs: tableSpecs(db.orm),
    source: ormConnectionSource(db.orm.em),
    log: silentLogger,
    hooks,
    options: { strategy: SERVER_STRATEGY, ...options },
  });
}

async function rows<T = Record<string, unknown>>(sql: string, params: unknown[] = []): Promise<T[]> {
  return db.orm.em.fork().getConnection().execute<T[]>(sql, params, "all");
}

const stateChange = (device: string, extra: Partial<Record<string, unknown>> = {}): Row => ({
  id: uuidV7(),
  event_id: null,
  occurred_at: new Date(),
  device_id: device,
  previous_state: null,
  new_state: "online",
  changed_by: "system",
  reason: null,
  extra_data: { n: 1, nested: { ok: true } },
  ...extra,
});

describe.each(STRATEGIES)("strategy %s", (strategy) => {
  it("stores every row with its values, nulls and JSON intact (objects and pre-serialized JsonText)", async () => {
    const w = writer({ strategy });
    const device = `dev-${strategy}`;
    // Characters COPY's text format gives a meaning to must come back as sent.
    const awkward = `tab\there, line\nbreak, back\\slash \\N, cr\r, "quoted", \u00e9\u4e2d`;
    const input = Array.from({ length: 2500 }, (_, i) =>
      stateChange(device, {
        reason: i % 2 ? null : i % 4 === 0 ? `${awkward} ${i}` : `r${i}`,
        extra_data: i % 3 ? null : i % 2 ? new JsonText(JSON.stringify({ i, text: awkward })) : { i, text: awkward },
      }),
    );
    const results = await w.write("device_state_history", input);
    expect(results.every((r) => r.outcome === "stored")).toBe(true);
    const stored = await rows<{ id: string; reason: string | null; extra_data: unknown }>(
      `select id, reason, extra_data from device_state_history where device_id = ? order by id`,
      [device],
    );
    expect(stored).toHaveLength(2500);
    const byId = new Map(stored.map((r) => [r.id, r]));
    for (const row of input) {
      const extra = row.extra_data instanceof JsonText ? row.extra_data.parse() : row.extra_data;
      expect(byId.get(row.id as string)).toEqual({ id: row.id, reason: row.reason, extra_data: extra });
    }
    await w.close();
  });
});

describe.each(STRATEGIES)("idempotency with %s", (strategy) => {
  it("stores an event_id once, within a batch and across concurrent writes, answering with the first id", async () => {
    const w = writer({ maxDelayMs: 20, strategy });
    const eventId = crypto.randomUUID();
    const device = `dev-idem-${strategy}`;
    const a = stateChange(device, { event_id: eventId });
    const b = stateChange(device, { event_id: eventId });
    const c = stateChange(device, { event_id: eventId });
    const [[ra, rb], [rc]] = await Promise.all([w.write("device_state_history", [a, b]), w.write("device_state_history", [c])]);
    const results = [ra!, rb!, rc!];
    expect(results.filter((r) => r.outcome === "stored")).toHaveLength(1);
    expect(new Set(results.map((r) => r.id))).toEqual(new Set([results.find((r) => r.outcome === "stored")!.id]));
    expect(await rows(`select id from device_state_history where event_id = ?`, [eventId])).toHaveLength(1);
    expect(await rows(`select count(*)::int as n from device_state_history where device_id = ?`, [device])).toEqual([{ n: 1 }]);
    await w.close();
  });

  it("answers stored for rows an earlier attempt committed whose answer was lost, without running hooks for them again", async () => {
    // The earlier attempt of the flush: committed (its hook ran then), then the connection died
    // before the answer, and the writer retries the same rows (same ids). Played here by rows
    // stored beforehand and a first attempt that fails.
    const hooked: unknown[] = [];
    const hook: FlushHook = { tables: new Set(["job_outcomes"]), run: async (_ctx, _table, accepted) => void hooked.push(...accepted.map((r) => r.id)) };
    const w = writer({ strategy, maxDelayMs: 1, maxWaitMs: 20_000, initialBackoffMs: 20, maxBackoffMs: 100 }, [hook]);
    const job = (extra: Partial<Record<string, unknown>> = {}): Row => ({
      id: uuidV7(),
      event_id: null,
      occurred_at: new Date(),
      job_id: `job-lost-${strategy}`,
      job_type: "sync",
      status: "completed",
      duration_ms: 5,
      retry_count: 0,
      ...extra,
    });
    const committed = job();
    const committedWithEventId = job({ event_id: crypto.randomUUID() });
    for (const r of [committed, committedWithEventId]) {
      await rows(`insert into job_outcomes (id, event_id, occurred_at, job_id, job_type, status, duration_ms, retry_count) values (?, ?, ?, ?, ?, ?, ?, ?)`, [
        r.id, r.event_id, r.occurred_at, r.job_id, r.job_type, r.status, r.duration_ms, r.retry_count,
      ]);
    }
    const fresh = job();
    // The first attempt fails on the way (the database unreachable), so the rows go again as a retry.
    proxy.cut();
    const writing = w.write("job_outcomes", [committed, committedWithEventId, fresh]);
    while (w.stats().retries === 0) await new Promise((r) => setTimeout(r, 10));
    proxy.restore();
    const results = await writing;
    expect(results).toEqual([
      { outcome: "stored", id: committed.id },
      { outcome: "replayed", id: committedWithEventId.id },
      { outcome: "stored", id: fresh.id },
    ]);
    expect(hooked).toEqual([fresh.id]);
    expect(await rows(`select count(*)::int as n from job_outcomes where job_id = ?`, [`job-lost-${strategy}`])).toEqual([{ n: 3 }]);
    await w.close();
  });

  it("treats a device metric with the same device and time as a replay", async () => {
    const w = writer({ strategy });
    const at = new Date(Date.UTC(2026, 5, 1, 12));
    const device = `dev-m-${strategy}`;
    const sample = { device_id: device, occurred_at: at, metrics: { cpu: 1 }, reason: "first_contact" };
    expect(await w.write("device_metrics", [sample])).toEqual([{ outcome: "stored" }]);
    expect(await w.write("device_metrics", [sample, { ...sample, occurred_at: new Date(at.getTime() + 1) }])).toEqual([
      { outcome: "replayed" },
      { outcome: "stored" },
    ]);
    expect(await rows(`select count(*)::int as n from device_metrics where device_id = ?`, [device])).toEqual([{ n: 2 }]);
    // COPY cannot skip a stored key: the batch with the replay was redone with unnest.
    expect(w.stats().copyFallbacks).toBe(strategy === "copy" ? 1 : 0);
    await w.close();
  });
});

describe("failures", () => {
  it("isolates a row the database refuses and stores the rows beside it", async () => {
    const w = writer({ maxDelayMs: 20 });
    const good1 = stateChange("dev-poison");
    const bad = stateChange("dev-poison", { new_state: null });
    const good2 = stateChange("dev-poison");
    const settled = await Promise.allSettled([
      w.write("device_state_history", [good1]),
      w.write("device_state_history", [bad]),
      w.write("device_state_history", [good2]),
    ]);
    expect(settled.map((s) => s.status)).toEqual(["fulfilled", "rejected", "fulfilled"]);
    const err = (settled[1] as PromiseRejectedResult).reason as ConnectError;
    expect(err.code).toBe(Code.Internal);
    expect(err.rawMessage).toMatch(/^internal error \(correlation id [0-9a-f-]{36}\)$/);
    expect(await rows(`select count(*)::int as n from device_state_history where device_id = 'dev-poison'`)).toEqual([{ n: 2 }]);
    await w.close();
  });

  it("fails a write that holds a refused row with that row's error, and still stores the rows beside it", async () => {
    const w = writer({ maxDelayMs: 20 });
    const batch = [stateChange("dev-poison-in-one"), stateChange("dev-poison-in-one", { new_state: null }), stateChange("dev-poison-in-one")];
    const err = await rpcError(w.write("device_state_history", batch));
    expect(err.code).toBe(Code.Internal);
    expect(await rows(`select count(*)::int as n from device_state_history where device_id = 'dev-poison-in-one'`)).toEqual([{ n: 2 }]);
    await w.close();
  });

  it("answers a write split over several flushes with one result per row, in the write's order", async () => {
    const w = writer({ batchRows: 64 });
    const batch = Array.from({ length: 300 }, (_, i) => stateChange("dev-split", { event_id: crypto.randomUUID(), reason: `r${i}` }));
    const results = await w.write("device_state_history", batch);
    expect(results.map((r) => r.id)).toEqual(batch.map((r) => r.id));
    expect(w.stats().flushes).toBeGreaterThanOrEqual(5);
    expect(await rows(`select count(*)::int as n from device_state_history where device_id = 'dev-split'`)).toEqual([{ n: 300 }]);
    await w.close();
  });

  it("answers ResourceExhausted with a retry hint when the buffer is full, and frees room after a flush", async () => {
    const w = writer({ maxBufferedRows: 10, maxDelayMs: 300 });
    const pending = w.write("device_state_history", Array.from({ length: 10 }, () => stateChange("dev-full")));
    const err = await rpcError(w.write("device_state_history", [stateChange("dev-full")]));
    expect(err.code).toBe(Code.ResourceExhausted);
    expect(err.rawMessage).toMatch(/write buffer is full .* retry after \d+ ms/);
    expect(err.metadata.get("retry-after-ms")).toMatch(/^\d+$/);
    // The same wait as a google.rpc.RetryInfo detail.
    expect(err.findDetails(RetryInfoSchema).map((d) => d.retryDelay && durationMs(d.retryDelay))).toEqual([Number(err.metadata.get("retry-after-ms"))]);
    expect(w.offer("device_state_history", stateChange("dev-full"))).toBe(false);
    expect(w.stats().droppedOffers).toBe(1);
    const writable = w.whenWritable(1);
    await pending;
    await writable;
    expect(w.hasRoom(10)).toBe(true);
    await w.close();
  });

  it("keeps durable writes waiting through a database outage and stores them once it is back", async () => {
    const w = writer({ maxWaitMs: 20_000, initialBackoffMs: 20, maxBackoffMs: 200 });
    proxy.cut();
    const writes = w.write("device_state_history", Array.from({ length: 50 }, () => stateChange("dev-outage")));
    const offered = w.offer("api_request_logs", { occurred_at: new Date(), endpoint: "/x.Y/Outage", protocol: "grpc", http_method: "POST", status_code: 0, http_status: 200, response_time_ms: 1.5 });
    expect(offered).toBe(true);
    let settled = false;
    void writes.finally(() => (settled = true));
    await new Promise((r) => setTimeout(r, 1500));
    expect(settled).toBe(false); // never acknowledged while the database is away
    expect(w.stats().retries).toBeGreaterThan(0);
    proxy.restore();
    const results = await writes;
    expect(results.every((r) => r.outcome === "stored")).toBe(true);
    await w.flush();
    expect(await rows(`select count(*)::int as n from device_state_history where device_id = 'dev-outage'`)).toEqual([{ n: 50 }]);
    expect(await rows(`select count(*)::int as n from api_request_logs where endpoint = '/x.Y/Outage'`)).toEqual([{ n: 1 }]);
    // The pool's broken connections were reported as structured log lines, not bare stdout.
    expect(dbLogged).toContain("database driver warning");
    await w.close();
  });

  it("bounds the wait when the database stops answering without closing the connection", async () => {
    const w = writer({ maxWaitMs: 500, attemptTimeoutMs: 400, initialBackoffMs: 20, maxBackoffMs: 100 });
    proxy.stall();
    const started = Date.now();
    try {
      const err = await rpcError(w.write("device_state_history", [stateChange("dev-stalled")]));
      expect(err.code).toBe(Code.Unavailable);
      expect(Date.now() - started).toBeLessThan(5_000);
    } finally {
      proxy.restore();
    }
    // The broken connections were dropped from the pool: the next write goes through.
    const [ok] = await w.write("device_state_history", [stateChange("dev-after-stall")]);
    expect(ok!.outcome).toBe("stored");
    expect(await rows(`select count(*)::int as n from device_state_history where device_id = 'dev-stalled'`)).toEqual([{ n: 0 }]);
    await w.close();
  });

  it("fails a durable write Unavailable after maxWaitMs and never stores it later", async () => {
    const w = writer({ maxWaitMs: 600, initialBackoffMs: 20, maxBackoffMs: 100 });
    proxy.cut();
    try {
      const err = await rpcError(w.write("device_state_history", [stateChange("dev-gave-up")]));
      expect(err.code).toBe(Code.Unavailable);
      expect(err.rawMessage).toBe("storage is temporarily unavailable; retry later");
    } finally {
      proxy.restore();
    }
    await w.flush();
    await new Promise((r) => setTimeout(r, 300));
    expect(await rows(`select count(*)::int as n from device_state_history where device_id = 'dev-gave-up'`)).toEqual([{ n: 0 }]);
    await w.close();
  });
});

describe("hooks and shutdown", () => {
  it("runs hooks in the insert's transaction with only the new rows", async () => {
    const seen: number[] = [];
    const hook: FlushHook = {
      tables: new Set(["device_state_history"]),
      async run(ctx, table, accepted) {
        seen.push(accepted.length);
        if (accepted.some((r) => r.reason === "hook-fails")) throw Object.assign(new Error("hook refused"), { code: "23514" });
        await ctx.query(`select 1`);
      },
    };
    const w = writer({ maxDelayMs: 20 }, [hook]);
    const eventId = crypto.randomUUID();
    await w.write("device_state_history", [stateChange("dev-hook", { event_id: eventId })]);
    seen.length = 0;
    // A replay is not passed to hooks; a failing hook rolls its row back.
    const settled = await Promise.allSettled([
      w.write("device_state_history", [stateChange("dev-hook", { event_id: eventId })]),
      w.write("device_state_history", [stateChange("dev-hook", { reason: "hook-fails" })]),
    ]);
    expect(settled.map((s) => s.status)).toEqual(["fulfilled", "rejected"]);
    expect(await rows(`select count(*)::int as n from device_state_history where device_id = 'dev-hook'`)).toEqual([{ n: 1 }]);
    await w.close();
  });

  it.runIf(SERVER_STRATEGY === "copy")("commits a COPY into a table no hook reads as one statement, and redoes a replay in a transaction", async () => {
    // The statements each flush sent, through a source that records them.
    const sent: string[] = [];
    const inner = ormConnectionSource(db.orm.em);
    const wrapped = new Map<SqlClient, SqlClient>();
    const source: ConnectionSource = {
      async acquire() {
        const client = await inner.acquire();
        const recording: SqlClient = {
          query: ((q: unknown, ...rest: unknown[]) => {
            sent.push(typeof q === "string" ? q : /^copy /i.test(String((q as { text?: string }).text)) ? "copy" : "other");
            return (client.query as (...a: unknown[]) => unknown)(q, ...rest);
          }) as SqlClient["query"],
        };
        wrapped.set(recording, client);
        return recording;
      },
      release: (c) => inner.release(wrapped.get(c)!),
    };
    const hook: FlushHook = { tables: new Set(["job_outcomes"]), run: async () => undefined };
    const w = new BatchWriter({ specs: tableSpecs(db.orm), source, log: silentLogger, hooks: [hook], options: { strategy: "copy", maxDelayMs: 1 } });
    const eventId = crypto.randomUUID();
    const [first] = await w.write("device_state_history", [stateChange("dev-autocommit", { event_id: eventId })]);
    expect(sent).toEqual(["copy"]);

    // The replay makes the COPY fail whole (nothing of it stored); the batch is redone as an
    // insert that skips stored rows, in a transaction.
    sent.length = 0;
    const [again, fresh] = await w.write("device_state_history", [
      stateChange("dev-autocommit", { event_id: eventId }),
      stateChange("dev-autocommit", { event_id: crypto.randomUUID() }),
    ]);
    expect(again).toEqual({ outcome: "replayed", id: first!.id });
    expect(fresh!.outcome).toBe("stored");
    expect(sent[0]).toBe("copy");
    expect(sent[1]).toBe("begin");
    expect(sent.at(-1)).toBe("commit");
    expect(await rows(`select count(*)::int as n from device_state_history where device_id = 'dev-autocommit'`)).toEqual([{ n: 2 }]);

    // A table a hook reads keeps its transaction.
    sent.length = 0;
    await w.write("job_outcomes", [
      { id: uuidV7(), event_id: null, occurred_at: new Date(), job_id: "job-autocommit", job_type: "sync", status: "completed", duration_ms: 5, retry_count: 0 },
    ]);
    expect(sent).toEqual(["begin", "copy", "commit"]);
    await w.close();
  });

  it("stores the offered rows beside a refused one and logs a table-wide refusal once, not per row", async () => {
    const errors: { msg: string; fields?: Record<string, unknown> }[] = [];
    const log = { ...silentLogger, error: (msg: string, fields?: Record<string, unknown>) => errors.push({ msg, fields }) };
    const refuseAll = { on: false };
    const hook: FlushHook = {
      tables: new Set(["api_request_logs"]),
      async run(_ctx, _table, accepted) {
        if (refuseAll.on || accepted.some((r) => r.endpoint === "/x.Y/Poison")) throw Object.assign(new Error("rollup refused"), { code: "23514" });
      },
    };
    const w = new BatchWriter({
      specs: tableSpecs(db.orm),
      source: ormConnectionSource(db.orm.em),
      log,
      hooks: [hook],
      options: { strategy: SERVER_STRATEGY, offerMaxDelayMs: 60_000 },
    });
    const logRow = (endpoint: string) => ({ occurred_at: new Date(), endpoint, protocol: "grpc", http_method: "POST", status_code: 0, http_status: 200, response_time_ms: 1 });
    for (let i = 0; i < 100; i++) w.offer("api_request_logs", logRow(i === 37 ? "/x.Y/Poison" : "/x.Y/Beside"));
    await w.flush();
    expect(await rows(`select count(*)::int as n from api_request_logs where endpoint = '/x.Y/Beside'`)).toEqual([{ n: 99 }]);
    expect(w.stats().failedPermanent).toBe(1);
    expect(w.stats().flushes).toBeLessThan(20); // halving: ~2·log2(100) flushes, not 100
    refuseAll.on = true;
    for (let i = 0; i < 64; i++) w.offer("api_request_logs", logRow("/x.Y/AllRefused"));
    await w.flush();
    expect(w.stats().failedPermanent).toBe(65);
    // One line for the first refusal; the 64 that followed within the interval are counted, not logged.
    expect(errors.map((e) => e.msg)).toEqual(["storage refused fire-and-forget rows; dropped"]);
    expect(errors[0]!.fields).toMatchObject({ table: "api_request_logs", rows: 1 });
    await w.close();
  });

  it("drains buffered rows on close, fire-and-forget ones included", async () => {
    const w = writer({ offerMaxDelayMs: 60_000 });
    for (let i = 0; i < 25; i++) {
      w.offer("api_request_logs", { occurred_at: new Date(), endpoint: "/x.Y/Drain", protocol: "connect", http_method: "POST", status_code: 0, http_status: 200, response_time_ms: i });
    }
    expect(await rows(`select count(*)::int as n from api_request_logs where endpoint = '/x.Y/Drain'`)).toEqual([{ n: 0 }]);
    await w.close();
    expect(await rows(`select count(*)::int as n from api_request_logs where endpoint = '/x.Y/Drain'`)).toEqual([{ n: 25 }]);
    const err = await rpcError(w.write("api_request_logs", [{ occurred_at: new Date() }]));
    expect(err.code).toBe(Code.Unavailable);
  });
});

describe("error de-duplication", () => {
  const error = (at: Date, extra: Partial<Record<string, unknown>> = {}): Row => ({
    id: uuidV7(),
    event_id: null,
    occurred_at: at,
    category: "device",
    severity: "error",
    error_code: "E_TIMEOUT",
    error_message: "device did not answer",
    device_id: "dev-err",
    dedup_key: dedupKey({ deviceId: "dev-err", errorCode: "E_TIMEOUT", errorMessage: "device did not answer" }),
    occurrence_count: 1,
    last_seen_at: at,
    ...extra,
  });

  it("counts repeats within the interval, starts a new row after it, and marks a resolved error regressed", async () => {
    const occurrences: Row[] = [];
    const w = writer({ errorDedupIntervalMs: 300_000 }, [{ tables: new Set(["error_logs"]), run: async (_ctx, _table, accepted) => void occurrences.push(...accepted) }]);
    const t0 = Date.UTC(2026, 3, 1, 10);
    const [first] = await w.write("error_logs", [error(new Date(t0))]);
    expect(first).toMatchObject({ outcome: "stored", occurrenceCount: 1, regressed: false });
    const [second] = await w.write("error_logs", [error(new Date(t0 + 299_999))]);
    expect(second).toEqual({ outcome: "deduplicated", id: first!.id, occurrenceCount: 2, regressed: false });
    // The window slides with the last sighting: 299.999 s + 300 s is still one burst.
    const [third] = await w.write("error_logs", [error(new Date(t0 + 599_000))]);
    expect(third).toMatchObject({ outcome: "deduplicated", id: first!.id, occurrenceCount: 3 });
    // A gap of exactly the interval starts a new row.
    const [fourth] = await w.write("error_logs", [error(new Date(t0 + 599_000 + 300_000))]);
    expect(fourth).toMatchObject({ outcome: "stored", occurrenceCount: 1 });
    expect(fourth!.id).not.toBe(first!.id);

    await rows(`update error_logs set resolved = true, resolved_at = ? where id = ?`, [new Date(t0 + 900_000), fourth!.id]);
    const [again] = await w.write("error_logs", [error(new Date(t0 + 900_001))]);
    expect(again).toEqual({ outcome: "deduplicated", id: fourth!.id, occurrenceCount: 2, regressed: true });
    const [row] = await rows(`select resolved, resolved_at, regressed, occurrence_count, last_seen_at from error_logs where id = ?`, [fourth!.id]);
    expect(row).toMatchObject({ resolved: false, resolved_at: null, regressed: true, occurrence_count: 2 });
    expect(new Date(row!.last_seen_at as string).getTime()).toBe(t0 + 900_001);
    // Every occurrence reaches the hooks (rollups count occurrences, not rows).
    expect(occurrences).toHaveLength(5);
    await w.close();
  });

  it("answers a retried event_id as the first call did, even for a de-duplicated occurrence, under concurrency", async () => {
    const w = writer({ maxDelayMs: 10 });
    const t0 = Date.UTC(2026, 3, 2, 10);
    const key = { error_message: "concurrent", dedup_key: dedupKey({ deviceId: "dev-err", errorCode: "E_TIMEOUT", errorMessage: "concurrent" }) };
    await w.write("error_logs", [error(new Date(t0), key)]);
    const eventId = crypto.randomUUID();
    const results = await Promise.all(
      Array.from({ length: 6 }, () => w.write("error_logs", [error(new Date(t0 + 1000), { ...key, event_id: eventId })]).then((r) => r[0]!)),
    );
    expect(results.filter((r) => r.outcome === "deduplicated")).toHaveLength(1);
    expect(results.filter((r) => r.outcome === "replayed")).toHaveLength(5);
    expect(new Set(results.map((r) => `${r.id}/${r.occurrenceCount}`)).size).toBe(1);
    expect(await rows(`select occurrence_count from error_logs where error_message = 'concurrent'`)).toEqual([{ occurrence_count: 2 }]);
    await w.close();
  });
});
