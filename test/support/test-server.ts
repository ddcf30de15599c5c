/**
 * The real server on a fresh database for one test file: started before the file's tests,
 * closed and its database dropped after them. For files that need nothing else at set-up.
 */
import { afterAll, beforeAll } from "vitest";
import type { Config } from "../../src/config.js";
import { buildServer, type AnalyticsServer } from "../../src/server/build-server.js";
import { createTestDatabase, type TestDatabase } from "./test-database.js";

/** The file's server and database, once its `beforeAll` has run. */
export interface TestServer {
  readonly server: AnalyticsServer;
  readonly db: TestDatabase;
  /** Rows of a query on the server's database (`?` placeholders). */
  rows<T = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<T[]>;
}

/** Registers the file's `beforeAll` / `afterAll` for a listening server; `overrides` adjust its config. */
export function useTestServer(overrides: Partial<Config> = {}): TestServer {
  let db: TestDatabase | undefined;
  let server: AnalyticsServer | undefined;
  beforeAll(async () => {
    db = await createTestDatabase(overrides);
    server = await buildServer(db.config);
    await server.listen();
  });
  afterAll(async () => {
    await server?.close();
    await db?.drop();
  });
  const started = <T>(v: T | undefined): T => {
    if (v === undefined) throw new Error("useTestServer: the server is not started (use it inside tests or hooks)");
    return v;
  };
  return {
    get server() {
      return started(server);
    },
    get db() {
      return started(db);
    },
    rows: <T>(sql: string, params: unknown[] = []) => started(server).db.orm.em.fork().getConnection().execute<T[]>(sql, params, "all"),
  };
}
