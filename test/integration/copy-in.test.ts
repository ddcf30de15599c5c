/**
 * `copyFromBuffer` against a real PostgreSQL server (COPY hangs the embedded database's socket,
 * where the writer never uses it): the data sent behind the statement without waiting for
 * CopyInResponse is stored; every way the statement can fail answers PostgreSQL's error and
 * leaves the connection usable, with nothing of the failed COPY stored or mistaken for the next
 * statement.
 */
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { copyFromBuffer } from "../../src/storage/copy-in.js";
import { createTestDatabase, needsDatabaseUrl, type TestDatabase } from "../support/test-database.js";

const COPY = `copy "items" ("id", "name") from stdin`;
const text = (rows: [number, string][]) => Buffer.from(rows.map(([id, name]) => `${id}\t${name}\n`).join(""));

describe.runIf(needsDatabaseUrl("copyFromBuffer", "the embedded PGlite hangs on COPY over its socket"))("copyFromBuffer", () => {
  let testDb: TestDatabase;
  let client: pg.Client;
  const count = async () => (await client.query<{ n: number }>(`select count(*)::int as n from "items"`)).rows[0]!.n;

  beforeAll(async () => {
    testDb = await createTestDatabase();
    client = new pg.Client({ connectionString: testDb.config.databaseUrl });
    await client.connect();
    await client.query(`create table "items" ("id" int primary key, "name" text not null)`);
  });

  afterAll(async () => {
    await client?.end();
    await testDb?.drop();
  });

  it("stores the rows as its own transaction and answers how many", async () => {
    await client.query(`truncate "items"`);
    await expect(copyFromBuffer(client, COPY, text([[1, "a"], [2, "b"], [3, "c"]]))).resolves.toBe(3);
    expect(await count()).toBe(3);
  });

  it("answers a statement that fails before copy-in with its error; the data sent behind it is dropped", async () => {
    await client.query(`truncate "items"`);
    // Rows that would parse as SQL if PostgreSQL read them as a statement.
    const data = Buffer.from(`insert into "items" values (9, 'x');\n`);
    await expect(copyFromBuffer(client, `copy "no_such_table" ("id") from stdin`, data)).rejects.toMatchObject({ code: "42P01" });
    expect(await count()).toBe(0);
    expect((await client.query(`select 1 as one`)).rows).toEqual([{ one: 1 }]);
  });

  it("answers a unique violation mid-copy with 23505 and stores none of the batch", async () => {
    await client.query(`truncate "items"`);
    await copyFromBuffer(client, COPY, text([[1, "a"]]));
    await expect(copyFromBuffer(client, COPY, text([[2, "b"], [1, "again"], [3, "c"]]))).rejects.toMatchObject({ code: "23505" });
    expect(await count()).toBe(1);
    await expect(copyFromBuffer(client, COPY, text([[2, "b"]]))).resolves.toBe(1);
  });

  it("answers malformed data with PostgreSQL's error (22P02) and keeps the connection usable", async () => {
    await client.query(`truncate "items"`);
    await expect(copyFromBuffer(client, COPY, Buffer.from("not-a-number\tx\n"))).rejects.toMatchObject({ code: "22P02" });
    await expect(copyFromBuffer(client, COPY, text([[5, "e"]]))).resolves.toBe(1);
    expect(await count()).toBe(1);
  });

  it("runs inside a caller's transaction", async () => {
    await client.query(`truncate "items"`);
    await client.query("begin");
    await expect(copyFromBuffer(client, COPY, text([[7, "g"]]))).resolves.toBe(1);
    await client.query("rollback");
    expect(await count()).toBe(0);
  });

  it("copies a batch far larger than the socket's buffers in one go", async () => {
    await client.query(`truncate "items"`);
    const rows = Array.from({ length: 50_000 }, (_, i): [number, string] => [i, "x".repeat(40)]);
    await expect(copyFromBuffer(client, COPY, text(rows))).resolves.toBe(50_000);
    expect(await count()).toBe(50_000);
  });
});
