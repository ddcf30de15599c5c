/**
 * Opens the database the configuration asks for: PostgreSQL at `DATABASE_URL`, or the embedded
 * PostgreSQL (PGlite over the wire protocol) in the data folder when it is unset. Either way the
 * rest of the service sees one MikroORM instance with the same driver.
 */
import type { MikroORM } from "@mikro-orm/core";
import type { PostgreSqlDriver } from "@mikro-orm/postgresql";
import type { Config } from "../config.js";
import type { Logger } from "../util/logger.js";
import { startEmbeddedPostgres, type EmbeddedPostgres } from "./embedded-postgres.js";
import { createOrm, migrateUp } from "./orm.js";

/** An open database. */
export interface Database {
  readonly orm: MikroORM<PostgreSqlDriver>;
  /** True when this is the embedded PostgreSQL (one connection; no COPY). */
  readonly embedded: boolean;
  /** Closes the ORM, then the embedded server if there is one. */
  close(): Promise<void>;
}

/** Connects (starting the embedded database if needed) and applies pending migrations if asked. */
export async function openDatabase(
  config: Pick<Config, "databaseUrl" | "dataDir" | "migrateOnStart" | "dbPoolMax">,
  log: Logger,
): Promise<Database> {
  let embedded: EmbeddedPostgres | undefined;
  let clientUrl = config.databaseUrl;
  if (clientUrl === undefined) {
    embedded = await startEmbeddedPostgres({ dataDir: config.dataDir, log: (msg) => log.info(msg) });
    clientUrl = embedded.url;
    log.info("DATABASE_URL is not set: using the embedded PostgreSQL (PGlite)", { dataDir: embedded.dataDir });
  }
  let orm: MikroORM<PostgreSqlDriver> | undefined;
  try {
    orm = await createOrm({ clientUrl, poolMax: embedded ? 1 : config.dbPoolMax, log });
    if (config.migrateOnStart) {
      const applied = await migrateUp(orm);
      if (applied.length > 0) log.info("applied migrations", { migrations: applied });
    }
  } catch (err) {
    await orm?.close(true).catch(() => undefined);
    await embedded?.stop();
    throw err;
  }
  const connected = orm;
  let closed = false;
  return {
    orm: connected,
    embedded: embedded !== undefined,
    async close() {
      if (closed) return;
      closed = true;
      await connected.close(true);
      await embedded?.stop();
    },
  };
}
