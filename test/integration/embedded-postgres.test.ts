import { spawnSync } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { defineEntity, p } from "@mikro-orm/core";
import { MikroORM, PostgreSqlDriver } from "@mikro-orm/postgresql";
import pg from "pg";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { startEmbeddedPostgres, type EmbeddedPostgres } from "../../src/db/embedded-postgres.js";

const Note = defineEntity({
  name: "EmbeddedNote",
  tableName: "embedded_note",
  properties: {
    id: p.integer().primary().autoincrement(),
    body: p.text(),
    createdAt: p.datetime(),
  },
});

describe("startEmbeddedPostgres", () => {
  let root: string;
  let dataDir: string;
  const running: EmbeddedPostgres[] = [];
  const clients: pg.Client[] = [];

  async function start(options: { connectionWaitTimeoutMs?: number } = {}): Promise<EmbeddedPostgres> {
    const db = await startEmbeddedPostgres({ dataDir, ...options });
    running.push(db);
    return db;
  }

  async function connect(url: string): Promise<pg.Client> {
    const client = new pg.Client({ connectionString: url });
    client.on("error", () => {});
    clients.push(client);
    await client.connect();
    return client;
  }

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), "embedded-postgres-test-"));
    dataDir = join(root, "data");
  });

  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.end().catch(() => {})));
    await Promise.all(running.splice(0).map((db) => db.stop()));
  });

  afterAll(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it("serves PostgreSQL on a free port and keeps the rows across restarts", async () => {
    const first = await start();
    expect(first.url).toMatch(/^postgres:\/\/postgres@127\.0\.0\.1:\d+\/postgres$/);
    expect(Number(new URL(first.url).port)).toBeGreaterThan(0);
    expect(first.dataDir).toBe(join(dataDir, "pglite"));

    const client = await connect(first.url);
    await client.query(`
      create table event (
        id uuid primary key default gen_random_uuid(),
        event_id text,
        device_id text not null,
        ts timestamptz not null,
        kind text not null,
        name text not null,
        value double precision,
        count bigint,
        seq integer not null,
        attrs jsonb not null
      )`);
    await client.query("create unique index event_event_id_key on event (event_id) where event_id is not null");

    const ts = new Date("2024-05-01T12:34:56.789Z");
    const insertOne = `insert into event (event_id, device_id, ts, kind, name, seq, attrs)
      values ($1, $2, $3, $4, $5, $6, $7) on conflict do nothing returning id`;
    const params = ["evt-1", "dev-1", ts, "log", "boot", 0, { level: "info", tags: ["a", "b"] }];
    const inserted = await client.query<{ id: string }>(insertOne, params);
    expect(inserted.rows).toHaveLength(1);
    expect(inserted.rows[0]?.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    const duplicate = await client.query(insertOne, params);
    expect(duplicate.rows).toEqual([]);

    // Rows without an event_id are not constrained by the partial index.
    const rows = 1000;
    const columns = ["id", "event_id", "device_id", "ts", "kind", "name", "value", "count", "seq", "attrs"];
    const values: unknown[] = [];
    const tuples: string[] = [];
    for (let i = 0; i < rows; i += 1) {
      const base = i * columns.length;
      tuples.push(`(${columns.map((_, j) => `$${base + j + 1}`).join(", ")})`);
      values.push(
        crypto.randomUUID(),
        null,
        `dev-${i % 7}`,
        new Date(ts.getTime() + i * 1000),
        "metric",
        `cpu-${i}`,
        i / 4,
        String(i * 1_000_000_000),
        i + 1,
        JSON.stringify({ i, ok: i % 2 === 0 }),
      );
    }
    const started = performance.now();
    const bulk = await client.query(`insert into event (${columns.join(", ")}) values ${tuples.join(", ")}`, values);
    const ms = performance.now() - started;
    expect(bulk.rowCount).toBe(rows);
    console.info(`embedded PostgreSQL: ${rows}-row ${columns.length}-column INSERT in ${ms.toFixed(0)} ms (${Math.round((rows / ms) * 1000)} rows/s)`);

    await client.end();
    await first.stop();

    const second = await start();
    const again = await connect(second.url);
    const count = await again.query<{ n: number }>("select count(*)::int as n from event");
    expect(count.rows[0]?.n).toBe(rows + 1);
    const read = await again.query<{ ts: Date; attrs: unknown; count: string }>(
      "select ts, attrs, count from event where seq = $1",
      [500],
    );
    expect(read.rows[0]?.ts.toISOString()).toBe(new Date(ts.getTime() + 499_000).toISOString());
    expect(read.rows[0]?.attrs).toEqual({ i: 499, ok: false });
    expect(read.rows[0]?.count).toBe("499000000000");
    const first1 = await again.query<{ ts: Date; attrs: unknown }>("select ts, attrs from event where event_id = $1", ["evt-1"]);
    expect(first1.rows).toEqual([{ ts, attrs: { level: "info", tags: ["a", "b"] } }]);
  });

  it("works with MikroORM and a pool of one", async () => {
    const db = await start();
    const orm = await MikroORM.init({
      driver: PostgreSqlDriver,
      clientUrl: db.url,
      pool: { min: 0, max: 1 },
      entities: [Note],
      discovery: { warnWhenNoEntities: false },
      allowGlobalContext: false,
    });
    try {
      await orm.schema.updateSchema();
      const createdAt = new Date("2024-06-01T00:00:00.000Z");
      const writer = orm.em.fork();
      writer.create(Note, { body: "hello from the ORM", createdAt });
      await writer.flush();

      const reader = orm.em.fork();
      const notes = await reader.find(Note, {});
      expect(notes.map((n) => ({ body: n.body, createdAt: n.createdAt }))).toEqual([
        { body: "hello from the ORM", createdAt },
      ]);
      const raw = await reader.getConnection().execute<{ n: number }[]>("select count(*)::int as n from embedded_note");
      expect(raw[0]?.n).toBe(1);
    } finally {
      await orm.close(true);
    }
  });

  it("refuses a second instance on the same data folder", async () => {
    const db = await start();
    await expect(startEmbeddedPostgres({ dataDir })).rejects.toThrow(
      /data folder .*pglite is already in use by this process .*Stop the other instance, pass a different data folder, or set DATABASE_URL/,
    );
    // The refused start left the running instance alone.
    const client = await connect(db.url);
    expect((await client.query("select 1 as one")).rows).toEqual([{ one: 1 }]);
  });

  it("takes over a lock left by a process that is gone", async () => {
    const gone = spawnSync(process.execPath, ["-e", ""]).pid;
    const lockPath = join(dataDir, "pglite.lock");
    await writeFile(lockPath, `${gone}\n`);
    const db = await start();
    expect((await readFile(lockPath, "utf8")).trim()).toBe(String(process.pid));
    await db.stop();
    await expect(readFile(lockPath, "utf8")).rejects.toMatchObject({ code: "ENOENT" });
  });

  it("stop is idempotent", async () => {
    const db = await start();
    const client = await connect(db.url);
    await Promise.all([db.stop(), db.stop()]);
    await db.stop();
    await expect(client.query("select 1")).rejects.toThrow();
    // The folder is free again.
    await (await start()).stop();
  });

  it("makes a second connection wait for the first to close", async () => {
    const db = await start();
    const first = await connect(db.url);
    await first.query("begin");
    await first.query("create temporary table t (x int)");

    let secondReady = false;
    const second = new pg.Client({ connectionString: db.url });
    clients.push(second);
    const connected = second.connect().then(() => {
      secondReady = true;
    });
    await new Promise((r) => setTimeout(r, 300));
    expect(secondReady).toBe(false);

    // Closing mid-transaction rolls it back before the next connection runs anything.
    await first.end();
    await connected;
    expect((await second.query("select 2 as two")).rows).toEqual([{ two: 2 }]);
    const open = await second.query<{ n: number }>("select count(*)::int as n from pg_class where relname = 't'");
    expect(open.rows[0]?.n).toBe(0);
  });

  it("refuses a waiting connection with SQLSTATE 53300 after the wait timeout", async () => {
    const db = await start({ connectionWaitTimeoutMs: 200 });
    await connect(db.url);
    const second = new pg.Client({ connectionString: db.url });
    await expect(second.connect()).rejects.toMatchObject({
      code: "53300",
      message: expect.stringMatching(/serves one connection at a time/),
    });
  });
});
