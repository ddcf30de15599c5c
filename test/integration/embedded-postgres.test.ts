import { spawn, spawnSync } from "node:child_process";
import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
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

  async function start(options: { connectionWaitTimeoutMs?: number; dataDir?: string } = {}): Promise<EmbeddedPostgres> {
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

  it("serves PostgreSQL on a Unix socket in the data folder and keeps the rows across restarts", async () => {
    const first = await start();
    expect(first.url).toBe(`postgres://postgres@${encodeURIComponent(join(dataDir, "socket"))}:5432/postgres`);
    expect(first.socketPath).toBe(join(dataDir, "socket", ".s.PGSQL.5432"));
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

  it("opens no TCP listener: the only way in is the socket", async () => {
    const before = tcpListenersOfThisProcess();
    const db = await start();
    const client = await connect(db.url);
    expect((await client.query("select 1 as one")).rows).toEqual([{ one: 1 }]);
    expect(tcpListenersOfThisProcess()).toEqual(before);
    // The driver's connection is a Unix socket too, not loopback TCP.
    expect(new pg.Client({ connectionString: db.url }).host).toBe(join(dataDir, "socket"));
  });

  it("keeps the socket in a folder of mode 0700 owned by this user, fixing a looser mode left there", async () => {
    const first = await start();
    const folder = await stat(join(dataDir, "socket"));
    expect(folder.mode & 0o777).toBe(0o700);
    expect(folder.uid).toBe(process.getuid!());
    expect((await stat(first.socketPath)).isSocket()).toBe(true);
    await first.stop();

    const { chmod } = await import("node:fs/promises");
    await chmod(join(dataDir, "socket"), 0o755);
    const second = await start();
    expect((await stat(join(dataDir, "socket"))).mode & 0o777).toBe(0o700);
    // The socket file the first run left (as after kill -9) did not stop the second from serving.
    const client = await connect(second.url);
    expect((await client.query("select 2 as two")).rows).toEqual([{ two: 2 }]);
  });

  it.skipIf(process.getuid?.() !== 0)("refuses another user (run as root: a child as nobody gets EACCES)", async () => {
    const db = await start();
    // The folders above are open to everyone, so only what the server sets up keeps them out.
    const { chmod } = await import("node:fs/promises");
    await chmod(root, 0o755);
    await chmod(dataDir, 0o755);
    // Whatever the URL names, a Unix socket or a TCP port, as the driver would read it.
    const url = new URL(db.url);
    const host = decodeURIComponent(url.hostname);
    const target = host.startsWith("/") ? [join(host, `.s.PGSQL.${url.port}`)] : [Number(url.port), host];
    const probe = `require("net").connect(...${JSON.stringify(target)})
      .on("connect", () => { console.log("connected"); process.exit(0); })
      .on("error", (e) => { console.log(e.code); process.exit(0); });`;
    const child = spawnSync(process.execPath, ["-e", probe], { uid: 65534, gid: 65534, encoding: "utf8", cwd: "/" });
    expect(child.stdout.trim()).toBe("EACCES");
    // This user still gets in.
    const client = await connect(db.url);
    expect((await client.query("select 1 as one")).rows).toEqual([{ one: 1 }]);
  });

  it("keeps acknowledged commits when the process is killed (kill -9)", async () => {
    // A child starts the database, commits a row, says so, and is killed without any shutdown.
    const module = new URL("../../src/db/embedded-postgres.ts", import.meta.url).href;
    const pgModule = import.meta.resolve("pg");
    const script = join(root, "commit-then-wait.mts");
    await writeFile(
      script,
      `import pg from ${JSON.stringify(pgModule)};
       import { startEmbeddedPostgres } from ${JSON.stringify(module)};
       const db = await startEmbeddedPostgres({ dataDir: ${JSON.stringify(dataDir)} });
       const client = new pg.Client({ connectionString: db.url });
       await client.connect();
       await client.query("create table if not exists killed (note text)");
       await client.query("insert into killed values ('acknowledged before kill -9')");
       console.log("committed");
       setInterval(() => {}, 1000);`,
    );
    const child = spawn(process.execPath, ["--import", "tsx", script], { cwd: process.cwd(), stdio: ["ignore", "pipe", "inherit"] });
    await new Promise<void>((resolve, reject) => {
      let out = "";
      child.stdout.on("data", (chunk: Buffer) => {
        out += chunk.toString();
        if (out.includes("committed")) resolve();
      });
      child.once("exit", (code) => reject(new Error(`child exited (${code}) before committing`)));
    });
    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.kill("SIGKILL");
    await exited;

    const db = await start(); // takes over the dead child's lock
    const client = await connect(db.url);
    expect((await client.query("select note from killed")).rows).toEqual([{ note: "acknowledged before kill -9" }]);
  });

  it("serves from a 0700 folder under the temporary folder when the data folder's path is too long for a socket", async () => {
    const deep = join(root, "d".repeat(60), "e".repeat(60));
    const messages: string[] = [];
    const db = await startEmbeddedPostgres({ dataDir: deep, log: (m) => messages.push(m) });
    running.push(db);
    expect(Buffer.byteLength(db.socketPath)).toBeLessThanOrEqual(103);
    expect(db.socketPath.startsWith(tmpdir())).toBe(true);
    const folder = join(db.socketPath, "..");
    expect((await stat(folder)).mode & 0o777).toBe(0o700);
    expect(messages.some((m) => m.includes("too long for a Unix socket") && m.includes(folder))).toBe(true);
    const client = await connect(db.url);
    expect((await client.query("select 3 as three")).rows).toEqual([{ three: 3 }]);
    await client.end();
    await db.stop();
    await expect(stat(folder)).rejects.toMatchObject({ code: "ENOENT" });
  });
});

/**
 * Inodes of the TCP sockets in LISTEN state that this process holds: its socket descriptors
 * (/proc/self/fd) matched with the kernel's TCP tables. Other processes' listeners do not count,
 * so tests running beside this one do not disturb it.
 */
function tcpListenersOfThisProcess(): string[] {
  const mine = new Set<string>();
  for (const fd of readdirSync("/proc/self/fd")) {
    try {
      const target = readlinkSync(`/proc/self/fd/${fd}`);
      const inode = /^socket:\[(\d+)\]$/.exec(target)?.[1];
      if (inode !== undefined) mine.add(inode);
    } catch {
      // closed between the listing and the read
    }
  }
  const listening: string[] = [];
  for (const table of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    let text = "";
    try {
      text = readFileSync(table, "utf8");
    } catch {
      continue;
    }
    for (const line of text.split("\n").slice(1)) {
      const cols = line.trim().split(/\s+/);
      // st 0A is LISTEN; column 9 is the inode.
      if (cols[3] === "0A" && cols[9] !== undefined && mine.has(cols[9])) listening.push(`${cols[1]}#${cols[9]}`);
    }
  }
  return listening.sort();
}
